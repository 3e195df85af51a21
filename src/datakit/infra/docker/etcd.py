"""etcd members as containers of etcd's pinned release image: one static cluster, Patroni's
store.

Every member is given the whole member list (`--initial-cluster`), so the cluster forms
once a majority runs; the containers start together (none depends on another) and each is
healthy once it answers `etcdctl endpoint health`, which needs a leader. The image is
distroless (no shell), so the health check is in exec form. Members reach each other and
Patroni reaches them at their peer addresses; the cluster token carries the stack's name,
so two stacks on one engine never join each other's cluster.
"""

from __future__ import annotations

import pulumi

from datakit.infra.docker.network import Layout
from datakit.infra.docker.node import NodeContainers, NodeSpec
from datakit.infra.substrate import Provisioned
from datakit.topology import Node, Topology

DATA = "/var/lib/etcd"


def command(topo: Topology, layout: Layout, node: Node) -> list[str]:
    """etcd's command line for `node` (no secrets: etcd listens without auth on the stack's
    network, as the local members do on loopback)."""
    peer = f"http://{layout[node.name].peer_host}:{node.peer_port}"
    cluster = ",".join(f"{n.name}=http://{layout[n.name].peer_host}:{n.peer_port}"
                       for n in topo.nodes("etcd"))
    return ["etcd", "--name", node.name, "--data-dir", f"{DATA}/data",
            "--listen-client-urls", f"http://0.0.0.0:{node.port}",
            "--advertise-client-urls", f"http://{layout[node.name].peer_host}:{node.port}",
            "--listen-peer-urls", f"http://0.0.0.0:{node.peer_port}",
            "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster,
            "--initial-cluster-state", "new", "--initial-cluster-token", f"datakit-{topo.name}",
            "--heartbeat-interval", str(topo.etcd.heartbeat_ms),
            "--election-timeout", str(topo.etcd.election_timeout_ms),
            "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1h"]


def health(node: Node) -> list[str]:
    return ["etcdctl", f"--endpoints=http://127.0.0.1:{node.port}", "endpoint", "health"]


def build(topo: Topology, layout: Layout, containers: NodeContainers,
          parent: pulumi.Resource) -> list[Provisioned]:
    made = []
    for node in topo.nodes("etcd"):
        place = layout[node.name]
        spec = NodeSpec("etcd", command(topo, layout, node), health(node), DATA,
                        start_period_s=60)
        res = containers.container(place, spec, parent)
        made.append(place.provisioned(res))
    return made
