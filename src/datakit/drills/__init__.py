"""Disaster-recovery drills against a live stack: each kills or stops nodes under a
writer that records every acknowledged write, then checks them all back (see checker.py)
and measures RTO. One module per drill; `DRILLS` names them for the CLI and the runner."""

from __future__ import annotations

import importlib

DRILLS = {
    "postgres-failover": "postgres_failover",
    "postgres-switchover": "postgres_switchover",
    "redis-failover": "redis_failover",
    "redis-cluster-failover": "redis_cluster_failover",
    "kafka-broker-loss": "kafka_broker_loss",
    "backup-restore": "backup_restore",
    "stack-restore": "stack_restore",
}


def module(name: str):
    from datakit.errors import DatakitError

    if name not in DRILLS:
        raise DatakitError(f"no drill {name!r}: choose one of {', '.join(DRILLS)}")
    return importlib.import_module(f"datakit.drills.{DRILLS[name]}")
