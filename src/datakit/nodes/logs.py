"""Where a node's logs are, for `datakit logs` and docs/troubleshooting.md.

A local node writes into its data dir: its handle in the stack outputs names the main log
(the daemon's own output), and a service may keep more files beside it. A docker node's
log is its container's output, read through the Docker API.

    >>> log_files(outputs.node("kafka-1"))
    [PosixPath('.../kafka-1/logs/process.log'), PosixPath('.../kafka-1/logs/controller.log'), ...]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datakit.errors import DatakitError

# Files a service writes itself next to its main log, relative to the node's data dir.
# PostgreSQL's postmaster writes to Patroni's log (its stderr), and to pgdata/log/ only
# when a stack turns logging_collector on.
# Kafka's log4j writes server.log, controller.log, state-change.log and more into logs/.
BESIDE = {"kafka": ("logs/*.log",), "postgres": ("pgdata/log/*",)}


def log_files(node: Any) -> list[Path]:
    """A local node's log files that exist, its main log first (a stack outputs Node)."""
    handle = node.handle
    if handle.kind != "local":
        raise DatakitError(f"node {node.name} runs in a container: its log is the "
                           "container's output (docker logs)")
    root = Path(handle.data_dir) if handle.data_dir else None
    found = [Path(handle.log)] if handle.log else []
    for pattern in BESIDE.get(node.service, ()) if root else ():
        found += sorted(root.glob(pattern))
    found = [p for p in dict.fromkeys(found) if p.is_file()]
    if not found:
        where = handle.log or handle.data_dir or "its handle names no log"
        raise DatakitError(f"node {node.name}: no log file found ({where}); is the stack "
                           "up? (datakit status)")
    return found


def last_lines(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of `path` (read from its end: logs grow large)."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size, block, data = f.tell(), 64 * 1024, b""
        while size and data.count(b"\n") <= lines:
            step = min(block, size)
            size -= step
            f.seek(size)
            data = f.read(step) + data
    return data.decode(errors="replace").splitlines()[-lines:] if lines else []
