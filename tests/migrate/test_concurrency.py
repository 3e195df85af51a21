"""One runner at a time: 16 concurrent appliers, kill -9 at random points, the lock's timeout."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import psycopg
import pytest
from migrate_helpers import DATAKIT, PROJECT, cli, query, write

from datakit.migrate import DriftError, apply, status
from datakit.migrate.lock import LOCK_KEY, LockTimeout


def cli_popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([DATAKIT, "migrate", *args], cwd=PROJECT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def slow_migrations(mdir, count: int, sleep: float) -> None:
    for i in range(1, count + 1):
        write(mdir, f"V{i:03d}__table_{i}.sql",
              f"CREATE TABLE t{i} (id int PRIMARY KEY);\n"
              f"INSERT INTO t{i} SELECT generate_series(1, 50);\n"
              f"SELECT pg_sleep({sleep});\n")


def runner_backends_gone(dsn: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while query(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                     "'datakit-migrate%'")[0][0]:
        assert time.monotonic() < deadline, "a killed runner's backend lingers"
        time.sleep(0.05)


def assert_consistent(dsn: str, count: int) -> set[int]:
    """Every table exists iff its version is recorded, once."""
    applied = [r[0] for r in query(dsn, "SELECT version FROM ms_migrations.schema_versions")] \
        if query(dsn, "SELECT to_regclass('ms_migrations.schema_versions')")[0][0] else []
    assert len(applied) == len(set(applied))
    made = {int(r[0][1:]) for r in query(
        dsn, "SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert made == set(applied)
    for v in applied:
        assert query(dsn, f"SELECT count(*) FROM t{v}") == [(50,)]
    return set(applied)


def test_sixteen_concurrent_appliers_apply_each_version_once(dsn, mdir):
    slow_migrations(mdir, 12, 0.02)
    procs = [cli_popen("apply", "--dsn", dsn, "--migrations-dir", str(mdir)) for _ in range(16)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 16, [o[1] for o in outs]
    assert assert_consistent(dsn, 12) == set(range(1, 13))
    per_version = query(dsn, "SELECT version, count(*) FROM ms_migrations.migration_log "
                             "WHERE operation='MIGRATE' GROUP BY version ORDER BY version")
    assert per_version == [(v, 1) for v in range(1, 13)]
    applied_lines = sum(o[0].count("applied V") for o in outs)
    assert applied_lines == 12


def test_kill_9_at_random_points_never_leaves_dirty_state(dsn, mdir):
    count = 30
    slow_migrations(mdir, count, 0.03)
    rng = random.Random(4)
    for _ in range(5):
        proc = cli_popen("apply", "--dsn", dsn, "--migrations-dir", str(mdir))
        time.sleep(rng.uniform(0.3, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        runner_backends_gone(dsn)
        assert_consistent(dsn, count)
    apply(dsn, mdir)
    assert assert_consistent(dsn, count) == set(range(1, count + 1))
    assert status(dsn, mdir).ok


def test_killed_no_transaction_migration_is_reported_precisely(dsn, mdir):
    write(mdir, "V1__t.sql", "CREATE TABLE t (a int);")
    write(mdir, "V2__slow.sql", "-- datakit:no-transaction\n"
          "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a_idx ON t (a);\n"
          "SELECT pg_sleep(30);\n"
          "CREATE TABLE IF NOT EXISTS done (a int);\n")
    proc = cli_popen("apply", "--dsn", dsn, "--migrations-dir", str(mdir))
    deadline = time.monotonic() + 30
    while not query(dsn, "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    runner_backends_gone(dsn)
    with pytest.raises(DriftError) as err:
        apply(dsn, mdir)
    msg = str(err.value)
    assert "V2__slow.sql (no-transaction) was interrupted part-way" in msg
    assert "statements 1-1 of 3 ran, statement 2 was: SELECT pg_sleep(30)" in msg
    write(mdir, "V2__slow.sql", (mdir / "V2__slow.sql").read_text().replace("30", "0"))
    from datakit.migrate import repair

    repair(dsn, mdir)
    apply(dsn, mdir)
    assert status(dsn, mdir).ok


def test_lock_timeout_names_the_holder(dsn, mdir):
    write(mdir, "V1__t.sql", "CREATE TABLE t (a int);")
    with psycopg.connect(dsn, autocommit=True, application_name="someone-else") as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        t0 = time.monotonic()
        with pytest.raises(LockTimeout) as err:
            apply(dsn, mdir, lock_wait=0.5)
        assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert "migration lock busy after 0.5s, held by server pid" in msg
    assert "someone-else" in msg and "--lock-wait" in msg
    apply(dsn, mdir)


def test_wait_replicas_waits_for_replay_and_reports_wal_and_lag(tmp_path, mdir):
    from tests.support.scratch_server import ScratchServer

    with ScratchServer(range(61050, 61100), fsync=False) as primary:
        replica_port = primary.add_replica()
        dsn = primary.create_database("replicated")
        write(mdir, "V1__t.sql", "CREATE TABLE t (a int);\n"
              "INSERT INTO t SELECT generate_series(1, 20000);")
        step = apply(dsn, mdir, wait_replicas=True).steps[0]
        assert step.replicas.replicas == 1 and step.wal_bytes > 100_000
        assert step.replicas.max_lag_bytes >= 0
        replica = primary.dsn("replicated").replace(f"port={primary.port}",
                                                     f"port={replica_port}")
        # replayed before apply returned: the replica already has every row
        assert query(replica, "SELECT count(*) FROM t") == [(20000,)]
        # a replica that stops replaying fails the run after --replica-timeout, naming it;
        # the migration itself committed on the primary and stays applied
        query(replica, "SELECT pg_wal_replay_pause()")
        write(mdir, "V2__u.sql", "CREATE TABLE u (a int);")
        proc = cli("apply", "--dsn", dsn, "--migrations-dir", str(mdir), "--wait-replicas",
                   "--replica-timeout", "1")
        assert proc.returncode == 1
        assert f"replicas replica{replica_port} did not replay the migration within 1s" \
            in proc.stderr
        assert query(dsn, "SELECT max(version) FROM ms_migrations.schema_versions") == [(2,)]
        query(replica, "SELECT pg_wal_replay_resume()")
