"""Where datakit keeps things: the project, the tool cache, and node data.

- tools (the Pulumi engine, Kafka jars) are cached per user outside any checkout, keyed by
  version, so a fresh clone in CI reuses them: `$DATAKIT_CACHE` or `~/.cache/datakit`;
- node data dirs live under `$DATAKIT_DATA` or, as root, `/var/lib/datakit` (service users
  such as `postgres` must be able to reach them, which a checkout under /root forbids),
  else `$XDG_DATA_HOME/datakit`;
- Pulumi state and the generated passphrase live in the project, git-ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    return Path(os.environ.get("DATAKIT_CACHE") or Path.home() / ".cache" / "datakit")


def data_root() -> Path:
    if env := os.environ.get("DATAKIT_DATA"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/datakit")
    xdg = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(xdg) / "datakit"


def stack_data_dir(stack: str) -> Path:
    return data_root() / stack


def state_dir() -> Path:
    return PROJECT_DIR / ".datakit"
