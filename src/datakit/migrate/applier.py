"""apply: the pending migrations, each in its own transaction, under the runner lock.

Each migration and its history row commit in one transaction; a failure rolls that one
back, logs FAILED and stops, leaving earlier ones applied. Consecutive transactional
migrations go to the server together (`batches`). No-transaction files run statement by
statement in autocommit with their progress logged, so a failure or a killed runner is
reported precisely. A no-op `apply` reads the history once, without the lock.
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path

from datakit.migrate import batches, history, libpq, planning, statements
from datakit.migrate.connection import APP_NAME, connect
from datakit.migrate.execution import (
    describe_error,
    hint,
    now,
    reset_timeouts,
    set_timeouts,
    snippet,
)
from datakit.migrate.files import Migration, discover
from datakit.migrate.history import SCHEMA, applied_values, log
from datakit.migrate.lock import runner_lock
from datakit.migrate.replicas import lsn_to_int, wait_for_replicas
from datakit.migrate.results import MigrationFailed, Progress, Result, Step


def apply(dsn: str, migrations_dir: str | Path | None = None, *, target: int | None = None,
          dry_run: bool = False, allow_out_of_order: bool = False, lock_wait: float = 60.0,
          wait_replicas: bool = False, replica_timeout: float = 60.0,
          progress: Progress | None = None, migrations: list[Migration] | None = None,
          conn: libpq.Connection | None = None) -> Result:
    """Apply pending migrations (up to `target`); return what ran.

    `migrations` are the files of `migrations_dir` when the caller has read them already;
    `conn` is an open connection to `dsn` to go on with (apply closes it).
    """
    where = str(migrations_dir or "migrations/")
    result = Result("apply", dry_run=dry_run)
    try:
        if migrations is None:
            migrations = discover(migrations_dir)  # before connecting: bad files come first
        if conn is None:
            conn = connect(dsn)
        applied, partial = history.read(conn)
        planning.check_drift(migrations, applied, where)
        pending = planning.pending(migrations, applied, target, allow_out_of_order)
        if not pending:
            planning.check_partial(conn, partial)
            result.current_version = max(applied) if applied else None
            return result
        if dry_run:
            planning.check_partial(conn, partial)
            for m in pending:
                statements.check(m.up)
            result.planned = [m.name for m in pending]
            result.current_version = max(applied) if applied else None
            return result
        with runner_lock(dsn, wait=lock_wait):
            history.ensure(conn)
            applied, partial = history.read(conn)  # another runner may have gone first
            planning.check_drift(migrations, applied, where)
            planning.check_partial(conn, partial)
            pending = planning.pending(migrations, applied, target, allow_out_of_order)
            for m in pending:  # refuse bad SQL before anything runs
                statements.screen(m.up)
                if m.undo:  # stored for later, never parsed by the server now
                    statements.check(m.undo)
            _run(conn, pending, applied, result, wait_replicas=wait_replicas,
                 replica_timeout=replica_timeout, progress=progress)
            done = [*applied, *(s.version for s in result.steps)]
            result.current_version = max(done) if done else None
        return result
    finally:
        if conn is not None:
            conn.close()


def _run(conn, pending: list[Migration], applied, result: Result, *, wait_replicas: bool,
         replica_timeout: float, progress: Progress | None) -> None:
    """Send `pending` batch by batch (the lock held), appending each step to `result`."""
    conn.execute(batches.PREPARE)
    lsn = lsn_to_int(conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0])
    queue = deque(batches.batches(pending, one_by_one=wait_replicas))
    while queue:
        batch = queue.popleft()
        if batch[0].up.directives.no_transaction:
            done = [_apply_no_transaction(conn, batch[0])]
        else:
            durable = wait_replicas or batch[-1] is pending[-1]
            try:
                done = batches.apply_batch(conn, batch, durable, applied)
            except batches.Unparsed as exc:  # the ones before it, then it alone (to fail)
                queue.extendleft([batch[exc.index:exc.index + 1], batch[:exc.index]])
                continue
        for step, end_lsn in done:
            step.wal_bytes = max(0, end_lsn - lsn)
            lsn = end_lsn
            if wait_replicas:
                step.replicas = wait_for_replicas(conn, timeout=replica_timeout)
            result.steps.append(step)
            if progress:
                progress(step)


def _apply_no_transaction(conn, m: Migration) -> tuple[Step, int]:
    stmts = statements.split(m.up)
    started = now()
    t0 = time.perf_counter()
    context = {"file": m.name, "checksum": m.checksum, "no_transaction": True,
               "runner": APP_NAME, "statements_total": len(stmts), "statements_done": 0,
               "running": snippet(stmts[0].text) if stmts else None}
    log_id = log(conn, version=m.version, operation="MIGRATE", status="RUNNING",
                 started=started, context=context)
    progress_sql = (f"UPDATE {SCHEMA}.migration_log SET context = context || %s::jsonb "
                    "WHERE id = %s")
    done = 0
    try:
        set_timeouts(conn, m.up, local=False)
        for i, stmt in enumerate(stmts):
            conn.execute(stmt.text)
            done = i + 1
            nxt = snippet(stmts[i + 1].text) if i + 1 < len(stmts) else None
            conn.execute(progress_sql, (json.dumps({"statements_done": done, "running": nxt}),
                                        log_id))
        reset_timeouts(conn, m.up)
        ms = round((time.perf_counter() - t0) * 1000)
        with conn.transaction():
            conn.execute(
                f"""INSERT INTO {SCHEMA}.schema_versions
                      (version, description, file, checksum, execution_time_ms, undo_file,
                       undo_checksum, undo_sql)
                    VALUES (%(version)s, %(description)s, %(file)s, %(checksum)s, %(ms)s,
                            %(undo_file)s, %(undo_checksum)s, %(undo_sql)s)""",
                applied_values(m, ms, started, context))
            lsn = conn.execute(
                f"""UPDATE {SCHEMA}.migration_log SET status = 'SUCCESS',
                           completed_at = clock_timestamp(), context = context || %s::jsonb
                     WHERE id = %s RETURNING pg_current_wal_insert_lsn()::text""",
                (json.dumps({"running": None}), log_id)).fetchone()[0]
    except libpq.Error as exc:
        failed = stmts[done] if done < len(stmts) else None
        message, sqlstate, position = describe_error(exc, m.up, failed.start if failed else 0)
        if position is None and failed is not None:
            position = "{}:{}".format(*statements.line_col(m.up.sql, failed.start))
        invalid: list[str] = []
        if not conn.closed:
            try:
                reset_timeouts(conn, m.up)
                conn.execute(
                    f"""UPDATE {SCHEMA}.migration_log SET status = 'FAILED',
                               completed_at = clock_timestamp(), error_message = %s,
                               error_sqlstate = %s, error_position = %s,
                               context = context || %s::jsonb
                         WHERE id = %s""",
                    (message, sqlstate, position,
                     json.dumps({"statements_done": done}), log_id))
                invalid = history.invalid_indexes(conn)
            except libpq.Error:
                pass
        at = f" at line {position.replace(':', ', column ')}" if position else ""
        ran = (f"statements 1-{done} of {len(stmts)} ran and stay applied"
               if done else "no statement of it ran")
        left = (f"; invalid indexes left: {', '.join(invalid)} (drop each with DROP INDEX "
                "CONCURRENTLY)" if invalid else "")
        fix = ("finish or undo what ran, then `datakit migrate repair` and apply again"
               if done or invalid else hint(sqlstate))
        raise MigrationFailed(
            f"{m.up.path} (no-transaction) failed in statement {done + 1}{at}: {message} "
            f"(SQLSTATE {sqlstate}); {ran}{left}; {fix}"
        ) from None
    return Step(m.version, m.name, "MIGRATE", ms), lsn_to_int(lsn)
