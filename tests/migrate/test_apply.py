"""apply, rollback, drift, out-of-order, baseline, repair and reset on a real PostgreSQL."""

from __future__ import annotations

import pytest
from migrate_helpers import query, write

from datakit.errors import DatakitError
from datakit.migrate import (
    DriftError,
    MigrationFailed,
    apply,
    baseline,
    batches,
    repair,
    reset,
    rollback,
    status,
    validate,
)


def five(mdir, failing: int | None = None):
    for i in range(1, 6):
        body = f"CREATE TABLE t{i} (id int PRIMARY KEY);\nINSERT INTO t{i} VALUES (1);\n"
        if i == failing:
            body += "INSERT INTO no_such_table VALUES (1);\n"
        write(mdir, f"V{i}__table_{i}.sql", body)
        write(mdir, f"U{i}__table_{i}.sql", f"DROP TABLE t{i};")


def tables(dsn) -> set[str]:
    return {r[0] for r in query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname='public'")}


def test_apply_records_history_and_log(dsn, mdir):
    five(mdir)
    result = apply(dsn, mdir)
    assert [s.version for s in result.steps] == [1, 2, 3, 4, 5]
    assert all(s.wal_bytes and s.wal_bytes > 0 for s in result.steps)
    rows = query(dsn, "SELECT version, file, length(checksum), applied_by, undo_sql "
                      "FROM ms_migrations.schema_versions ORDER BY version")
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0][1] == "V1__table_1.sql" and rows[0][2] == 64 and rows[0][3] == "postgres"
    assert rows[0][4] == "DROP TABLE t1;"
    log = query(dsn, "SELECT version, operation, status, completed_at IS NOT NULL "
                     "FROM ms_migrations.migration_log ORDER BY id")
    assert log == [(i, "MIGRATE", "SUCCESS", True) for i in range(1, 6)]
    assert apply(dsn, mdir).steps == []
    assert status(dsn, mdir).ok


def test_failing_migration_in_the_middle_of_five(dsn, mdir):
    five(mdir, failing=3)
    with pytest.raises(MigrationFailed) as err:
        apply(dsn, mdir)
    msg = str(err.value)
    assert "V3__table_3.sql failed at line 3, column 13" in msg
    assert "no_such_table" in msg and "42P01" in msg and "\n" not in msg
    assert tables(dsn) == {"t1", "t2"}
    assert [r[0] for r in query(dsn, "SELECT version FROM ms_migrations.schema_versions "
                                     "ORDER BY 1")] == [1, 2]
    failed = query(dsn, "SELECT version, error_sqlstate, error_position, error_message "
                        "FROM ms_migrations.migration_log WHERE status = 'FAILED'")
    assert failed[0][:3] == (3, "42P01", "3:13") and "no_such_table" in failed[0][3]
    five(mdir)  # fixed
    assert [s.version for s in apply(dsn, mdir).steps] == [3, 4, 5]


