"""The Pulumi program: topology in, one component per service, outputs out."""

from __future__ import annotations

import pulumi

from datakit.infra import outputs
from datakit.infra.components import KafkaCluster, PostgresCluster, RedisGroup
from datakit.infra.secret import Secrets
from datakit.infra.substrate import for_topology
from datakit.topology import Topology, from_pulumi_config


def build(topo: Topology | None = None) -> None:
    topo = topo or from_pulumi_config()
    substrate = for_topology(topo)
    secrets = Secrets()
    postgres = PostgresCluster("postgres", topo, substrate, secrets)
    redis = RedisGroup("redis", topo, substrate, secrets)
    kafka = KafkaCluster("kafka", topo, substrate, secrets)
    substrate.migrations(topo, secrets, after=postgres.resources,
                         parent=postgres)
    outputs.export(topo, [*postgres.nodes, *redis.nodes, *kafka.nodes], secrets)
    pulumi.log.debug(f"datakit stack {topo.name}: {len(topo.nodes())} nodes")
