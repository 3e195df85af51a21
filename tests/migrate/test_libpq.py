"""The runner's libpq client on a real server: values, quoting, notices, Ctrl-C, a lost link."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from migrate_helpers import DATAKIT, PROJECT, cli, query, write

from datakit.errors import DatakitError
from datakit.migrate import MigrationFailed, apply, libpq, status
from datakit.migrate.connection import connect


def test_values_come_back_typed_as_psycopg_gives_them(dsn):
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT 1::int2, 2::int4, 3::int8, true, 1.5::float8, 2.25::numeric, 'x'::text, "
            "NULL::text, '{\"a\": [1]}'::jsonb, '2024-01-02 03:04:05.5+00'::timestamptz, "
            "'127.0.0.1'::inet").fetchone()
    assert row[:8] == (1, 2, 3, True, 1.5, Decimal("2.25"), "x", None)
    assert row[8] == {"a": [1]} and row[10] == "127.0.0.1"
    assert row[9] == datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)  # in the session's zone


@pytest.mark.parametrize("text", ["plain", "it's", "back\\slash", "", "é ✓ 漢字", "%s %(x)s"])
def test_parameters_and_literals_arrive_as_sent(dsn, text):
    with connect(dsn) as conn:
        params = {"t": text, "n": None, "i": 7, "l": [1, 2]}
        sql = "SELECT %(t)s::text, %(t)s = %(t)s, %(n)s::text, %(i)s + 1, 2 = ANY(%(l)s), '%%'"
        assert conn.execute(sql, params).fetchone() == (text, True, None, 8, True, "%")
        assert conn.execute(conn.mogrify(sql, params)).fetchone() == (text, True, None, 8, True,
                                                                      "%")
        assert conn.execute("SELECT %s, %s", (text, 1)).fetchone() == (text, 1)


def test_a_script_gives_every_result_and_a_server_error_its_fields(dsn):
    with connect(dsn) as conn:
        cur = conn.execute("SELECT 1; CREATE TABLE t (a int); SELECT 2, 3")
        assert (cur.statusmessage, cur.fetchone()) == ("SELECT 1", (1,))
        assert cur.nextset() and cur.statusmessage == "CREATE TABLE" and cur.rowcount == 0
        assert cur.nextset() and cur.fetchall() == [(2, 3)] and cur.nextset() is None
        with pytest.raises(libpq.Error) as err:
            conn.execute("SELECT 1;\nSELECT * FROM nowhere")
        assert err.value.sqlstate == "42P01" and err.value.diag.statement_position == "25"
        assert err.value.diag.message_primary == 'relation "nowhere" does not exist'
        with pytest.raises(libpq.Error), conn.transaction():
            conn.execute("INSERT INTO t VALUES (1)")
            conn.execute("SELECT 1/0")
        assert conn.transaction_status == libpq.IDLE and not conn.closed
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_non_ascii_sql_and_its_errors_keep_their_characters(dsn, mdir):
    write(mdir, "V1__t.sql", "-- café ✓\nCREATE TABLE t (s text);\n"
                             "INSERT INTO t VALUES ('héllo ✓');")
    write(mdir, "V2__bad.sql", "SELECT * FROM \"nowhere ✓\";")
    with pytest.raises(MigrationFailed, match='relation "nowhere ✓" does not exist'):
        apply(dsn, mdir)
    assert query(dsn, "SELECT s FROM t") == [("héllo ✓",)]


def test_notices_do_not_reach_the_terminal(dsn, mdir):
    write(mdir, "V1__t.sql", "CREATE TABLE IF NOT EXISTS t (a int);\n"
          "CREATE TABLE IF NOT EXISTS t (a int);\nDO $$ BEGIN RAISE NOTICE 'hello'; END $$;")
    run = cli("apply", "--dsn", dsn, "--migrations-dir", str(mdir))
    assert run.returncode == 0 and run.stderr == ""


def interrupt_when_sleeping(dsn: str, *args: str) -> subprocess.CompletedProcess:
    """Run `datakit migrate ARGS`, press Ctrl-C once the server sleeps in pg_sleep(3600)."""
    proc = subprocess.Popen([DATAKIT, "migrate", *args], cwd=PROJECT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3600)%' " \
               "AND pid <> pg_backend_pid()"
    deadline = time.monotonic() + 30
    while query(dsn, sleeping) != [(1,)]:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)  # it sleeps an hour: only a cancel ends it sooner
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_cancels_the_running_statement(dsn, mdir):
    write(mdir, "V1__t.sql", "CREATE TABLE t (a int);")
    write(mdir, "V2__sleep.sql", "SELECT pg_sleep(3600);")
    run = interrupt_when_sleeping(dsn, "apply", "--dsn", dsn, "--migrations-dir", str(mdir))
    assert run.returncode != 0 and "KeyboardInterrupt" in run.stderr
    # V1 committed before V2 began, in the same round trip; V2 did not
    assert query(dsn, "SELECT version FROM ms_migrations.schema_versions") == [(1,)]


def test_ctrl_c_in_an_undo_rolls_it_back(dsn, mdir):
    write(mdir, "V1__t.sql", "CREATE TABLE t (a int);")
    write(mdir, "U1__t.sql", "DROP TABLE t;\nSELECT pg_sleep(3600);")
    apply(dsn, mdir)
    run = interrupt_when_sleeping(dsn, "rollback", "--steps", "1", "--dsn", dsn,
                                  "--migrations-dir", str(mdir))
    assert run.returncode != 0 and "in progress" not in run.stderr, run.stderr
    assert query(dsn, "SELECT version FROM ms_migrations.schema_versions") == [(1,)]
    assert query(dsn, "SELECT to_regclass('t') IS NOT NULL") == [(True,)]


def test_a_connection_lost_in_a_batch_is_one_clear_line(dsn, mdir):
    write(mdir, "V1__t.sql", "CREATE TABLE t (a int);")
    write(mdir, "V2__end.sql", "SELECT pg_terminate_backend(pg_backend_pid());")
    with pytest.raises(MigrationFailed, match=r"lost the connection while applying .*V1__t.sql"
                                              r" and the 1 migration\(s\) after it.*apply again"):
        apply(dsn, mdir)
    assert [r.state for r in status(dsn, mdir).rows] == ["applied", "pending"]


def test_a_bad_connection_string_is_one_clear_line():
    with pytest.raises(DatakitError, match=r"invalid DSN \(.*nonsense.*\); check --dsn"):
        connect("host=127.0.0.1 nonsense=1")
