"""The servers' side of a run, from the stack's Prometheus: what each chart asks for a
window, and the charts (load.report.ServerChart) for the load and drill reports.

A rate spans four scrapes (at least 4 s): short enough to show a drill's few seconds of
outage, long enough that one missed scrape leaves no gap. Every series is labelled by the
node it is about, so a leader change shows as one line stopping and another starting.
"""

from __future__ import annotations

from datakit.load.charts import relative
from datakit.load.report import ServerChart
from datakit.nodes.metrics.query import Prometheus, PrometheusError
from datakit.stack.schema import MetricsEndpoints

# (group, title, unit, PromQL with {w} for the rate window, the label naming a series)
CHARTS: list[tuple[str, str, str, str, str]] = [
    ("PostgreSQL", "transactions/s", "tx/s",
     "sum by (node) (rate(pg_stat_database_xact_commit[{w}]) "
     "+ rate(pg_stat_database_xact_rollback[{w}]))", "node"),
    ("PostgreSQL", "connections", "", "sum by (node) (pg_stat_database_numbackends)", "node"),
    ("PostgreSQL", "replication lag (bytes)", "B",
     "max by (application_name) (pg_standby_replay_lag_bytes)", "application_name"),
    ("PostgreSQL", "replication lag (seconds)", "s",
     "max by (application_name) (pg_standby_replay_lag_seconds)", "application_name"),
    ("PostgreSQL", "WAL written or replayed", "B/s",
     "sum by (node) (rate(pg_node_wal_position_bytes[{w}]))", "node"),
    ("PostgreSQL", "Patroni leader (1 = leads)", "", "max by (node) (patroni_primary)", "node"),
    ("Redis", "commands/s", "ops/s",
     "sum by (node) (rate(redis_commands_processed_total{{job=\"redis\"}}[{w}]))", "node"),
    ("Redis", "connected replicas (master = has some)", "",
     "max by (node) (redis_connected_slaves{{job=\"redis\"}})", "node"),
    ("Kafka", "bytes in", "B/s",
     "sum by (node) (rate(kafka_server_brokertopicmetrics_bytesin_total[{w}]))", "node"),
    ("Kafka", "bytes out", "B/s",
     "sum by (node) (rate(kafka_server_brokertopicmetrics_bytesout_total[{w}]))", "node"),
    ("Kafka", "under-replicated partitions", "",
     "max by (node) (kafka_server_replicamanager_underreplicatedpartitions)", "node"),
    ("Kafka", "ISR shrinks/s", "/s",
     "sum by (node) (rate(kafka_server_replicamanager_isrshrinks_total[{w}]))", "node"),
    # a lost broker's partitions moving to the others, and the KRaft quorum's leader
    ("Kafka", "partition leaders per broker", "",
     "max by (node) (kafka_server_replicamanager_leadercount)", "node"),
    ("Kafka", "active controller (1 = leads)", "",
     "max by (node) (kafka_controller_kafkacontroller_activecontrollercount)", "node"),
    # process-exporter (local): every node, PostgreSQL's backends with their postmaster
    ("Nodes", "CPU per node", "cores",
     "sum by (groupname) (rate(namedprocess_namegroup_cpu_seconds_total[{w}]))", "groupname"),
    ("Nodes", "resident memory per node", "MB",
     "sum by (groupname) (namedprocess_namegroup_memory_bytes{{memtype=\"resident\"}}) / 1e6",
     "groupname"),
    # where there is none (docker): what the JVMs, etcd and Prometheus say of themselves
    ("Nodes", "CPU (JVMs, etcd, Prometheus)", "cores",
     "sum by (node) (rate(process_cpu_seconds_total{{job=~\"kafka|etcd|prometheus\"}}[{w}]))",
     "node"),
    ("Nodes", "resident memory (JVMs, etcd, Prometheus)", "MB",
     "max by (node) (process_resident_memory_bytes{{job=~\"kafka|etcd|prometheus\"}}) / 1e6",
     "node"),
]


def rate_window(scrape_interval_s: float) -> str:
    return f"{max(4.0, 4 * scrape_interval_s):g}s"


def charts(metrics: MetricsEndpoints | None, t0: float, t1: float, *,
           started: float | None = None) -> tuple[list[ServerChart], str | None]:
    """The server charts for unix times t0..t1, their x axis in seconds since `started`
    (default t0); and a note when there are none (no Prometheus, or it did not answer)."""
    if metrics is None:
        return [], "the stack runs no Prometheus (metrics.enabled is false)"
    prom, step = Prometheus(metrics.prometheus_url), max(1.0, metrics.scrape_interval_s)
    window, origin = rate_window(metrics.scrape_interval_s), started or t0
    out = []
    try:
        for group, title, unit, expr, key in CHARTS:
            found = prom.query_range(expr.format(w=window), t0, t1, step)
            series = {s.name(key): s.points for s in found}
            if series:
                out.append(ServerChart(title, relative(series, origin), unit, group))
    except PrometheusError as err:
        return out, str(err)
    return out, None
