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

    p95_ms: Ms = Field(description="The most the 95th percentile may take, in ms.")
    p99_ms: Ms = Field(description="The most the 99th percentile may take, in ms.")


class Baselines(Spec):
    """The limits `datakit load` and `datakit drill` judge the stack by (`--baseline
    KEY=VALUE` overrides one for a run)."""

    pool_wait_p95_ms: Ms = Field(5.0, description="95th percentile of the wait for a pooled "
                                 "PostgreSQL connection, in ms.")
    queries: dict[str, QueryBaseline] = Field({
        "read": QueryBaseline(p95_ms=10.0, p99_ms=25.0),
        "write": QueryBaseline(p95_ms=20.0, p99_ms=50.0),
    }, description="Latency limits per PostgreSQL request type (read, write, ...).")
    redis_p99_ms: Ms = Field(5.0, description="99th percentile of a Redis command, in ms.")
    kafka_produce_p95_ms: Ms = Field(50.0, description="95th percentile of an acknowledged "
                                     "Kafka produce, in ms.")
    kafka_e2e_p95_ms: Ms = Field(200.0, description="95th percentile from produce to "
                                 "consume, in ms.")
    error_ratio_max: float = Field(0.001, ge=0, le=1, description="The most requests that "
                                   "may fail, as a fraction.")
    min_rps: float = Field(100.0, ge=0, description="The least throughput, in requests per "
                           "second.")
    # The load generator's own limits: past them a run is marked saturated (its latencies
    # include time queued in the client). Locust itself warns above 90 % CPU.
    client_cpu_p50_max_percent: float = Field(90.0, gt=0, description="The load "
                                              "generator's median CPU; above it the run is "
                                              "saturated.")
    client_loop_lag_p99_max_ms: Ms = Field(10.0, description="The load generator's event "
                                           "loop lag, 99th percentile; above it the run is "
                                           "saturated.")
    replica_lag_max_bytes: Annotated[Size, Field(gt=0)] = Field(
        16 * 1024**2, description="The most a PostgreSQL replica may lag, in WAL.")
    replica_lag_max_s: float = Field(1.0, gt=0, description="The most a PostgreSQL replica "
                                     "may lag, in seconds of replay.")
    rto_s: dict[DrillName, Annotated[float, Field(gt=0)]] = Field({
        # Patroni's defaults (ttl 30, loop_wait 10): a lost leader's key expires in 30 s.
        "postgres-failover": 45.0,
        "postgres-crash": 15.0,  # restarted in place within primary_start_timeout
        "postgres-switchover": 10.0,
        "etcd-member-loss": 2.0,  # the writes go on
        # Without failsafe_mode the primary demotes and writes wait until the drill starts
        # etcd again, after the leader key's ttl and a few loops.
        "etcd-quorum-loss": 120.0,
        # The cut-off leader's key expires after ttl, as for a lost node.
        "postgres-partition-primary": 45.0,
        "redis-failover": 3.5,  # down-after 1.5 s (its floor) + vote + promotion
        "redis-partition-master": 5.0,  # as redis-failover: Sentinel loses the master
        "redis-cluster-failover": 5.0,
        "kafka-broker-loss": 15.0,  # broker.session.timeout.ms fences a dead broker
        "kafka-partition-leader": 15.0,  # as kafka-broker-loss: the cut broker is fenced
        "backup-restore": 60.0,
        "stack-restore": 300.0,
    }, description="The longest each drill's recovery may take, in seconds, by drill name.")
