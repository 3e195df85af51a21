"""The local stack end to end: real processes, real clients, through the real engine path.

The tests share one stack and run in file order: each leaves it healthy for the next.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource
from redis.sentinel import Sentinel

from datakit.nodes import process, tls
from datakit.nodes.control import control_for
from datakit.stack.lifecycle import StackError
from datakit.stack.schema import StackOutputs
from tests.support.pg_node import make_leader

pytestmark = pytest.mark.slow


def _pg(outputs: StackOutputs, name: str, **kw) -> psycopg.Connection:
    n = outputs.node(name)
    return psycopg.connect(host=n.host, port=n.port, dbname="postgres", user="postgres",
                           password=outputs.secrets.postgres.superuser,
                           autocommit=True, connect_timeout=3,
                           **tls.libpq(outputs.client_tls()), **kw)


def _in_recovery(outputs: StackOutputs, name: str) -> bool:
    with _pg(outputs, name) as conn:
        return conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]


def _replicas(outputs: StackOutputs) -> list[str]:
    """The PostgreSQL nodes that are replicas now, asked of the servers (not initial roles)."""
    return [n.name for n in outputs.of("postgres") if _in_recovery(outputs, n.name)]


def _primary(outputs: StackOutputs) -> str:
    return next(n.name for n in outputs.of("postgres") if not _in_recovery(outputs, n.name))


def _wait(probe, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_row_written_through_write_dsn_is_read_on_every_replica(e2e_stack):
    out = e2e_stack.outputs()
    marker = uuid.uuid4().hex
    with psycopg.connect(out.endpoints.postgres.write_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS e2e_rows (marker text)")
        conn.execute("INSERT INTO e2e_rows VALUES (%s)", (marker,))
    db = out.endpoints.postgres.database
    for name in _replicas(out):
        n = out.node(name)
        with psycopg.connect(host=n.host, port=n.port, dbname=db, user="postgres",
                             password=out.secrets.postgres.superuser,
                             **tls.libpq(out.client_tls())) as conn:
            found = _wait(lambda c=conn: c.execute(
                "SELECT count(*) FROM e2e_rows WHERE marker = %s", (marker,)).fetchone()[0])
            assert found == 1, f"row not replayed on {name}"


def test_read_dsn_reaches_a_standby(e2e_stack):
    out = e2e_stack.outputs()
    with psycopg.connect(out.endpoints.postgres.read_dsn) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True


def test_unauthenticated_access_is_refused(e2e_stack):
    out = e2e_stack.outputs()
    n = out.node("pg-1")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=n.host, port=n.port, dbname="postgres", user="postgres",
                        password="wrong", connect_timeout=3, **tls.libpq(out.client_tls()))
    r = out.node("redis-1")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=r.host, port=r.port, **tls.redis(out.tls_for("redis"))).ping()


def test_key_set_on_master_is_read_through_sentinel_and_on_every_replica(e2e_stack):
    out = e2e_stack.outputs()
    ep, pw = out.endpoints.redis, out.secrets.redis
    ssl = tls.redis(out.tls_for("redis"))
    sentinel = Sentinel([tuple(a.rsplit(":", 1)) for a in ep.sentinels],
                        sentinel_kwargs={"password": pw.sentinel, **ssl}, password=pw.default,
                        socket_timeout=2, **ssl)
    key, value = f"e2e:{uuid.uuid4().hex}", "v1"
    sentinel.master_for(ep.master_name).set(key, value)
    assert sentinel.slave_for(ep.master_name).get(key) in (value.encode(), None)
    for n in out.of("redis"):
        client = redis.Redis(host=n.host, port=n.port, password=pw.default, **ssl)
        assert _wait(lambda c=client: c.get(key)) == value.encode(), n.name


def test_topics_have_partitions_rf_isr_and_an_acks_all_message_round_trips(e2e_stack):
    out = e2e_stack.outputs()
    conf = out.kafka_config()
    admin = AdminClient(out.kafka_config(admin=True))  # kept alive until its futures resolve
    meta = admin.list_topics(timeout=10)
    expected = {"ms.agent.events": 12, "ms.system.metrics": 6}
    for topic, partitions in expected.items():
        parts = meta.topics[topic].partitions
        assert len(parts) == partitions
        assert all(len(p.replicas) == 3 and len(p.isrs) == 3 for p in parts.values())
    configs = admin.describe_configs(
        [ConfigResource("topic", "ms.agent.events")])
    values = next(iter(configs.values())).result()
    assert values["min.insync.replicas"].value == "2"
    assert values["unclean.leader.election.enable"].value == "false"

    body = uuid.uuid4().hex.encode()
    producer = Producer({**conf, "acks": "all", "enable.idempotence": True})
    producer.produce("ms.agent.events", key=b"e2e", value=body)
    assert producer.flush(15) == 0
    group = f"{out.endpoints.kafka.group_prefix}e2e-{uuid.uuid4().hex}"  # the app's groups
    consumer = Consumer({**conf, "group.id": group,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 1000})
    consumer.subscribe(["ms.agent.events"])
    try:
        deadline, seen = time.monotonic() + 40, False
        while not seen and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            seen = bool(msg and not msg.error() and msg.value() == body)
        assert seen, "message produced with acks=all was not consumed"
    finally:
        consumer.close()


def test_second_up_changes_nothing(e2e_stack):
    before = e2e_stack.outputs()
    result = e2e_stack.up()
    assert set(result.summary.resource_changes) <= {"same"}, result.summary.resource_changes
    assert e2e_stack.outputs().nodes == before.nodes


def test_a_new_migration_shows_in_preview_and_up_applies_it(e2e_stack, tmp_path):
    from datakit.migrate import rollback
    from datakit.paths import PROJECT_DIR
    from datakit.stack import lifecycle as stacks

    mdir = tmp_path / "migrations"
    shutil.copytree(PROJECT_DIR / "migrations", mdir)
    e2e_stack.edit(lambda c: c["datakit:postgres"].update(migrations=str(mdir)))
    e2e_stack.up()
    (mdir / "V0008__e2e_note.sql").write_text("CREATE TABLE ms_config.e2e_note (id int);\n")
    (mdir / "U0008__e2e_note.sql").write_text("DROP TABLE ms_config.e2e_note;\n")
    preview = stacks.preview(e2e_stack.name)
    assert preview.change_summary.get("update") == 1, preview.change_summary
    assert set(preview.change_summary) <= {"same", "update"}
    assert "ms_config.e2e_note" not in _tables(e2e_stack.outputs())  # preview applies nothing
    result = e2e_stack.up()
    assert result.summary.resource_changes.get("update") == 1
    assert "ms_config.e2e_note" in _tables(e2e_stack.outputs())
    # leave the shipped schema for the tests after this one
    rollback(e2e_stack.outputs().endpoints.postgres.write_dsn, mdir, target=7)


def _tables(outputs: StackOutputs) -> set[str]:
    with psycopg.connect(outputs.endpoints.postgres.write_dsn) as conn:
        return {r[0] for r in conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables")}


def test_the_primary_archives_finished_wal_segments(e2e_stack):
    from datakit.paths import PROJECT_DIR
    from datakit.topology import load

    archive = load(e2e_stack.name, PROJECT_DIR).archive_path()
    out = e2e_stack.outputs()
    with _pg(out, _primary(out)) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS archived (a int); INSERT INTO archived VALUES (1)")
        segment = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
        conn.execute("SELECT pg_switch_wal()")
        assert _wait(lambda: (archive / segment).is_file()), f"{segment} not in {archive}"
        assert (archive / segment).stat().st_size == 16 * 1024 * 1024
        assert conn.execute("SELECT failed_count FROM pg_stat_archiver").fetchone() == (0,)
        conn.execute("DROP TABLE archived")


def _started(outputs: StackOutputs, name: str) -> str:
    """When the node's postmaster started (Patroni's pid is the node's handle)."""
    with _pg(outputs, name) as conn:
        return str(conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0])


