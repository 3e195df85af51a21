"""The one typed model of an environment, and the node list the substrates build from it.

>>> topology.nodes("postgres")
(Node(service='postgres', name='pg-1', index=1, initial_role='primary', port=64100, ...), ...)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from pydantic import Field

from datakit.topology.baselines import Baselines
from datakit.topology.docker import DockerSpec
from datakit.topology.etcd import EtcdSpec
from datakit.topology.kafka import KafkaSpec
from datakit.topology.local import LocalSpec
from datakit.topology.metrics import MetricsSpec
from datakit.topology.patroni import NAMESPACE
from datakit.topology.postgres import PostgresSpec
from datakit.topology.problems import Spec
from datakit.topology.redis import RedisSpec
from datakit.topology.tls import TlsSpec

Service = Literal["postgres", "redis", "sentinel", "kafka", "etcd", "exporter", "prometheus"]
# The services `nodes()` lists, in its order. etcd's members are Patroni's store.
SERVICES: tuple[Service, ...] = ("postgres", "redis", "sentinel", "kafka", "etcd")

# Initial roles. A node's identity is its name; its live role is asked of the server.
PRIMARY, REPLICA, MASTER, SENTINEL, BROKER_CONTROLLER, MEMBER, EXPORTER, SERVER = (
    "primary",
    "replica",
    "master",
    "sentinel",
    "broker+controller",
    "member",
    "exporter",
    "server",
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
    metrics_port: int | None = None  # Kafka: the JMX exporter agent inside its JVM
    serves: str | None = None  # an exporter: the node whose metrics it serves
    replica_of: str | None = None  # the initial upstream of a replica
    docker_host: str | None = None  # docker substrate: this node's host, if not the default
    host: str | None = None  # local substrate: its own loopback address (None: 127.0.0.1)

    def ports(self) -> dict[str, int]:
        named = {"client": self.port, "controller": self.controller_port, "bus": self.bus_port,
                 "peer": self.peer_port, "metrics": self.metrics_port}
        return {k: v for k, v in named.items() if v is not None}


class Topology(Spec):
    """An environment: one Pulumi stack's services, sizes, settings and baselines."""

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$",
                      description="The stack's name, taken from the stack file's name "
                      "(Pulumi.<name>.yaml); not set in the file.")
    substrate: Literal["local", "docker"] = Field(
        "local", description="How nodes run: `local` as native processes on loopback, "
        "`docker` as containers (see docs/docker.md).")
    disposable: bool = Field(
        False, description="Whether the stack's data may be destroyed without asking: "
        "`migrate reset` and the stack-restore drill need it, and `up`/`down` ask first (or "
        "need --yes) when it is false.")
    data_dir: Path | None = Field(
        None, description="Where the local substrate keeps the stack's node data dirs; "
        "default $DATAKIT_DATA/<stack>, or /var/lib/datakit/<stack> as root.")
    postgres: PostgresSpec = Field(PostgresSpec(), description="PostgreSQL, with Patroni.")
    redis: RedisSpec = Field(RedisSpec(), description="Redis, with Sentinel or as a Cluster.")
    kafka: KafkaSpec = Field(KafkaSpec(), description="Kafka in KRaft mode.")
    etcd: EtcdSpec = Field(EtcdSpec(), description="etcd, Patroni's store.")
    metrics: MetricsSpec = Field(MetricsSpec(), description="The exporters and Prometheus.")
    baselines: Baselines = Field(Baselines(), description="What load tests and drills hold "
                                 "the stack to.")
    docker: DockerSpec = Field(DockerSpec(), description="Docker-only settings (validated on "
                               "every stack).")
    local: LocalSpec = Field(LocalSpec(), description="Local-only settings (validated on "
                             "every stack).")
    tls: TlsSpec = Field(TlsSpec(), description="TLS on every link, a CA per stack.")

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
        else:
            out = [replace(n, host=self.local.address_of(n.service, n.index)) for n in out]
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

    def exported(self) -> tuple[Node, ...]:
        """The nodes an exporter serves metrics for (PostgreSQL, Redis, Sentinel, Kafka),
        none when metrics are off."""
        if not self.metrics.enabled:
            return ()
        return tuple(n for n in self.nodes() if n.service in ("postgres", "redis", "sentinel",
                                                                "kafka"))

    def exporter_port(self, node: Node) -> int:
        """Where `node`'s metrics are served: its exporter, or its JVM's agent (Kafka)."""
        return self.metrics.exporter_port(node.service, node.index)

    def metrics_nodes(self) -> tuple[Node, ...]:
        """The metrics nodes: an exporter beside each PostgreSQL, Redis and Sentinel node
        (`pg-1-exporter`; Kafka's agent lives in its JVM), then `prometheus`."""
        if not self.metrics.enabled:
            return ()
        # On docker an exporter runs on its server's Docker host (it reaches it there, and
        # on host networking it is scraped at that machine); Prometheus on its own or the
        # stack's host (docker.node_hosts.prometheus, else docker.host).
        exporters = [Node("exporter", f"{n.name}-exporter", n.index, EXPORTER,
                          self.exporter_port(n), serves=n.name, docker_host=n.docker_host)
                     for n in self.exported() if n.service != "kafka"]
        host = self.docker.host_of("prometheus") if self.substrate == "docker" else None
        # Every node's CPU and memory from /proc: one per machine, so on local only.
        processes = [Node("exporter", "process-exporter", 1, EXPORTER,
                          self.metrics.process_exporter_port)] if self.substrate == "local" else []
        return (*exporters, *processes,
                Node("prometheus", "prometheus", 1, SERVER, self.metrics.port,
                     docker_host=host))

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
                metrics_port=self.metrics.kafka_jmx_port_base + i - 1
                if self.metrics.enabled else None,
            )
            for i, name in enumerate(k.node_names, 1)
        ]


def _with_host(node: Node, host: str | None) -> Node:
    return replace(node, docker_host=host)
