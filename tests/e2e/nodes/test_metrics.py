"""Exporters and Prometheus against real servers: a PostgreSQL primary and replica, a Redis
server and a Sentinel, one KRaft Kafka node whose JVM loads the JMX agent, all scraped
every second by a Prometheus with datakit's alert rules."""

from __future__ import annotations

import os
import shutil
import signal
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg import sql

from datakit.errors import DatakitError
from datakit.nodes import kafka, process
from datakit.nodes import redis as rd
from datakit.nodes import redis_sentinel as rs
from datakit.nodes.metrics import exporters as ex
from datakit.nodes.metrics import prometheus as prom
from datakit.nodes.metrics import rules
from datakit.nodes.metrics.query import Prometheus
from datakit.nodes.postgres_client import connect
from datakit.nodes.process import RunAs
from datakit.nodes.readiness import wait_until
from datakit.topology.baselines import Baselines
from tests.support.scratch_server import ScratchServer

pytestmark = pytest.mark.slow
WAIT = 90.0  # the machine is shared: generous deadlines, never timed assertions
FOR_S = 5  # local's `for:` (rules.alert_rules' default)


@dataclass
class Stack:
    exporters: dict[str, dict]  # node name -> exporter props
    outs: dict[str, dict]
    prom: dict
    api: Prometheus
    passwords: list[str]
    pg_app: dict
    redis: tuple[dict, dict]
    kafka_agent: dict


def _servers(base: Path, free_port, password, teardown) -> dict:
    # A primary and a streaming replica of plain PostgreSQL (Patroni's own is not needed to
    # prove the exporters); the replica's application name is its node name.
    port = free_port()
    server = ScratchServer(ports=range(port, port + 1))
    teardown.add("stop pg-primary", server.stop)
    server.start()
    replica_port = server.add_replica(free_port(), name="pg-replica")
    with connect({"port": server.port}, user="postgres", password=server.password) as conn:
        ex.ensure_monitor_role(conn, "datakit_monitor", password("pg-monitor"))
        conn.execute(sql.SQL("CREATE ROLE app LOGIN PASSWORD {}").format(password("pg-app")))
        conn.execute("CREATE DATABASE appdb OWNER app")
    primary = {"name": "pg-primary", "port": server.port, "superuser_password": server.password}
    replica = {"name": "pg-replica", "port": replica_port}
    redis = {"name": "redis1", "port": free_port(), "data_dir": str(base / "redis1"),
             "password": password("redis"), "settings": {}, "replica": False, "peers": []}
    teardown.add("delete redis1", lambda: rd.delete(redis, None))
    redis_outs = rd.create_server(redis)
    sentinel = {"name": "sentinel1", "port": free_port(), "data_dir": str(base / "sentinel1"),
                "password": password("sentinel"), "master_name": "datakit",
                "master_password": password("redis"), "quorum": 1,
                "settings": {"down-after-milliseconds": 1000, "failover-timeout": 10000},
                "peers": [{"name": "redis1", "port": redis["port"]}]}
    teardown.add("delete sentinel1", lambda: rs.delete(sentinel, None))
    rs.create_sentinel(sentinel)
    return {"primary": primary, "replica": replica, "redis": (redis, redis_outs),
            "sentinel": sentinel}


def _kafka(base: Path, free_port, password, teardown) -> dict:
    """One combined KRaft node with the JMX agent on its JVM's command line."""
    agent_port, port, controller = free_port(), free_port(), free_port()
    agent = ex.javaagent(base / "kafka-jmx", agent_port, account=RunAs.service("kafka"))
    props = {"home": kafka.default_home(), "node_id": 1, "host": "127.0.0.1", "port": port,
             "controller_port": controller, "cluster_id": kafka.new_cluster_id(),
             "voters": [{"id": 1, "host": "127.0.0.1", "port": controller}],
             "data_dir": str(base / "kafka-1"), "heap_mb": 256, "admin_user": "admin",
             "admin_password": password("kafka-admin"), "app_user": "app",
             "app_password": password("kafka-app"), "jvm_options": [agent]}
    made: dict = {}
    teardown.add("delete kafka-1", lambda: kafka.delete_node(
        {**props, **made} if made else {"data_dir": props["data_dir"]}, graceful=False))
    made.update(kafka.create_node(props))
    return {"address": f"127.0.0.1:{agent_port}", "argument": agent, "outs": made}


def _exporter(kind, name, target_port, base, free_port, **auth) -> dict:
    return {"kind": kind, "name": name, "port": free_port(), "dir": str(base / f"exp-{name}"),
            "target": {"port": target_port}, **auth}