def test_sync_commit_waits_for_a_replica_and_up_brings_killed_replicas_back(e2e_stack):
    out = e2e_stack.outputs()
    for name in _replicas(out):  # the node lost: Patroni and its postmaster
        control_for(out.node(name), out).kill()
    done = threading.Event()

    def commit():
        with psycopg.connect(out.endpoints.postgres.write_dsn, autocommit=True) as c:
            c.execute("INSERT INTO e2e_rows VALUES ('sync')")
        done.set()

    writer = threading.Thread(target=commit, daemon=True)
    writer.start()
    # synchronous_mode_strict: no quorum standby left, so no commit is acknowledged.
    assert not done.wait(2.0), "a synchronous commit was acknowledged with no replica up"
    e2e_stack.up()  # refresh notices the dead members; up starts their Patroni again
    assert done.wait(60), "the commit did not complete once the replicas were back"
    after = e2e_stack.outputs()
    for name in _replicas(after):
        assert after.node(name).handle.pid != out.node(name).handle.pid
        with _pg(after, name) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]


def _set_pg_setting(config: dict, **values) -> None:
    config["datakit:postgres"]["settings"]["extra"].update(values)


def test_reloadable_setting_keeps_the_process_and_a_postmaster_one_restarts(e2e_stack):
    # Through Patroni: PATCH /config, then POST /restart where Patroni marks it pending.
    before = e2e_stack.outputs()
    started = {n.name: _started(before, n.name) for n in before.of("postgres")}
    e2e_stack.edit(lambda c: _set_pg_setting(c, work_mem="8MB"))
    e2e_stack.up()
    mid = e2e_stack.outputs()
    primary = _primary(mid)
    for n in mid.of("postgres"):
        with _pg(mid, n.name) as conn:
            assert conn.execute("SHOW work_mem").fetchone()[0] == "8MB", n.name
        assert _started(mid, n.name) == started[n.name], f"{n.name} restarted for work_mem"

    e2e_stack.edit(lambda c: c["datakit:postgres"]["settings"].update(max_connections=120))
    e2e_stack.up()
    after = e2e_stack.outputs()
    # Raising it on the primary first pauses the replicas' replay until they restart with
    # the new value too, in the same `up`: afterwards all agree and all stream.
    primary = _primary(after)
    for name in (primary, *_replicas(after)):
        with _pg(after, name) as conn:
            assert conn.execute("SHOW max_connections").fetchone()[0] == "120", name
        assert _started(after, name) != started[name], f"{name} was not restarted"
    with _pg(after, primary) as conn:
        states = _wait(lambda: dict(conn.execute(
            "SELECT application_name, state FROM pg_stat_replication").fetchall()) if len(
            conn.execute("SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'")
            .fetchall()) == 2 else None)
    assert states, "replicas did not stream again after the restart"

    # Lowering is the other order: a replica restarts only after replaying the primary's
    # lower value, or its recovery would abort.
    e2e_stack.edit(lambda c: c["datakit:postgres"]["settings"].update(max_connections=100))
    e2e_stack.up()
    lowered = e2e_stack.outputs()
    for name in (primary, *_replicas(lowered)):
        with _pg(lowered, name) as conn:
            assert conn.execute("SHOW max_connections").fetchone()[0] == "100", name
    with _pg(lowered, primary) as conn:
        assert _wait(lambda: len(conn.execute(
            "SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'").fetchall()) == 2)


