"""rollback: undo applied migrations newest first, with the undo SQL stored at apply time.

The stored undo is used even when the files have moved or gone; a file's undo serves only
a version applied before undo SQL was stored. Every undo is checked before any runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from datakit.errors import DatakitError
from datakit.migrate import history, libpq, statements
from datakit.migrate.connection import APP_NAME, connect
from datakit.migrate.execution import describe_error, now, reset_timeouts, set_timeouts
from datakit.migrate.files import Migration, SqlFile, discover, parse_directives, sha256
from datakit.migrate.history import INSERT_LOG, SCHEMA, Applied, log
from datakit.migrate.lock import runner_lock
from datakit.migrate.results import MigrationFailed, Progress, Result, Step


def _undo_file(row: Applied, m: Migration | None) -> SqlFile | None:
    if row.undo_sql is not None:
        path = Path(row.undo_file or f"U{row.version:04d}__{row.description}.sql")
        return SqlFile("U", row.version, row.description, path, row.undo_sql,
                       sha256(row.undo_sql.encode()),
                       parse_directives(row.undo_sql, f"stored undo of {row.file}"))
    if m is not None and m.undo is not None:
        return m.undo
    return None


def rollback(dsn: str, migrations_dir: str | Path | None = None, *, target: int | None = None,
             steps: int | None = None, dry_run: bool = False, lock_wait: float = 60.0,
             progress: Progress | None = None) -> Result:
    """Undo applied migrations newest first, down to `target` (kept) or by `steps`."""
    if (target is None) == (steps is None):
        raise DatakitError("rollback needs exactly one of --target V or --steps N")
    if steps is not None and steps < 1:
        raise DatakitError(f"--steps must be 1 or more, got {steps}")
    migrations = {m.version: m for m in discover(migrations_dir)}
    result = Result("rollback", dry_run=dry_run)
    conn = connect(dsn)
    try:
        with runner_lock(dsn, wait=lock_wait):
            applied, _ = history.read(conn)
            chosen = sorted(applied, reverse=True)
            chosen = chosen[:steps] if steps is not None else [v for v in chosen if v > target]
            undos = {}
            for v in chosen:
                undo = _undo_file(applied[v], migrations.get(v))
                if undo is None:
                    raise DatakitError(
                        f"version {v} ({applied[v].file}) has no undo: write "
                        f"U{v:04d}__{applied[v].description}.sql and run rollback again"
                    )
                statements.check(undo)
                undos[v] = undo
            if dry_run:
                result.planned = [undos[v].name for v in chosen]
            else:
                for v in chosen:
                    step = _run_undo(conn, applied[v], undos[v])
                    result.steps.append(step)
                    if progress:
                        progress(step)
            remaining = [v for v in applied if dry_run or v not in chosen]
            result.current_version = max(remaining) if remaining else None
        return result
    finally:
        conn.close()


def _run_undo(conn, row: Applied, undo: SqlFile) -> Step:
    started = now()
    t0 = time.perf_counter()
    context = {"file": row.file, "undo_file": undo.name, "runner": APP_NAME,
               "no_transaction": undo.directives.no_transaction}
    remove = f"DELETE FROM {SCHEMA}.schema_versions WHERE version = %s"
    offset = 0
    try:
        if undo.directives.no_transaction:
            set_timeouts(conn, undo, local=False)
            for stmt in statements.split(undo):
                offset = stmt.start
                conn.execute(stmt.text)
            reset_timeouts(conn, undo)
            with conn.transaction():
                conn.execute(remove, (row.version,))
                log(conn, version=row.version, operation="ROLLBACK", status="SUCCESS",
                    started=started, context=context)
        else:
            with conn.transaction():
                set_timeouts(conn, undo, local=True)
                if undo.sql.strip():
                    conn.execute(undo.sql)
                conn.execute(remove, (row.version,))
                conn.execute(INSERT_LOG, {
                    "version": row.version, "operation": "ROLLBACK", "status": "SUCCESS",
                    "started": started, "error": None, "sqlstate": None, "position": None,
                    "context": json.dumps(context)})
    except libpq.Error as exc:
        message, sqlstate, position = describe_error(exc, undo, offset)
        if not conn.closed:
            log(conn, version=row.version, operation="ROLLBACK", status="FAILED",
                started=started, error=message, sqlstate=sqlstate, position=position,
                context=context)
        at = f" at line {position.replace(':', ', column ')}" if position else ""
        raise MigrationFailed(
            f"undo of {row.file} ({undo.name}) failed{at}: {message} (SQLSTATE {sqlstate}); "
            f"version {row.version} stays applied; fix the undo SQL and run rollback again"
        ) from None
    return Step(row.version, row.file, "ROLLBACK", round((time.perf_counter() - t0) * 1000))