def test_tricky_sql_forms_run_as_postgres_parses_them(dsn, mdir):
    write(mdir, "V1__tricky.sql", r"""
-- a comment; with semicolons; in it
/* a block comment; too */
CREATE FUNCTION add_one(i int) RETURNS int LANGUAGE plpgsql AS $body$
BEGIN
    RETURN i + 1;  -- semicolons inside a dollar-quoted body
END;
$body$;
CREATE FUNCTION twice(i int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
    SELECT i * 2;
END;
CREATE TABLE notes (body text);
DO $$ BEGIN INSERT INTO notes VALUES ('from a DO block; ok'); END $$;
INSERT INTO notes VALUES (E'it\'s; escaped'), ('plain ''quoted''; text');
""")
    write(mdir, "V2__concurrent.sql", """-- datakit:no-transaction
-- datakit:lock-timeout=5s
CREATE INDEX CONCURRENTLY notes_body_idx ON notes (body);
CREATE INDEX CONCURRENTLY notes_len_idx ON notes (length(body));
DO $$ BEGIN PERFORM add_one(1); END $$;
""")
    apply(dsn, mdir)
    assert query(dsn, "SELECT add_one(1), twice(4)") == [(2, 8)]
    assert sorted(r[0] for r in query(dsn, "SELECT body FROM notes")) == [
        "from a DO block; ok", "it's; escaped", "plain 'quoted'; text"]
    assert query(dsn, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == [(0,)]
    assert {r[0] for r in query(dsn, "SELECT indexname FROM pg_indexes "
                                     "WHERE tablename='notes'")} == {"notes_body_idx",
                                                                     "notes_len_idx"}


def test_syntax_error_names_the_file_and_earlier_migrations_stay_applied(dsn, mdir):
    five(mdir)
    write(mdir, "V4__table_4.sql", "CREATE TABLE t4 (id int;\n")
    with pytest.raises(DatakitError, match=r"V4__table_4.sql:1:\d+: syntax error.*earlier "
                                           r"migrations stay applied"):
        apply(dsn, mdir)
    assert tables(dsn) == {"t1", "t2", "t3"}


def test_changed_file_is_drift_with_both_checksums(dsn, mdir):
    five(mdir)
    apply(dsn, mdir)
    old = query(dsn, "SELECT checksum FROM ms_migrations.schema_versions WHERE version=2")[0][0]
    write(mdir, "V2__table_2.sql", "CREATE TABLE t2 (id bigint PRIMARY KEY);\n")
    write(mdir, "V6__six.sql", "CREATE TABLE t6 ();")
    for call in (lambda: apply(dsn, mdir), lambda: validate(dsn, mdir)):
        with pytest.raises(DriftError) as err:
            call()
        assert "V2__table_2.sql changed since it was applied" in str(err.value)
        assert old in str(err.value) and "datakit migrate repair" in str(err.value)
    report = status(dsn, mdir)
    assert not report.ok and [r.state for r in report.drifted] == ["drifted"]
    fixes = repair(dsn, mdir)
    assert [(f.version, f.old) for f in fixes] == [(2, old)]
    logged = query(dsn, "SELECT context->>'old_checksum', context->>'new_checksum' FROM "
                        "ms_migrations.migration_log WHERE operation = 'REPAIR'")
    assert logged == [(old, fixes[0].new)]
    assert [s.version for s in apply(dsn, mdir).steps] == [6]


def test_applied_version_without_file_is_drift(dsn, mdir):
    five(mdir)
    apply(dsn, mdir)
    (mdir / "V5__table_5.sql").unlink()
    (mdir / "U5__table_5.sql").unlink()
    with pytest.raises(DriftError, match=r"version 5 \(V5__table_5.sql\) is applied but its "
                                         r"file is missing.*rollback --target 4"):
        apply(dsn, mdir)
    with pytest.raises(DriftError, match=r"V5__table_5.sql\) is applied but its file is missing"):
        validate(dsn, mdir)
    assert status(dsn, mdir).rows[-1].state == "missing-file"
    # the stored undo still works without the files
    rollback(dsn, mdir, target=4)
    assert "t5" not in tables(dsn)
    assert apply(dsn, mdir).steps == []


def test_out_of_order_is_refused_unless_allowed(dsn, mdir):
    write(mdir, "V1__one.sql", "CREATE TABLE one ();")
    write(mdir, "V3__three.sql", "CREATE TABLE three ();")
    apply(dsn, mdir)
    write(mdir, "V2__two.sql", "CREATE TABLE two ();")
    with pytest.raises(DriftError, match=r"V2__two.sql: version 2 is older than the newest "
                                         r"applied version 3.*--allow-out-of-order"):
        apply(dsn, mdir)
    assert not status(dsn, mdir).ok
    write(mdir, "V4__four.sql", "CREATE TABLE four ();")  # one batch around applied V3
    assert [s.version for s in apply(dsn, mdir, allow_out_of_order=True).steps] == [2, 4]
    assert {"two", "four"} <= tables(dsn)


def test_target_and_dry_run(dsn, mdir):
    five(mdir)
    planned = apply(dsn, mdir, target=3, dry_run=True)
    assert planned.planned == ["V1__table_1.sql", "V2__table_2.sql", "V3__table_3.sql"]
    assert tables(dsn) == set()
    apply(dsn, mdir, target=3)
    assert tables(dsn) == {"t1", "t2", "t3"}
    assert [r.state for r in status(dsn, mdir).rows] == ["applied"] * 3 + ["pending"] * 2


def test_rollback_by_steps_and_target(dsn, mdir):
    five(mdir)
    apply(dsn, mdir)
    assert rollback(dsn, mdir, steps=2, dry_run=True).planned == ["U5__table_5.sql",
                                                                  "U4__table_4.sql"]
    assert tables(dsn) == {"t1", "t2", "t3", "t4", "t5"}
    rollback(dsn, mdir, steps=2)
    assert tables(dsn) == {"t1", "t2", "t3"}
    rollback(dsn, mdir, target=1)
    assert tables(dsn) == {"t1"}
    ops = query(dsn, "SELECT version FROM ms_migrations.migration_log "
                     "WHERE operation='ROLLBACK' AND status='SUCCESS' ORDER BY id")
    assert [r[0] for r in ops] == [5, 4, 3, 2]
    apply(dsn, mdir)
    assert tables(dsn) == {"t1", "t2", "t3", "t4", "t5"}


def test_rollback_without_undo_is_refused_before_anything(dsn, mdir):
    five(mdir)
    write(mdir, "V6__six.sql", "CREATE TABLE t6 ();")
    apply(dsn, mdir)
    with pytest.raises(DatakitError, match=r"version 6 \(V6__six.sql\) has no undo: write "
                                           r"U0006__six.sql"):
        rollback(dsn, mdir, target=3)
    assert "t6" in tables(dsn) and "t5" in tables(dsn)
    with pytest.raises(DatakitError, match="exactly one of"):
        rollback(dsn, mdir)


def test_baseline_adopts_an_existing_database(dsn, mdir):
    five(mdir)
    query(dsn, "CREATE TABLE t1 (id int PRIMARY KEY); CREATE TABLE t2 (id int PRIMARY KEY)")
    baseline(dsn, 2, mdir)
    assert [s.version for s in apply(dsn, mdir).steps] == [3, 4, 5]
    assert [r.state for r in status(dsn, mdir).rows] == ["baseline"] * 2 + ["applied"] * 3
    with pytest.raises(DatakitError, match="already has migration history"):
        baseline(dsn, 2, mdir)
    with pytest.raises(DatakitError, match="no migration with version 9"):
        baseline(dsn, 9, mdir)


def test_reset_needs_yes_and_a_disposable_stack(dsn, mdir):
    five(mdir)
    apply(dsn, mdir)
    with pytest.raises(DatakitError, match="pass --yes"):
        reset(dsn, yes=False)
    with pytest.raises(DatakitError, match="not marked disposable"):
        reset(dsn, yes=True, disposable=False)
    assert tables(dsn)
    dropped = reset(dsn, yes=True, disposable=True)
    assert "ms_migrations" in dropped and tables(dsn) == set()
    assert [s.version for s in apply(dsn, mdir).steps] == [1, 2, 3, 4, 5]


def test_lock_timeout_directive_stops_a_migration_stuck_behind_a_lock(dsn, mdir):
    import psycopg

    write(mdir, "V1__t.sql", "CREATE TABLE t (a int);")
    apply(dsn, mdir)
    write(mdir, "V2__alter.sql", "-- datakit:lock-timeout=200ms\nALTER TABLE t ADD COLUMN b int;")
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE t IN ACCESS SHARE MODE")
        with pytest.raises(MigrationFailed, match=r"V2__alter.sql failed.*55P03.*lock-timeout"):
            apply(dsn, mdir)
    apply(dsn, mdir)


def test_statement_timeout_directive_cancels_a_slow_migration(dsn, mdir):
    write(mdir, "V1__t.sql", "CREATE TABLE t (a int);")
    write(mdir, "V2__slow.sql", "-- datakit:statement-timeout=200ms\n"
          "INSERT INTO t SELECT 1 FROM pg_sleep(5);")
    write(mdir, "V3__after.sql", "SELECT 1;")  # the setting must not leak into the next file
    with pytest.raises(MigrationFailed, match=r"V2__slow.sql failed.*57014.*statement-timeout"):
        apply(dsn, mdir)
    assert query(dsn, "SELECT count(*) FROM t") == [(0,)]
    assert [r.state for r in status(dsn, mdir).rows] == ["applied", "pending", "pending"]
    write(mdir, "V2__slow.sql", "-- datakit:statement-timeout=10s\n"
          "INSERT INTO t SELECT 1 FROM pg_sleep(0.3);")
    assert [s.version for s in apply(dsn, mdir).steps] == [2, 3]


def test_no_transaction_failure_reports_statements_and_invalid_index(dsn, mdir):
    write(mdir, "V1__t.sql", "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (1);")
    write(mdir, "V2__unique.sql", "-- datakit:no-transaction\n"
          "CREATE TABLE IF NOT EXISTS side (a int);\n"
          "CREATE UNIQUE INDEX CONCURRENTLY t_a_key ON t (a);\n"
          "CREATE TABLE after_index (a int);\n")
    with pytest.raises(MigrationFailed) as err:
        apply(dsn, mdir)
    msg = str(err.value)
    assert "V2__unique.sql (no-transaction) failed in statement 2 at line 3" in msg
    assert "statements 1-1 of 3 ran" in msg and "public.t_a_key" in msg
    with pytest.raises(DriftError, match=r"V2__unique.sql \(no-transaction\) failed part-way: "
                                         r"statements 1-1 of 3 ran.*public.t_a_key"):
        apply(dsn, mdir)
    assert [r.state for r in status(dsn, mdir).rows] == ["applied", "partial"]
    query(dsn, "DROP INDEX t_a_key; DELETE FROM t")
    repair(dsn, mdir)
    apply(dsn, mdir)
    assert {"side", "after_index"} <= tables(dsn)


def test_concurrent_index_failing_in_the_first_statement_is_not_recorded(dsn, mdir):
    # The common case: the file is one CREATE INDEX CONCURRENTLY, and it fails (or is
    # killed) in that statement, leaving an invalid index that IF NOT EXISTS would skip.
    write(mdir, "V1__t.sql", "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (1);")
    write(mdir, "V2__unique.sql", "-- datakit:no-transaction\n"
          "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_a_key ON t (a);\n")
    with pytest.raises(MigrationFailed, match="no statement of it ran.*public.t_a_key"):
        apply(dsn, mdir)
    with pytest.raises(DriftError, match=r"V2__unique.sql \(no-transaction\) failed part-way: "
                                         r"its first statement did not finish.*public.t_a_key"):
        apply(dsn, mdir)
    report = status(dsn, mdir)
    assert [r.state for r in report.rows] == ["applied", "partial"] and not report.ok
    assert "public.t_a_key" in report.rows[1].detail
    query(dsn, "DROP INDEX t_a_key; DELETE FROM t")
    assert [r.state for r in status(dsn, mdir).rows] == ["applied", "pending"]
    apply(dsn, mdir)  # nothing of it ran, so it is simply retried
    assert query(dsn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_a_key'::regclass")\
        == [(True,)]


def test_wait_replicas_reports_none_on_a_lone_primary(dsn, mdir):
    write(mdir, "V1__t.sql", "CREATE TABLE t (a int);")
    step = apply(dsn, mdir, wait_replicas=True).steps[0]
    assert step.replicas is not None and step.replicas.replicas == 0


def test_wrong_password_is_one_clear_line(pg_server):
    with pytest.raises(DatakitError) as err:
        status(pg_server.dsn(password="wrong"))
    msg = str(err.value)
    assert "password authentication failed" in msg and "check the password" in msg
    assert "wrong" not in msg and "\n" not in msg


def test_unreachable_server_is_one_clear_line():
    with pytest.raises(DatakitError, match=r"cannot connect to PostgreSQL at "
                                           r"postgres@127.0.0.1:61199/postgres.*server running"):
        apply("host=127.0.0.1 port=61199 user=postgres dbname=postgres connect_timeout=2")


# --- several migrations sent in one round trip --------------------------------------------


def failed_rows(dsn) -> list[tuple]:
    return query(dsn, "SELECT version, error_sqlstate, error_position FROM "
                      "ms_migrations.migration_log WHERE status = 'FAILED' ORDER BY id")


def test_error_without_position_in_a_batch_names_its_file_and_keeps_the_earlier(dsn, mdir):
    five(mdir)
    write(mdir, "V3__table_3.sql", "CREATE TABLE t3 (id int PRIMARY KEY);\n"
                                   "INSERT INTO t3 VALUES (1), (1);\n")
    with pytest.raises(MigrationFailed) as err:
        apply(dsn, mdir)
    msg = str(err.value)
    assert "V3__table_3.sql failed: duplicate key value" in msg and "23505" in msg
    assert "earlier migrations stay applied" in msg
    assert tables(dsn) == {"t1", "t2"}
    assert failed_rows(dsn) == [(3, "23505", None)]
    log = query(dsn, "SELECT version, status FROM ms_migrations.migration_log ORDER BY id")
    assert log == [(1, "SUCCESS"), (2, "SUCCESS"), (3, "FAILED")]


def test_each_migration_of_a_batch_is_its_own_transaction(dsn, mdir):
    five(mdir)
    write(mdir, "V2__table_2.sql", "CREATE TABLE t2 (id int);\nSELECT pg_sleep(0.2);\n")
    steps = apply(dsn, mdir).steps
    assert len(query(dsn, "SELECT DISTINCT xmin FROM ms_migrations.schema_versions")) == 5
    # Timed from each migration's own start, not from when the batch arrived: each one's
    # log interval starts after the one before it ended (timed from the batch's arrival,
    # V3's would start before V2, which sleeps, ended), and the time reported and recorded
    # is that interval.
    log = query(dsn, "SELECT l.version, l.started_at, l.completed_at, v.execution_time_ms, "
                     "(extract(epoch FROM l.completed_at - l.started_at) * 1000)::int "
                     "FROM ms_migrations.migration_log l JOIN ms_migrations.schema_versions v "
                     "USING (version) ORDER BY l.id")
    assert [r[0] for r in log] == [1, 2, 3, 4, 5]
    assert all(r[1] <= r[2] for r in log)
    assert all(later[1] >= earlier[2] for earlier, later in zip(log, log[1:], strict=False))
    assert [r[3] for r in log] == [r[4] for r in log] == [s.execution_ms for s in steps]


def test_syntax_error_in_a_batch_still_applies_the_migrations_before_it(dsn, mdir):
    five(mdir)
    # PostgreSQL refuses a batch's whole text for one file's syntax error (here `IS JSON`,
    # PostgreSQL 16 syntax that pglast accepts and the scratch server, 15, does not), so
    # apply sends V1 and V2 again without it: as if each had gone alone.
    write(mdir, "V3__table_3.sql", "CREATE TABLE t3 (id int PRIMARY KEY);\n"
                                   "SELECT '{}' IS JSON;\n")
    seen = []
    with pytest.raises(MigrationFailed) as err:
        apply(dsn, mdir, progress=seen.append)
    msg = str(err.value)
    assert 'V3__table_3.sql:2:16: syntax error at or near "JSON" (SQLSTATE 42601)' in msg
    assert "earlier migrations stay applied" in msg
    assert [s.version for s in seen] == [1, 2] and tables(dsn) == {"t1", "t2"}
    assert failed_rows(dsn) == [(3, "42601", "2:16")]


def test_batches_split_where_a_failure_stops_the_run(dsn, mdir, monkeypatch):
    monkeypatch.setattr(batches, "BATCH_MAX", 2)
    five(mdir, failing=4)
    seen = []
    with pytest.raises(MigrationFailed, match=r"V4__table_4.sql failed at line 3, column 13"):
        apply(dsn, mdir, progress=seen.append)
    assert [s.version for s in seen] == [1, 2]  # the batch that failed reports no steps
    assert tables(dsn) == {"t1", "t2", "t3"}
    assert failed_rows(dsn) == [(4, "42P01", "3:13")]


def test_a_file_left_open_cannot_swallow_the_next_ones(dsn, mdir):
    write(mdir, "V1__one.sql", "CREATE TABLE t1 (id int);\n")
    write(mdir, "V2__two.sql", "CREATE TABLE t2 (id int);\n/* never closed\n")
    write(mdir, "V3__three.sql", "CREATE TABLE t3 (id int);\n/* a note */ */\n"
                                 "CREATE TABLE t3b (id int);\n")
    # Sent together, V3's stray */ ends V2's comment and the text still parses.
    with pytest.raises(DatakitError, match=r"V2__two.sql:2:1: syntax error: unterminated /\*"):
        apply(dsn, mdir)
    assert tables(dsn) == {"t1"}
    assert query(dsn, "SELECT version FROM ms_migrations.schema_versions") == [(1,)]


def test_transaction_control_is_refused_before_anything_runs(dsn, mdir):
    five(mdir)
    write(mdir, "V2__table_2.sql", "CREATE TABLE t2 (id int);\n-- 'commit' in a comment\n"
                                   "INSERT INTO t2 SELECT length('begin; commit;');\n")
    write(mdir, "V3__table_3.sql", "CREATE TABLE t3 (id int);\ncommit;\nCREATE TABLE t3b ();\n")
    with pytest.raises(DatakitError, match=r"V3__table_3.sql:2: transaction control"):
        apply(dsn, mdir)
    assert tables(dsn) == set()
    write(mdir, "V3__table_3.sql", "CREATE TABLE t3 (id int);\n")
    apply(dsn, mdir)  # the words alone, in strings and comments, are fine
    assert query(dsn, "SELECT id FROM t2") == [(14,)]
