"""The names a user picks from on the command line: drills, load profiles, workloads.

Listed here, with nothing heavy imported, because the CLI builds its choices from them at
every start: the topology package (pydantic) or the load runner would make every command
start slower (the comment at `cli.drill` has the figures). The drill names are declared
here once (topology.baselines takes them); the profiles and workloads mirror the load
runner's tables, and tests/unit/test_cli_choices.py keeps them equal.
"""

from typing import Literal, get_args

Drill = Literal[
    "postgres-failover",
    "postgres-crash",
    "postgres-switchover",
    "etcd-member-loss",
    "etcd-quorum-loss",
    "postgres-partition-primary",
    "replica-slow-link",
    "redis-failover",
    "redis-partition-master",
    "redis-cluster-failover",
    "kafka-broker-loss",
    "kafka-partition-leader",
    "backup-restore",
    "stack-restore",
]
Profile = Literal["baseline", "stress", "soak"]
Workload = Literal["mixed", "postgres", "redis", "kafka", "patterns", "pg-select1", "redis-get"]

DRILLS: tuple[str, ...] = get_args(Drill)
PROFILES: tuple[str, ...] = get_args(Profile)
WORKLOADS: tuple[str, ...] = get_args(Workload)
