"""What a substrate must do: turn a topology's planned nodes into running ones.

Components (components.py) ask a substrate for a service's nodes and never learn how a
node is started. A substrate is as small as a testinfra backend: one module per service
per substrate behind this contract (local/, docker/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pulumi

from datakit.infra.secret import Secrets
from datakit.topology import Node, Topology


@dataclass
class Provisioned:
    """A node as made by a substrate: the plan, its resource, and how to reach and handle it."""

    node: Node
    resource: pulumi.Resource
    host: str  # the address clients use
    handle: Any  # substrate-specific: dict or Output[dict] (pid, data dir | container name)
    testinfra: str  # testinfra host URL: local://, docker://NAME, ssh://HOST
    # How the stack's own nodes (Prometheus) reach it, when not at `host`: on a bridge
    # network the container's name, while clients use a published port.
    peer_host: str | None = None


class Substrate(Protocol):
    name: str

    def etcd(self, topo: Topology, secrets: Secrets,
             parent: pulumi.Resource) -> list[Provisioned]:
        """Patroni's store; called before `postgres`, whose members start after it."""
        ...

    def postgres(self, topo: Topology, secrets: Secrets,
                 parent: pulumi.Resource) -> list[Provisioned]: ...

    def redis(self, topo: Topology, secrets: Secrets,
              parent: pulumi.Resource) -> list[Provisioned]: ...

    def kafka(self, topo: Topology, secrets: Secrets,
              parent: pulumi.Resource) -> list[Provisioned]: ...

    def migrations(self, topo: Topology, secrets: Secrets, after: list[pulumi.Resource],
                   parent: pulumi.Resource) -> pulumi.Resource | None: ...

    def metrics(self, topo: Topology, secrets: Secrets, made: list[Provisioned],
                parent: pulumi.Resource) -> list[Provisioned]:
        """The exporters beside `made` (the servers) and a Prometheus scraping them."""
        ...

    def client_tls(self, topo: Topology) -> dict[str, str] | None:
        """The kit's CA and client certificate files ({ca, cert, key} paths) on the machine
        that runs datakit, or None when the stack's links are plaintext."""
        ...

