"""Where a node listens, as this package's clients need it: host, port and name.

A node comes as a dict (a Pulumi resource's props, a peers list) or as the stack outputs'
`Node` (datakit.stack.schema), which `nodes` does not import: the two packages stand side
by side. `address()` reads either, so a check or a drill passes the node it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

LOOPBACK = "127.0.0.1"


class Listening(Protocol):
    """The stack outputs' Node, as far as a client needs it."""

    name: str
    host: str
    port: int


NodeLike = Mapping[str, Any] | Listening


class Address(NamedTuple):
    host: str
    port: int
    name: str | None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def address(node: NodeLike) -> Address:
    if isinstance(node, Mapping):
        return Address(node.get("host") or LOOPBACK, int(node["port"]), node.get("name"))
    return Address(node.host or LOOPBACK, int(node.port), node.name)