@pytest.fixture(scope="module")
def stack(workdir, free_port, password, teardown) -> Stack:
    base = workdir / "metrics"
    base.mkdir()
    servers = _servers(base, free_port, password, teardown)
    monitor = {"user": "datakit_monitor", "password": password("pg-monitor")}
    exporters = {
        "pg-primary": _exporter("postgres", "pg-primary", servers["primary"]["port"], base,
                                free_port, **monitor),
        "pg-replica": _exporter("postgres", "pg-replica", servers["replica"]["port"], base,
                                free_port, **monitor),
        "redis1": _exporter("redis", "redis1", servers["redis"][0]["port"], base, free_port,
                            password=password("redis")),
        "sentinel1": _exporter("redis", "sentinel1", servers["sentinel"]["port"], base,
                               free_port, password=password("sentinel")),
    }
    outs = {}
    for name, props in exporters.items():
        teardown.add(f"delete exporter {name}", lambda p=props: ex.delete(p, None))
        outs[name] = ex.start(props)
    agent = _kafka(base, free_port, password, teardown)
    jobs = {"postgres": ["pg-primary", "pg-replica"], "redis": ["redis1", "sentinel1"]}
    targets = {job: [{"address": f"127.0.0.1:{exporters[n]['port']}", "labels": {"node": n}}
                     for n in names] for job, names in jobs.items()}
    server = {"name": "prom", "port": free_port(), "dir": str(base / "prometheus"),
              "scrape_interval_s": 1, "retention": "1h", "targets": targets,
              "rules": rules.render(Baselines(), for_s=FOR_S),
              "external_labels": {"stack": "e2e"}}
    teardown.add("delete prometheus", lambda: prom.delete(server, None))
    prom.start(server)
    passwords = [password(r) for r in ("pg-monitor", "redis", "sentinel")]
    passwords.append(servers["primary"]["superuser_password"])
    app = {"port": servers["primary"]["port"], "user": "app", "password": password("pg-app"),
           "dbname": "appdb"}
    return Stack(exporters, outs, server, Prometheus(prom.url(server)), passwords, app,
                 servers["redis"], agent)


def _all_up(api: Prometheus, count: int):
    found = api.targets()
    down = [f"{t.labels.get('node')}: {t.health} {t.last_error}" for t in found
            if t.health != "up"]
    if len(found) != count or down:
        raise RuntimeError(f"{len(found)} targets, not up: {down}")
    return found


def _firing(api: Prometheus, name: str, **labels) -> list:
    return [a for a in api.alerts() if a.name == name and a.state == "firing"
            and all(a.labels.get(k) == v for k, v in labels.items())]


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


# --------------------------------------------------------------------------- exporters


def test_each_exporter_reaches_its_server(stack):
    for name, props in stack.exporters.items():
        health = ex.health(props)
        assert health["up"] and health["server_up"], (name, health)
    page = urllib.request.urlopen(ex.metrics_url(stack.exporters["pg-primary"])).read().decode()
    assert ex.sample(page, "pg_up") == 1
    assert "pg_node_wal_position_bytes" in page  # datakit's own queries are loaded
    assert 'pg_standby_replay_lag_seconds{application_name="pg-replica"' in page
    replica = urllib.request.urlopen(ex.metrics_url(stack.exporters["pg-replica"])).read()
    assert ex.sample(replica.decode(), "pg_node_in_recovery") == 1
    sentinel = urllib.request.urlopen(ex.metrics_url(stack.exporters["sentinel1"])).read()
    assert ex.sample(sentinel.decode(), "redis_up") == 1
    assert 'redis_sentinel_master_status{' in sentinel.decode()


def test_no_password_on_a_command_line_and_the_pg_password_file_is_private(stack,
                                                                           all_cmdlines):
    seen = all_cmdlines()
    for secret in stack.passwords:
        assert secret not in seen
    account = RunAs.service("prometheus")
    secret = Path(stack.exporters["pg-primary"]["dir"]) / "pg-password"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert secret.stat().st_uid == account.uid
    for outs in stack.outs.values():
        assert _uid(outs["pid"]) == account.uid  # the exporters run as `prometheus`


def test_a_wrong_monitor_password_fails_the_start_in_one_line(stack, free_port, workdir):
    bad = _exporter("postgres", "pg-bad", stack.pg_app["port"], workdir / "metrics",
                    free_port, user="datakit_monitor", password="not-the-password")
    try:
        with pytest.raises(DatakitError) as failed:
            ex.start(bad, timeout=8)
        said = str(failed.value)
        assert "does not reach its server" in said and "\n" not in said
        assert "password authentication failed" in said  # the exporter's own words
        assert not ex.alive(bad)
    finally:
        ex.delete(bad, None)


# --------------------------------------------------------------------------- Prometheus


def test_prometheus_scrapes_every_target_every_second(stack):
    found = wait_until(lambda: _all_up(stack.api, 4), what="every target up", timeout=WAIT)
    assert {t.labels["node"] for t in found} == set(stack.exporters)
    assert {t.job for t in found} == {"postgres", "redis"}
    (series,) = stack.api.query('up{node="pg-primary"}')
    assert series.labels["job"] == "postgres" and series.points[0][1] == 1
    pid, _ = prom.running(stack.prom)
    assert _uid(pid) == RunAs.service("prometheus").uid


