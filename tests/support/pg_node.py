"""A PostgreSQL node's processes as an operator finds them, without datakit: Patroni (the
process running the node's patroni.yml), its postmaster (postmaster.pid) and the
postmaster's children (backends, walsender). Killing all of them is a node lost; killing
only the postmaster leaves backends that go on acknowledging writes for a moment."""

from __future__ import annotations

from pathlib import Path

from datakit.stack.schema import Node


def patroni_pids(node: Node) -> list[int]:
    config = str(Path(node.handle.data_dir) / "patroni.yml").encode()
    return [int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and config in _read(p / "cmdline")]


def postmaster_pid(node: Node) -> int:
    pidfile = Path(node.handle.data_dir) / "pgdata" / "postmaster.pid"
    return int(pidfile.read_text().split("\n", 1)[0])


def node_pids(node: Node) -> list[int]:
    postmaster = postmaster_pid(node)
    return patroni_pids(node) + [postmaster] + _children(postmaster)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(c) for c in _read(task / "children").split()]
    return found


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def make_leader(outputs, name: str) -> None:
    """Patroni's leader moved to `name` by a planned switchover, unless it leads already:
    for tests that remove another member, after drills and failovers moved the lead."""
    from datakit.drills import patroni_ops
    from datakit.nodes import patroni_cluster

    if patroni_ops.leader(outputs) != name:
        patroni_cluster.switchover(patroni_ops.members(outputs), candidate=name,
                                   synchronous_standbys=patroni_ops.quorum(
                                       patroni_ops.config(outputs)))
