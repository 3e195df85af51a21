"""Metrics on the local stack, made by `up`: an exporter beside every PostgreSQL, Redis
and Sentinel node, the JMX agent in every Kafka JVM, Patroni's and etcd's own /metrics,
and one Prometheus scraping them all with the stack's alert rules. A dead exporter fires
ExporterDown naming its node, and a second `up` brings it back.

Runs on the shared e2e stack (before test_local_stack, which ends with `down`).
"""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest

from datakit.nodes.metrics.query import Prometheus
from datakit.stack.schema import StackOutputs

pytestmark = pytest.mark.slow

JOBS = {"postgres", "redis", "sentinel", "kafka", "patroni", "etcd", "processes", "prometheus"}


def _wait(probe, timeout: float = 60.0, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(interval)


def _prometheus(out: StackOutputs) -> Prometheus:
    assert out.endpoints.metrics, "the stack's outputs name no Prometheus"
    return Prometheus(out.endpoints.metrics.prometheus_url)


def _down(prom: Prometheus) -> list[str]:
    return [f"{t.job} {t.labels.get('node')}: {t.health} {t.last_error}"
            for t in prom.targets() if t.health != "up"]


def _firing(prom: Prometheus) -> list[tuple[str, str]]:
    return [(a.name, a.labels.get("node", "")) for a in prom.alerts() if a.state == "firing"]


def test_prometheus_scrapes_every_server_and_no_alert_fires(e2e_stack):
    out = e2e_stack.outputs()
    metrics, prom = out.endpoints.metrics, _prometheus(out)
    assert metrics.scrape_interval_s == 1
    assert {t.job for t in metrics.targets} == JOBS
    wanted = {t.address for t in metrics.targets}  # listed once its config is read
    assert _wait(lambda: {t.instance for t in prom.targets()} == wanted, timeout=30), \
        prom.targets()
    assert _wait(lambda: not _down(prom), timeout=30), _down(prom)
    # Each exporter reaches its own server, under the node's name.
    pg_up = {s.labels["node"]: s.points[0][1] for s in prom.query("pg_up")}
    assert pg_up == {"pg-1": 1.0, "pg-2": 1.0, "pg-3": 1.0}
    redis_up = {s.labels["node"] for s in prom.query("redis_up == 1")}
    assert redis_up == {n.name for n in out.nodes if n.service in ("redis", "sentinel")}
    brokers = {s.labels["node"] for s in
               prom.query("kafka_server_replicamanager_underreplicatedpartitions")}
    assert brokers == {"kafka-1", "kafka-2", "kafka-3"}
    assert prom.query("sum(patroni_primary)")[0].points[0][1] == 1.0
    # Slots as the primary holds them, each replica's active: the copies of their peers'
    # slots that Patroni keeps on replicas (idle there by design) are not reported.
    slots = _wait(lambda: {(s.labels["node"], s.labels["slot_name"], s.points[0][1])
                           for s in prom.query("pg_replication_slots_active")}, timeout=30)
    holders = {node for node, _, _ in slots}
    assert len(holders) == 1, slots
    primary = holders.pop()
    assert {(name, active) for _, name, active in slots} == {
        (n.replace("-", "_"), 1.0) for n in ("pg-1", "pg-2", "pg-3") if n != primary}, slots
    # Every node's memory, from /proc: each group holds its node's processes.
    groups = {s.labels["groupname"] for s in prom.query(
        'namedprocess_namegroup_num_procs > 0')}
    assert {n.name for n in out.nodes if n.service != "exporter"} - {"prometheus"} <= groups, \
        groups
    rules = {r["name"] for g in prom.rules() for r in g["rules"]}
    assert {"ExporterDown", "PostgresDown", "SentinelWithoutMaster",
            "KafkaOfflinePartitions"} <= rules
    assert _wait(lambda: not _firing(prom), timeout=30), _firing(prom)


def test_the_exporters_role_may_read_statistics_and_nothing_else(e2e_stack):
    out = e2e_stack.outputs()
    user, password = out.endpoints.metrics.postgres_user, out.secrets.postgres.monitor
    dsn = out.endpoints.postgres.write_dsn.replace(f"user={out.endpoints.postgres.app_user}",
                                                   f"user={user}")
    with psycopg.connect(dsn, password=password, dbname="postgres", autocommit=True) as conn:
        assert conn.execute("select pg_has_role(current_user, 'pg_monitor', 'member'), "
                            "rolsuper from pg_roles where rolname = current_user"
                            ).fetchone() == (True, False)
        assert conn.execute("select count(*) from pg_stat_activity").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("create table monitor_may_not (a int)")


def test_a_dead_exporter_fires_its_alert_and_up_brings_it_back(e2e_stack):
    out = e2e_stack.outputs()
    prom, victim = _prometheus(out), out.node("pg-2-exporter")
    os.kill(victim.handle.pid, signal.SIGKILL)
    fired = _wait(lambda: ("ExporterDown", "pg-2") in _firing(prom), timeout=60)
    assert fired, f"ExporterDown did not fire for pg-2; firing: {_firing(prom)}"
    e2e_stack.up()  # refresh finds the exporter gone; up starts it again
    assert _wait(lambda: ("ExporterDown", "pg-2") not in _firing(prom), timeout=60), \
        _firing(prom)
    assert not _down(prom)