def test_a_range_query_shows_the_commit_rate_rise_after_writes(stack):
    wait_until(lambda: _all_up(stack.api, 4), what="every target up", timeout=WAIT)
    expr = 'rate(pg_stat_database_xact_commit{node="pg-primary", datname="appdb"}[3s])'
    wait_until(lambda: stack.api.query(expr), what="a commit rate", timeout=WAIT)
    before = time.time()
    with connect({"port": stack.pg_app["port"]}, user="app", password=stack.pg_app["password"],
                 dbname="appdb") as conn:
        conn.execute("create table if not exists metrics_t (id serial primary key, v int)")
        for i in range(400):
            conn.execute("insert into metrics_t (v) values (%s)", [i])

    def rise():
        (series,) = stack.api.query_range(expr, before - 5, time.time(), 1)
        earlier = [v for t, v in series.points if t < before]
        later = [v for t, v in series.points if t >= before]
        return series if earlier and later and max(later) > max(earlier) + 1 else None

    series = wait_until(rise, what="the commit rate rising in a range query", timeout=WAIT)
    assert series.labels["node"] == "pg-primary" and series.labels["job"] == "postgres"
    times = [t for t, _ in series.points]
    assert all(round(b - a, 3) == 1 for a, b in zip(times, times[1:], strict=False))  # step


# --------------------------------------------------------------------------- rules


def test_the_rules_load_and_nothing_fires_on_a_healthy_stack(stack):
    wait_until(lambda: _all_up(stack.api, 4), what="every target up", timeout=WAIT)
    time.sleep(3)  # a few evaluations with every target's data (interval 1 s)
    (group,) = stack.api.rules()
    assert group["name"] == rules.GROUP
    assert len(group["rules"]) == len(rules.alert_rules(Baselines()))
    assert all(r["health"] == "ok" for r in group["rules"]), group["rules"]
    assert stack.api.alerts() == []


def test_an_alert_fires_when_an_exporter_stops_and_clears_when_it_is_back(stack):
    redis = stack.exporters["redis1"]
    ex.stop(redis, stack.outs["redis1"])
    try:
        (alert,) = wait_until(lambda: _firing(stack.api, "ExporterDown", node="redis1"),
                              what="ExporterDown firing", timeout=WAIT)
        assert alert.labels["severity"] == "critical" and alert.labels["job"] == "redis"
        assert "does not answer" in alert.annotations["summary"]
    finally:
        stack.outs["redis1"] = ex.start(redis)
    wait_until(lambda: not [a for a in stack.api.alerts() if a.name == "ExporterDown"],
               what="ExporterDown cleared", timeout=WAIT)


def test_sentinel_without_a_master_fires_while_the_master_is_frozen(stack):
    props, outs = stack.redis
    pid = rd._running(props)[0]
    os.kill(pid, signal.SIGSTOP)  # no replica: Sentinel cannot fail over, the master is odown
    try:
        wait_until(lambda: _firing(stack.api, "SentinelWithoutMaster", node="sentinel1"),
                   what="SentinelWithoutMaster firing", timeout=WAIT)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: not [a for a in stack.api.alerts()
                            if a.name in ("SentinelWithoutMaster", "RedisDown")],
               what="the Sentinel and Redis alerts cleared", timeout=WAIT)


# --------------------------------------------------------------------------- Kafka's JVM


def test_the_javaagent_makes_kafkas_jvm_serve_metrics_that_the_rules_read(stack):
    agent = stack.kafka_agent
    assert agent["argument"].startswith("-javaagent:") and agent["argument"].endswith(
        "jmx-exporter.yml")
    page = urllib.request.urlopen(f"http://{agent['address']}/metrics").read().decode()
    for name in ("kafka_server_replicamanager_underreplicatedpartitions",
                 "kafka_server_replicamanager_underminisrpartitioncount",
                 "kafka_controller_kafkacontroller_offlinepartitionscount",
                 "kafka_server_brokertopicmetrics_bytesin_total", "kafka_raft_current_epoch"):
        assert ex.sample(page, name) is not None, name
    assert ex.sample(page, "process_resident_memory_bytes") > 0  # the JVM's own, for RSS
    kafka_pid = agent["outs"]["pid"]
    assert agent["argument"].encode() in Path(f"/proc/{kafka_pid}/cmdline").read_bytes()


def test_a_reload_adds_the_kafka_target_without_a_restart(stack):
    pid, _ = prom.running(stack.prom)
    server = {**stack.prom, "targets": {**stack.prom["targets"], "kafka": [
        {"address": stack.kafka_agent["address"], "labels": {"node": "kafka-1"}}]}}
    prom.reload(server)
    found = wait_until(lambda: _all_up(stack.api, 5), what="five targets up", timeout=WAIT)
    assert "kafka" in {t.job for t in found}
    assert prom.running(stack.prom)[0] == pid
    time.sleep(3)  # evaluations with the broker's data
    assert stack.api.alerts() == []


def test_delete_leaves_no_process_and_no_dir(stack, free_port, workdir):
    props = _exporter("redis", "redis-once", stack.redis[0]["port"], workdir / "metrics",
                      free_port, password=stack.passwords[1])
    outs = ex.start(props)
    ex.delete(props, outs)
    assert not ex.alive(props) and not process.is_running(outs["pid"], outs["start_time"])
    assert not Path(props["dir"]).exists()
    assert shutil.which("prometheus-redis-exporter")
