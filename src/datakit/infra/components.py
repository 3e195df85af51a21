"""One Pulumi component per service: it asks the substrate for its nodes, nothing more."""

from __future__ import annotations

import pulumi

from datakit.infra.secret import Secrets
from datakit.infra.substrate import Provisioned, Substrate
from datakit.topology import Topology


class _Service(pulumi.ComponentResource):
    kind = ""

    def __init__(self, name: str, topo: Topology, substrate: Substrate, secrets: Secrets,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"datakit:index:{self.kind}", name, None, opts)
        self.nodes: list[Provisioned] = self._build(topo, substrate, secrets)
        self.register_outputs({"nodes": [p.node.name for p in self.nodes]})

    def _build(self, topo, substrate, secrets) -> list[Provisioned]:
        raise NotImplementedError

    @property
    def resources(self) -> list[pulumi.Resource]:
        return [p.resource for p in self.nodes]


class EtcdCluster(_Service):
    """Patroni's store: made before the PostgreSQL cluster, whose members need it."""

    kind = "EtcdCluster"

    def _build(self, topo, substrate, secrets):
        return substrate.etcd(topo, secrets, parent=self)


class PostgresCluster(_Service):
    kind = "PostgresCluster"

    def _build(self, topo, substrate, secrets):
        return substrate.postgres(topo, secrets, parent=self)


class RedisGroup(_Service):
    kind = "RedisGroup"

    def _build(self, topo, substrate, secrets):
        return substrate.redis(topo, secrets, parent=self)


class Metrics(pulumi.ComponentResource):
    """The exporters and Prometheus, made after the servers they watch (`made`)."""

    def __init__(self, name: str, topo: Topology, substrate: Substrate, secrets: Secrets,
                 made: list[Provisioned]):
        super().__init__("datakit:index:Metrics", name, None, None)
        self.nodes: list[Provisioned] = (
            substrate.metrics(topo, secrets, made, parent=self) if topo.metrics.enabled else [])
        self.register_outputs({"nodes": [p.node.name for p in self.nodes]})


class KafkaCluster(_Service):
    kind = "KafkaCluster"

    def _build(self, topo, substrate, secrets):
        return substrate.kafka(topo, secrets, parent=self)
