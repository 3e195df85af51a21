"""Where each node runs and how it is reached: the stack's networks and node addresses.

Two layouts, chosen from the topology:

- **One Docker host** (dev, staging): a bridge network `datakit-<stack>` on that host.
  Nodes reach each other by container name on that network, on the topology's ports (each
  container has its own network namespace). Clients outside use published ports, only for
  the services listed in `docker.publish`, bound to `docker.publish_address`.
- **Several Docker hosts** (prod: `docker.node_hosts`): a bridge network does not span
  engines, so every container uses the host's network. A node listens on its topology port
  on its machine and everyone (peers and clients) reaches it as `<machine>:<port>`; the
  ports are unique across the stack, so nodes sharing a machine do not collide.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from datakit.errors import DatakitError
from datakit.infra.docker.provider import Providers, host_name, slug
from datakit.infra.substrate import Provisioned
from datakit.topology import Node, Topology

WILDCARDS = ("0.0.0.0", "::", "")
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Placement:
    """One node's container: its name, its Docker host and its addresses."""

    node: Node
    container: str  # the container's name, unique on its Docker host
    docker_host: str | None  # DOCKER_HOST-style URL, None for the default engine
    host_network: bool  # True: the machine's network; False: the stack's bridge network
    peer_host: str  # how the other nodes reach it
    client_host: str  # how clients outside the stack reach it (the outputs' `host`)
    published: bool  # its client port is published on the Docker host

    @property
    def peer(self) -> str:
        return f"{self.peer_host}:{self.node.port}"

    @property
    def handle(self) -> dict:
        """What drills use to stop, kill and start the node."""
        return {"kind": "docker", "container": self.container, "docker_host": self.docker_host}

    @property
    def testinfra(self) -> str:
        return f"docker://{self.container}"

    def provisioned(self, resource: pulumi.Resource) -> Provisioned:
        """The node as made: clients reach it at `client_host`, the stack's nodes at
        `peer_host`."""
        return Provisioned(self.node, resource, self.client_host, self.handle, self.testinfra,
                           peer_host=self.peer_host)


class Layout:
    """The placements of a topology's nodes and the per-host networks they join."""

    def __init__(self, topo: Topology, providers: Providers | None = None):
        self.topo = topo
        self.providers = providers or Providers()
        # The servers and, beside them, the metrics nodes (exporters, Prometheus).
        nodes = (*topo.nodes(), *topo.metrics_nodes())
        self.hosts = sorted({n.docker_host or "" for n in nodes})
        self.spans_hosts = len(self.hosts) > 1
        if self.spans_hosts:
            local = [n.name for n in nodes if host_name(n.docker_host) is None]
            if local:
                raise DatakitError(
                    f"stack {topo.name}: docker.node_hosts spreads the stack over several "
                    f"Docker hosts, but {', '.join(local)} run on the local engine, which the "
                    "other machines cannot reach; give them a tcp:// or ssh:// host "
                    "(docker.host or docker.node_hosts)")
        self._networks: dict[str, docker.Network] = {}
        self.placements = {n.name: self._place(n) for n in nodes}

    def __getitem__(self, name: str) -> Placement:
        return self.placements[name]

    def container_name(self, node_name: str) -> str:
        return f"datakit-{self.topo.name}-{node_name}"

    def _place(self, node: Node) -> Placement:
        container = self.container_name(node.name)
        machine = host_name(node.docker_host)
        if self.spans_hosts:
            assert machine is not None
            return Placement(node, container, node.docker_host, True, machine, machine, True)
        published = node.service in self.topo.docker.publish
        address = self.topo.docker.publish_address
        if not published:
            client = container
        elif address in WILDCARDS:
            client = machine or LOOPBACK
        else:
            client = address
        return Placement(node, container, node.docker_host, False, container, client, published)

    def network(self, docker_host: str | None, parent: pulumi.Resource) -> docker.Network | None:
        """The stack's bridge network on `docker_host` (None in the host-network layout)."""
        if self.spans_hosts:
            return None
        key = docker_host or ""
        if key not in self._networks:
            name = f"datakit-{self.topo.name}"
            suffix = "" if len(self.hosts) == 1 else f"-{slug(docker_host)}"
            self._networks[key] = docker.Network(
                f"network{suffix}", name=name, driver="bridge", attachable=True,
                labels=[docker.NetworkLabelArgs(label="datakit.stack", value=self.topo.name)],
                opts=self.providers.opts(docker_host, parent=parent))
        return self._networks[key]
