"""PostgreSQL nodes: a primary and two replicas with a synchronous quorum (ANY 1), for real."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from datakit.errors import DatakitError
from datakit.nodes import postgres as pg
from datakit.nodes import process
from datakit.nodes.postgres_client import WrongPassword, connect, live_primary
from datakit.nodes.readiness import wait_until

pytestmark = pytest.mark.slow


@dataclass
class Node:
    props: dict
    outs: dict = field(default_factory=dict)

    @property
    def addr(self) -> dict:
        return {"name": self.props["name"], "port": self.props["port"]}


@dataclass
class Cluster:
    primary: Node
    replicas: list[Node]
    su: dict
    app: dict

    @property
    def nodes(self) -> list[Node]:
        return [self.primary, *self.replicas]


def _props(name, port, base: Path, password, **extra) -> dict:
    return {
        "name": name, "port": port, "data_dir": str(base / name),
        "superuser_password": password("pg-superuser"),
        "replication_password": password("pg-replication"),
        "settings": {
            "max_connections": 40, "shared_buffers": "16MB", "effective_cache_size": "64MB",
            "maintenance_work_mem": "16MB", "wal_level": "replica", "max_wal_senders": 8,
            "max_replication_slots": 8, "synchronous_commit": "on",
            "synchronous_standby_names": "ANY 1 (replica1, replica2)",
            "hot_standby_feedback": True, "password_encryption": "scram-sha-256",
        },
        **extra,
    }


@pytest.fixture(scope="module")
def cluster(workdir, free_port, password, teardown) -> Cluster:
    base = workdir / "pg"
    base.mkdir()
    primary = Node(_props("primary", free_port(), base, password, app_user="app",
                          app_password=password("pg-app"), app_database="appdb"))
    teardown.add("delete primary", lambda: pg.delete(primary.props, primary.outs))
    primary.outs = pg.create_primary(primary.props)
    replicas = []
    for name in ("replica1", "replica2"):
        node = Node(_props(name, free_port(), base, password, peers=[primary.addr]))
        teardown.add(f"delete {name}", lambda n=node: pg.delete(n.props, n.outs))
        node.outs = pg.create_replica(node.props)
        replicas.append(node)
    su = {"user": "postgres", "password": password("pg-superuser")}
    app = {"user": "app", "password": password("pg-app"), "dbname": "appdb"}
    return Cluster(primary, replicas, su, app)


def _read_on(node: Node, cl: Cluster, query: str, params=()):
    with connect(node.addr, **cl.app) as conn:
        return conn.execute(query, params).fetchall()


def test_a_row_written_on_the_primary_is_read_on_both_replicas(cluster):
    with connect(cluster.primary.addr, **cluster.app) as conn:
        conn.execute("create table if not exists t (id int primary key, v text)")
        conn.execute("insert into t values (1, 'one')")
    for replica in cluster.replicas:
        rows = wait_until(lambda r=replica: _read_on(r, cluster, "select v from t where id = 1"),
                          what=f"row on {replica.props['name']}", timeout=10)
        assert rows == [("one",)]
        assert pg.health(replica.props, replica.outs)["role"] == "replica"
    assert pg.health(cluster.primary.props, cluster.primary.outs)["role"] == "primary"


def test_each_replica_streams_through_its_own_slot_under_its_name(cluster):
    with connect(cluster.primary.addr, **cluster.su) as conn:
        slots = dict(conn.execute("select slot_name, active from pg_replication_slots"))
        standbys = dict(conn.execute(
            "select application_name, sync_state from pg_stat_replication"))
    assert slots == {"replica1": True, "replica2": True}
    assert standbys == {"replica1": "quorum", "replica2": "quorum"}


def test_live_primary_is_asked_of_the_servers(cluster):
    nodes = [n.addr for n in cluster.nodes]
    assert live_primary(nodes, **cluster.su)["name"] == "primary"
    assert live_primary([n.addr for n in cluster.replicas], **cluster.su) is None


def test_a_synchronous_commit_is_acknowledged_only_with_a_replica_up(cluster):
    for replica in cluster.replicas:
        pg.stop(replica.props, replica.outs)
        assert not pg.alive(replica.props, replica.outs)
    done = threading.Event()
    failure: list[BaseException] = []

    def commit():
        try:
            with connect(cluster.primary.addr, **cluster.app) as conn:
                conn.execute("set application_name = 'sync-writer'")
                conn.execute("insert into t values (2, 'two')")  # autocommit: waits here
            done.set()
        except BaseException as exc:  # noqa: BLE001
            failure.append(exc)

    writer = threading.Thread(target=commit, daemon=True)
    writer.start()
    writer.join(2.0)
    assert not done.is_set() and not failure, "the commit returned with no standby up"
    with connect(cluster.primary.addr, **cluster.su) as conn:
        waits = conn.execute("select wait_event from pg_stat_activity "
                             "where application_name = 'sync-writer'").fetchall()
    assert waits == [("SyncRep",)]

    first = cluster.replicas[0]
    first.outs = pg.start(first.props, first.outs)
    writer.join(30)
    assert done.is_set() and not failure, failure
    second = cluster.replicas[1]
    second.outs = pg.start(second.props, second.outs)
    for replica in cluster.replicas:
        assert wait_until(lambda r=replica: _read_on(r, cluster, "select v from t where id = 2"),
                          what="row 2 on replica", timeout=15) == [("two",)]
        pg._wait_streaming(replica.props, replica.outs, cluster.primary.addr)


def test_a_reloadable_setting_is_applied_without_restart(cluster):
    node = cluster.primary
    new = {**node.props, "settings": {**node.props["settings"], "maintenance_work_mem": "24MB",
                                      "hot_standby_feedback": False}}
    outs = pg.update(node.props, node.outs, new)
    assert outs["applied"] == {"reloaded": ["hot_standby_feedback", "maintenance_work_mem"],
                               "restarted": []}
    assert outs["pid"] == node.outs["pid"]
    node.props, node.outs = new, outs
    with connect(node.addr, **cluster.su) as conn:
        assert conn.execute("show maintenance_work_mem").fetchone() == ("24MB",)


def test_a_postmaster_setting_is_applied_by_restart(cluster):
    node = cluster.replicas[1]
    new = {**node.props, "settings": {**node.props["settings"], "shared_buffers": "24MB"}}
    outs = pg.update(node.props, node.outs, new)
    assert outs["applied"] == {"reloaded": [], "restarted": ["shared_buffers"]}
    assert outs["pid"] != node.outs["pid"]
    assert not process.is_running(node.outs["pid"], node.outs["start_time"])
    node.props, node.outs = new, outs
    with connect(node.addr, **cluster.su) as conn:
        assert conn.execute("show shared_buffers").fetchone() == ("24MB",)
    assert pg.health(node.props, node.outs)["role"] == "replica"


def test_a_new_application_password_is_applied_in_place(cluster):
    node = cluster.primary
    new = {**node.props, "app_password": node.props["app_password"] + "-rotated"}
    outs = pg.update(node.props, node.outs, new)
    assert outs["pid"] == node.outs["pid"]
    with pytest.raises(WrongPassword):
        connect(node.addr, **cluster.app)
    cluster.app["password"] = new["app_password"]
    with connect(node.addr, **cluster.app) as conn:
        assert conn.execute("select current_user").fetchone() == ("app",)
    node.props, node.outs = new, outs


def test_a_bad_setting_is_refused_and_nothing_changes(cluster):
    node = cluster.primary
    new = {**node.props, "settings": {**node.props["settings"], "work_mem": "lots"}}
    with pytest.raises(DatakitError, match=r"postgres node primary .*settings refused: "
                                           r"invalid value for parameter \"work_mem\": \"lots\""):
        pg.update(node.props, node.outs, new)
    assert pg.alive(node.props, node.outs)
    with connect(node.addr, **cluster.su) as conn:
        assert conn.execute("select count(*) from pg_file_settings "
                            "where name = 'work_mem'").fetchone() == (0,)


def test_a_removed_replica_drops_its_slot(cluster, workdir, free_port, password):
    extra = Node(_props("replica3", free_port(), workdir / "pg", password,
                        peers=[cluster.primary.addr]))
    try:
        extra.outs = pg.create_replica(extra.props)
        with connect(cluster.primary.addr, **cluster.su) as conn:
            assert conn.execute("select active from pg_replication_slots "
                                "where slot_name = 'replica3'").fetchone() == (True,)
    finally:
        pg.delete(extra.props, extra.outs)
    assert not process.is_running(extra.outs["pid"], extra.outs["start_time"])
    assert not Path(extra.props["data_dir"]).exists()
    with connect(cluster.primary.addr, **cluster.su) as conn:
        assert conn.execute("select count(*) from pg_replication_slots "
                            "where slot_name = 'replica3'").fetchone() == (0,)


def test_a_wrong_password_is_refused_with_the_node_named(cluster):
    with pytest.raises(WrongPassword, match=r"postgres node primary \(127\.0\.0\.1:\d+\).*'app'"):
        connect(cluster.primary.addr, user="app", password="wrong", dbname="appdb")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host="127.0.0.1", port=cluster.primary.props["port"], user="postgres",
                        dbname="postgres", password="", connect_timeout=3)


def test_a_replica_with_a_wrong_replication_password_fails_cleanly(cluster, workdir, free_port,
                                                                   password):
    props = _props("replica9", free_port(), workdir / "pg", password,
                   peers=[cluster.primary.addr])
    props["replication_password"] = "not-it"
    try:
        with pytest.raises(DatakitError, match=r"postgres node replica9 .*replication role"):
            pg.create_replica(props)
        assert not (Path(props["data_dir"]) / "pgdata").exists()
        with connect(cluster.primary.addr, **cluster.su) as conn:
            assert conn.execute("select count(*) from pg_replication_slots "
                                "where slot_name = 'replica9'").fetchone() == (0,)
    finally:
        pg.delete(props, None)


def test_a_port_in_use_is_refused(workdir, free_port, password):
    port = free_port()
    props = _props("squatted", port, workdir / "pg", password)
    with socket.socket() as holder:
        # As servers do: a client socket of an earlier run in TIME_WAIT must not matter.
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(DatakitError,
                           match=rf"postgres node squatted .*{port} is already in use"):
            pg.create_primary(props)
    assert not Path(props["data_dir"]).exists()


def test_no_password_in_process_arguments_or_logs(cluster, password, all_cmdlines):
    secrets = [password("pg-superuser"), password("pg-replication"), password("pg-app")]
    argv = all_cmdlines()
    for node in cluster.nodes:
        log = Path(node.outs["log_path"]).read_text()
        hba = (Path(node.outs["pgdata"]) / "pg_hba.conf").read_text()
        rules = [line for line in hba.splitlines() if line and not line.startswith("#")]
        assert rules and not [rule for rule in rules if "trust" in rule]
        for secret in secrets:
            assert secret not in log and secret not in argv
    for replica in cluster.replicas:
        pgpass = Path(replica.props["data_dir"]) / "pgpass"
        assert pgpass.stat().st_mode & 0o777 == 0o600


def test_a_dead_replica_is_brought_back_by_create_on_its_data_dir(cluster):
    node = cluster.replicas[0]
    pg.kill(node.props, node.outs)
    assert not pg.alive(node.props, node.outs)
    outs = pg.create_replica(node.props)
    assert outs["slot"] == "replica1" and outs["pid"] != node.outs["pid"]
    node.outs = outs
    with connect(cluster.primary.addr, **cluster.su) as conn:
        assert conn.execute("select state from pg_stat_replication "
                            "where application_name = 'replica1'").fetchone() == ("streaming",)


def test_create_after_a_failover_keeps_the_promoted_replica_primary(cluster):
    """Last in this module: it kills the primary. Identity is not role."""
    old, promoted = cluster.primary, cluster.replicas[0]
    pg.kill(old.props, old.outs)
    with connect(promoted.addr, **cluster.su) as conn:
        assert conn.execute("select pg_promote(true, 30)").fetchone() == (True,)
    pg.stop(promoted.props, promoted.outs)
    outs = pg.create_replica({**promoted.props, "peers": [old.addr, cluster.replicas[1].addr]})
    promoted.outs = outs
    assert outs["slot"] is None
    assert pg.health(promoted.props, outs)["role"] == "primary"
    assert live_primary([n.addr for n in cluster.nodes], **cluster.su)["name"] == "replica1"
