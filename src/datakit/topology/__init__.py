"""The topology: the one typed, validated model of an environment (one Pulumi stack).

>>> from datakit.topology import load
>>> t = load("local")
>>> [n.name for n in t.nodes("postgres")]
['pg-1', 'pg-2', 'pg-3']

One idea per module: `postgres` (with `patroni`, its HA settings), `redis`, `kafka`, `etcd`,
`baselines`, `docker`, `tls` (each service's part and its own checks), `model` (the Topology and
its node list), `checks` (ports, memory and other checks across services), `loading` (stack
files and Pulumi config), `units` (sizes and durations), `problems` (one line per problem).
"""

from datakit.topology.baselines import DRILLS, Baselines, QueryBaseline
from datakit.topology.checks import memory_budget, memory_total, port_sources
from datakit.topology.docker import DockerSpec, Images, Resources
from datakit.topology.etcd import EtcdSpec
from datakit.topology.kafka import KafkaSpec, TopicSpec
from datakit.topology.loading import from_config, from_pulumi_config, load, stack_names
from datakit.topology.metrics import MetricsSpec
from datakit.topology.model import (
    BROKER_CONTROLLER,
    MASTER,
    MEMBER,
    PRIMARY,
    REPLICA,
    SENTINEL,
    SERVICES,
    Node,
    Service,
    Topology,
)
from datakit.topology.patroni import PatroniSettings
from datakit.topology.postgres import PoolSettings, PostgresSettings, PostgresSpec
from datakit.topology.problems import Problem, TopologyError
from datakit.topology.redis import ClusterSettings, RedisSettings, RedisSpec, SentinelSettings
from datakit.topology.tls import TlsSpec
from datakit.topology.units import parse_duration_ms, parse_size, render_size

__all__ = [
    "BROKER_CONTROLLER",
    "DRILLS",
    "MASTER",
    "MEMBER",
    "PRIMARY",
    "REPLICA",
    "SENTINEL",
    "SERVICES",
    "Baselines",
    "ClusterSettings",
    "DockerSpec",
    "EtcdSpec",
    "Images",
    "KafkaSpec",
    "MetricsSpec",
    "Node",
    "PatroniSettings",
    "PoolSettings",
    "PostgresSettings",
    "PostgresSpec",
    "Problem",
    "QueryBaseline",
    "RedisSettings",
    "RedisSpec",
    "Resources",
    "SentinelSettings",
    "Service",
    "TlsSpec",
    "TopicSpec",
    "Topology",
    "TopologyError",
    "from_config",
    "from_pulumi_config",
    "load",
    "memory_budget",
    "memory_total",
    "parse_duration_ms",
    "parse_size",
    "port_sources",
    "render_size",
    "stack_names",
]
