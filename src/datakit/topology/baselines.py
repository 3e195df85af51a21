"""What a stack must reach: load-test baselines (latency, throughput, errors, replica lag)
and disaster-recovery drill targets (RTO per drill). Runs may override them per run.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from datakit import choices
from datakit.topology.problems import Spec
from datakit.topology.units import Size

Ms = Annotated[float, Field(gt=0)]
# The drills, named once (in datakit.choices, which the CLI reads without loading pydantic):
# drills/ builds its registry from DRILLS (one module each, named with underscores), and the
# CLI, the benches and the RTO baselines below take them from there.
DrillName = choices.Drill
DRILLS: tuple[DrillName, ...] = choices.DRILLS


class QueryBaseline(Spec):
    """Latency limits of one request type (e.g. `read`, `write`, `dequeue`)."""

    p95_ms: Ms
    p99_ms: Ms


class Baselines(Spec):
    pool_wait_p95_ms: Ms = 5.0
    queries: dict[str, QueryBaseline] = {
        "read": QueryBaseline(p95_ms=10.0, p99_ms=25.0),
        "write": QueryBaseline(p95_ms=20.0, p99_ms=50.0),
    }
    redis_p99_ms: Ms = 5.0
    kafka_produce_p95_ms: Ms = 50.0
    kafka_e2e_p95_ms: Ms = 200.0
    error_ratio_max: float = Field(0.001, ge=0, le=1)
    min_rps: float = Field(100.0, ge=0)
    # The load generator's own limits: past them a run is marked saturated (its latencies
    # include time queued in the client). Locust itself warns above 90 % CPU.
    client_cpu_p50_max_percent: float = Field(90.0, gt=0)
    client_loop_lag_p99_max_ms: Ms = 10.0
    replica_lag_max_bytes: Annotated[Size, Field(gt=0)] = 16 * 1024**2
    replica_lag_max_s: float = Field(1.0, gt=0)
    rto_s: dict[DrillName, Annotated[float, Field(gt=0)]] = {
        # Patroni's defaults (ttl 30, loop_wait 10): a lost leader's key expires in 30 s.
        "postgres-failover": 45.0,
        "postgres-crash": 15.0,  # restarted in place within primary_start_timeout
        "postgres-switchover": 10.0,
        "etcd-member-loss": 2.0,  # the writes go on
        # Without failsafe_mode the primary demotes and writes wait until the drill starts
        # etcd again, after the leader key's ttl and a few loops.
        "etcd-quorum-loss": 120.0,
        "redis-failover": 3.5,  # down-after 1.5 s (its floor) + vote + promotion
        "redis-cluster-failover": 5.0,
        "kafka-broker-loss": 15.0,  # broker.session.timeout.ms fences a dead broker
        "backup-restore": 60.0,
        "stack-restore": 300.0,
    }
