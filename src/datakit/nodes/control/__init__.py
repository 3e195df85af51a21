"""Node control: status, stop, kill, start, pause and resume one node, whatever runs it.

Drills talk to nodes through `control_for(node, outputs)` only, so they run unchanged on
any substrate that implements this small contract, as a testinfra backend does for
checks. `node` and `outputs` are the stack outputs' typed `Node` and `StackOutputs`
(datakit.stack.schema), read by attribute: `nodes` stands beside `stack`, not on it, so
it does not import them. One module per substrate, keyed by the kind of the node's handle:

- `local` (local.py): native daemons found by their data dir, signalled by pid; a
  PostgreSQL node is Patroni and its postmaster, an etcd member its process (local_ha.py);
- `docker` (docker.py): containers, through the Docker API.

    >>> ctl = control_for(node, outputs)
    >>> ctl.pause(); ctl.status()
    'paused'
    >>> ctl.resume(); ctl.kill(); ctl.start()
"""

from __future__ import annotations

from typing import Any, Protocol

from datakit.errors import DatakitError
from datakit.nodes.control.local import LocalControl
from datakit.nodes.control.local_ha import EtcdControl, PatroniControl

# What status() answers; a substrate whose node itself can vanish (a removed container)
# adds "missing".
STATUSES = ("running", "paused", "stopped")


class NodeControl(Protocol):
    """What every substrate's control does for one node of the stack's outputs."""

    name: str
    service: str

    def running(self) -> bool:
        """Its processes exist (a paused node counts)."""
        ...

    def status(self) -> str: ...

    def stop(self) -> None:
        """A clean stop; returns when the node is down."""
        ...

    def kill(self) -> None:
        """SIGKILL, as a crash; returns when the node is down."""
        ...

    def start(self, *, replica_of: Any = None) -> None:
        """Start it again on its data (a Redis node: as the replica of the Node
        `replica_of`, if given); returns when it answers."""
        ...

    def pause(self) -> None:
        """Freeze its processes: it keeps its sockets but does nothing until `resume`."""
        ...

    def resume(self) -> None: ...


def control_for(node: Any, outputs: Any) -> NodeControl:
    """The control of `node` (a stack outputs Node) of the stack `outputs` describes."""
    kind = node.handle.kind
    if kind == "local":
        local = {"postgres": PatroniControl, "etcd": EtcdControl}.get(node.service, LocalControl)
        return local(node, outputs)
    if kind == "docker":
        # The docker SDK is costly to import (0.1-0.2 s warm, over 1 s cold, measured with
        # -X importtime) and only docker stacks need it: a local stack never loads it.
        from datakit.nodes.control.docker import DockerControl

        return DockerControl(node, outputs)
    raise DatakitError(f"node {node.name}: no node control for substrate {kind!r} "
                       "(known: 'local', 'docker'); check the node's handle in the outputs")
