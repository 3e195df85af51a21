"""Where the class-data-sharing (AppCDS) archives of a Kafka build live, per JVM.

tools/kafka/cds.py makes them at bootstrap; a node's JVM maps them (nodes/kafka_runtime.py);
`datakit doctor` reports them. The key is the Kafka build's stamp and the JVM's full build
as `java -version` names it: another build of either looks for another file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

ROLES = ("broker", "format")


def java_binary() -> str | None:
    """The java Kafka's nodes run: $JAVA_HOME/bin/java, else the one on PATH."""
    if java_home := os.environ.get("JAVA_HOME"):
        candidate = Path(java_home) / "bin" / "java"
        if candidate.exists():
            return str(candidate)
    return shutil.which("java")


@cache
def runtime_version(java_bin: str) -> str:
    """The JVM's full build (17.0.15+6-Debian-1deb12u1), as `java -version` names it: read
    from its `release` file (no JVM start), else asked of java itself."""
    release = Path(os.path.realpath(java_bin)).parent.parent / "release"
    try:
        match = re.search(r'^JAVA_RUNTIME_VERSION="([^"]+)"', release.read_text(), re.M)
    except OSError:
        match = None
    if not match:
        out = subprocess.run([java_bin, "-version"], capture_output=True, text=True,
                             timeout=30).stderr
        match = re.search(r"\(build ([^)]+)\)", out)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", match.group(1)) if match else "unknown"


def build_stamp(home: Path) -> str:
    """The Kafka build's stamp (tools/build-kafka writes it; a node's copy keeps it)."""
    try:
        return (home / ".datakit-build").read_text().strip() or "unstamped"
    except OSError:
        return "unstamped"


def archive_path(home: Path, role: str, java_bin: str) -> Path:
    """Where the `role` archive for this Kafka build and JVM lives in `home`, whether it
    exists or not: a rebuilt Kafka or another JVM looks for another file."""
    key = f"{build_stamp(home)}-{runtime_version(java_bin)}"
    return home / "cds" / key / f"{role}.jsa"


def archive(home: Path, role: str, java_bin: str) -> Path | None:
    """The `role` archive for this JVM in `home`, or None."""
    path = archive_path(home, role, java_bin)
    try:
        return path if path.stat().st_size > 0 else None
    except OSError:
        return None
