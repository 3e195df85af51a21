"""What a stack's faults installed, written down before it is installed.

`/run/datakit/faults-<stack>.json` (tmpfs: it goes at reboot, with the rules it describes)
holds the owner process, the chain, the delayer processes and the faults in place. A
process killed by `kill -9` cannot clean up; the next one reads this file and removes what
it lists, even if a later datakit names its chains differently. The file is written before
each rule goes in, so a kill between the two leaves a record of more, never of less.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datakit.nodes import process

STATE_DIR = Path("/run/datakit")
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class Delayer:
    """A delay process: its queue, pid and kernel start time (a recycled pid is not it)."""

    queue: int
    pid: int
    start_time: int
    link: str


@dataclass
class Record:
    stack: str
    chain: str
    owner_pid: int
    owner_start_time: int
    delayers: list[Delayer] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)

    def owner_alive(self) -> bool:
        return process.is_running(self.owner_pid, self.owner_start_time)

    def mine(self) -> bool:
        return self.owner_pid == os.getpid() and self.owner_alive()


def _stem(stack: str) -> str:
    if _SAFE.match(stack):
        return f"faults-{stack}"
    return "faults-" + hashlib.sha1(stack.encode()).hexdigest()[:16]


def path(stack: str, state_dir: Path = STATE_DIR) -> Path:
    return state_dir / f"{_stem(stack)}.json"


def load(stack: str, state_dir: Path = STATE_DIR) -> Record | None:
    """The stack's record, or None when there is none (or it is unreadable: then the
    sweep by chain name still finds the rules)."""
    try:
        raw = json.loads(path(stack, state_dir).read_text())
        raw["delayers"] = [Delayer(**d) for d in raw.get("delayers", [])]
        return Record(**raw)
    except (OSError, ValueError, TypeError):
        return None


def save(record: Record, state_dir: Path = STATE_DIR) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    target = path(record.stack, state_dir)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=1))
    os.replace(tmp, target)  # atomic: a reader sees the old record or the new one


def forget(stack: str, state_dir: Path = STATE_DIR) -> None:
    path(stack, state_dir).unlink(missing_ok=True)


@contextmanager
def locked(state_dir: Path = STATE_DIR) -> Iterator[None]:
    """One process at a time changes faults (a drill starting while `down` runs). One lock
    for every stack: changes take milliseconds, and no lock file is left per stack."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "faults.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