def _port_taken(host: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen()
    return sock


def test_scaling_replicas_down_and_up_touches_only_that_node(e2e_stack):
    before = e2e_stack.outputs()
    make_leader(before, "pg-1")  # earlier tests may have moved the lead to pg-3
    kafka_pids = {n.name: n.handle.pid for n in before.of("kafka")}
    pg3 = before.node("pg-3")
    assert _primary(before) != "pg-3", "this test removes pg-3 as a replica"
    e2e_stack.edit(lambda c: c["datakit:postgres"].update(nodes=2))
    e2e_stack.up()
    mid = e2e_stack.outputs()
    assert "pg-3" not in {n.name for n in mid.nodes}
    assert not Path(pg3.handle.data_dir).exists()
    # Patroni drops the slot of a member gone member_slots_ttl ago
    kept_s = e2e_stack.config["datakit:postgres"]["patroni"]["member_slots_ttl"]
    with _pg(mid, _primary(mid)) as conn:
        slots = _wait(lambda: (lambda names: names if not any(
            "pg_3" in s for s in names) else None)([r[0] for r in conn.execute(
                "SELECT slot_name FROM pg_replication_slots")]), timeout=kept_s + 20)
    assert slots is not None and not any("pg_3" in s for s in slots), slots

    # A taken port fails `up` with a clear message; the next `up` continues.
    blocker = _port_taken(pg3.host, pg3.port)
    try:
        e2e_stack.edit(lambda c: c["datakit:postgres"].update(nodes=3))
        with pytest.raises(StackError, match=f"{pg3.port}.*in use"):
            e2e_stack.up()
    finally:
        blocker.close()
    e2e_stack.up()  # Patroni clones pg-3 again from the leader
    after = e2e_stack.outputs()
    with _pg(after, _primary(after)) as conn:
        states = dict(conn.execute(
            "SELECT application_name, state FROM pg_stat_replication").fetchall())
    assert states.get("pg-3") == "streaming", states
    assert {n.name: n.handle.pid for n in after.of("kafka")} == kafka_pids


def test_down_leaves_no_process_port_or_data_dir(e2e_stack):
    out = e2e_stack.outputs()
    e2e_stack.destroy()
    for n in out.nodes:
        assert not process.is_running(n.handle.pid, n.handle.start_time), n.name
        with socket.socket() as sock:
            assert sock.connect_ex((n.host, n.port)) != 0, f"{n.name} still listens"
    assert not any(d.exists() for d in out.data_dirs())
    assert not out.data_dirs()[0].parent.exists(), "the stack's data folder was left behind"
