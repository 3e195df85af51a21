"""The one typed model of an environment, and the node list the substrates build from it.

>>> topology.nodes("postgres")
(Node(service='postgres', name='pg-1', index=1, initial_role='primary', port=64100, ...), ...)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from datakit.topology.baselines import Baselines
from datakit.topology.docker import DockerSpec
from datakit.topology.etcd import EtcdSpec
from datakit.topology.kafka import KafkaSpec
from datakit.topology.patroni import NAMESPACE
from datakit.topology.postgres import PostgresSpec
from datakit.topology.problems import Spec
from datakit.topology.redis import RedisSpec
from datakit.topology.tls import TlsSpec

Service = Literal["postgres", "redis", "sentinel", "kafka", "etcd"]
# The services `nodes()` lists, in its order. etcd's members are Patroni's store.
SERVICES: tuple[Service, ...] = ("postgres", "redis", "sentinel", "kafka", "etcd")

# Initial roles. A node's identity is its name; its live role is asked of the server.
PRIMARY, REPLICA, MASTER, SENTINEL, BROKER_CONTROLLER, MEMBER = (
    "primary",
    "replica",
    "master",
    "sentinel",
    "broker+controller",
    "member",
)


@dataclass(frozen=True)
class Node:
    """One process/container of the stack, as the topology plans it."""

    service: Service
    name: str  # pg-1, redis-2, sentinel-3, kafka-1, etcd-1
    index: int  # 1-based; Kafka's node.id
    initial_role: str  # primary | replica | master | sentinel | broker+controller | member
    port: int  # the client port
    controller_port: int | None = None  # Kafka's controller listener
    bus_port: int | None = None  # Redis Cluster's bus
    peer_port: int | None = None  # etcd's peer (raft) listener
    replica_of: str | None = None  # the initial upstream of a replica
    docker_host: str | None = None  # docker substrate: this node's host, if not the default

    def ports(self) -> dict[str, int]:
        named = {"client": self.port, "controller": self.controller_port, "bus": self.bus_port,
                 "peer": self.peer_port}
        return {k: v for k, v in named.items() if v is not None}


class Topology(Spec):
    """An environment: one Pulumi stack's services, sizes, settings and baselines."""

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    substrate: Literal["local", "docker"] = "local"
    disposable: bool = False
    data_dir: Path | None = None
    postgres: PostgresSpec = PostgresSpec()
    redis: RedisSpec = RedisSpec()
    kafka: KafkaSpec = KafkaSpec()
    etcd: EtcdSpec = EtcdSpec()
    baselines: Baselines = Baselines()
    docker: DockerSpec = DockerSpec()
    tls: TlsSpec = TlsSpec()

    def data_path(self) -> Path:
        """Where the local substrate keeps this stack's node data dirs."""
        if self.data_dir is not None:
            return self.data_dir
        from datakit.paths import stack_data_dir

        return stack_data_dir(self.name)

    def archive_path(self) -> Path:
        """The local substrate's WAL archive for this stack (`postgres.archive`), shared by
        its PostgreSQL nodes: whichever leads archives there."""
        return self.data_path() / "wal-archive"

    def nodes(self, service: Service | None = None) -> tuple[Node, ...]:
        """Every node of the stack in a stable order (postgres, redis, sentinel, kafka, etcd),
        or only those of `service`."""
        out = [*self._postgres(), *self._redis(), *self._sentinels(), *self._kafka(),
               *self.etcd_nodes()]
        if self.substrate == "docker":
            out = [_with_host(n, self.docker.host_of(n.name)) for n in out]
        return tuple(n for n in out if service is None or n.service == service)

    def etcd_nodes(self) -> tuple[Node, ...]:
        """The etcd members, Patroni's store: etcd-1..etcd-N with client and peer ports."""
        e = self.etcd
        return tuple(
            Node("etcd", name, i, MEMBER, e.port(name), peer_port=e.peer_port(name))
            for i, name in enumerate(e.node_names, 1)
        )

    @property
    def patroni_scope(self) -> str:
        """The Patroni cluster's name (its `scope`, the etcd key prefix): one per stack."""
        return f"datakit-{self.name}"

    @property
    def patroni_prefix(self) -> str:
        """Every etcd key of the stack's Patroni cluster starts with this."""
        return f"{NAMESPACE}{self.patroni_scope}/"

    def node(self, name: str) -> Node:
        for n in self.nodes():
            if n.name == name:
                return n
        raise KeyError(name)

    def _postgres(self) -> list[Node]:
        pg = self.postgres
        return [
            Node(
                "postgres",
                name,
                i,
                PRIMARY if i == 1 else REPLICA,
                pg.port_base + i - 1,
                replica_of=None if i == 1 else "pg-1",
            )
            for i, name in enumerate(pg.node_names, 1)
        ]

    def _redis(self) -> list[Node]:
        r = self.redis
        masters = r.cluster.masters if r.mode == "cluster" else 1
        nodes = []
        for i, name in enumerate(r.node_names, 1):
            is_master = i <= masters
            upstream = None if is_master else f"redis-{(i - masters - 1) % masters + 1}"
            bus = r.cluster.bus_port_base + i - 1 if r.mode == "cluster" else None
            nodes.append(
                Node(
                    "redis",
                    name,
                    i,
                    MASTER if is_master else REPLICA,
                    r.port_base + i - 1,
                    bus_port=bus,
                    replica_of=upstream,
                )
            )
        return nodes

    def _sentinels(self) -> list[Node]:
        s = self.redis.sentinel
        return [
            Node("sentinel", name, i, SENTINEL, s.port_base + i - 1)
            for i, name in enumerate(self.redis.sentinel_names, 1)
        ]

    def _kafka(self) -> list[Node]:
        k = self.kafka
        return [
            Node(
                "kafka",
                name,
                i,
                BROKER_CONTROLLER,
                k.port_base + i - 1,
                controller_port=k.controller_port_base + i - 1,
            )
            for i, name in enumerate(k.node_names, 1)
        ]


def _with_host(node: Node, host: str | None) -> Node:
    from dataclasses import replace

    return replace(node, docker_host=host)
