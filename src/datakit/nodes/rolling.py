"""One node of a stack at a time: the lock a restart holds, so a change that restarts nodes
(a reissued certificate, a setting read at start) rolls through them instead of taking all
of them down at once.

The dynamic provider applies a stack's updates in parallel (up to four at a time), and each
node's update knows only its own node. So each restart takes an exclusive lock on a file in
the stack's data folder, restarts, waits until the node is back in its cluster, and only
then lets the next one go.

    >>> with one_at_a_time(props["data_dir"], what="kafka-2"):
    ...     restart()
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".rolling.lock"


@contextlib.contextmanager
def one_at_a_time(data_dir: str | Path, *, what: str) -> Iterator[None]:
    """Hold the stack's restart lock (the node folders' parent) for the block."""
    path = Path(data_dir).parent / LOCK_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if this process dies
        os.ftruncate(fd, 0)
        os.write(fd, f"{what} restarting (pid {os.getpid()})\n".encode())
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
