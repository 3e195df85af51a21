"""baseline, repair and reset: the history's upkeep, each under the runner lock.

baseline adopts a database whose schema exists without history; repair records the new
checksums of reviewed edits and clears partial no-transaction runs (old and new values go
to the log); reset drops every schema, for disposable databases only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datakit.errors import DatakitError
from datakit.migrate import history
from datakit.migrate.connection import APP_NAME, connect
from datakit.migrate.execution import now
from datakit.migrate.files import discover
from datakit.migrate.history import SCHEMA, applied_values, log
from datakit.migrate.lock import runner_lock
from datakit.migrate.results import Result, Step


def baseline(dsn: str, version: int, migrations_dir: str | Path | None = None, *,
             lock_wait: float = 60.0) -> Result:
    """Adopt an existing database: record every migration up to `version` as applied."""
    migrations = discover(migrations_dir)
    if version not in {m.version for m in migrations}:
        raise DatakitError(
            f"no migration with version {version} in {migrations_dir or 'migrations/'}; "
            "baseline needs the version of the last migration already in the database"
        )
    result = Result("baseline")
    conn = connect(dsn)
    try:
        with runner_lock(dsn, wait=lock_wait):
            history.ensure(conn)
            applied, _ = history.read(conn)
            if applied:
                raise DatakitError(
                    f"the database already has migration history (newest version "
                    f"{max(applied)}); baseline only adopts a database without one"
                )
            chosen = [m for m in migrations if m.version <= version]
            with conn.transaction():
                for m in chosen:
                    values = applied_values(m, 0, now(), {})
                    conn.execute(
                        f"""INSERT INTO {SCHEMA}.schema_versions
                              (version, description, file, checksum, execution_time_ms,
                               baseline, undo_file, undo_checksum, undo_sql)
                            VALUES (%(version)s, %(description)s, %(file)s, %(checksum)s, 0,
                                    true, %(undo_file)s, %(undo_checksum)s, %(undo_sql)s)""",
                        values)
                    result.steps.append(Step(m.version, m.name, "BASELINE"))
                log(conn, version=version, operation="BASELINE", status="SUCCESS",
                    started=now(), context={"versions": [m.version for m in chosen],
                                            "runner": APP_NAME})
            result.current_version = version
        return result
    finally:
        conn.close()


@dataclass
class Repair:
    version: int
    file: str
    what: str
    old: str | None
    new: str | None


def repair(dsn: str, migrations_dir: str | Path | None = None, *,
           lock_wait: float = 60.0) -> list[Repair]:
    """Re-record checksums of reviewed changes and clear partial no-transaction runs."""
    migrations = {m.version: m for m in discover(migrations_dir)}
    done: list[Repair] = []
    conn = connect(dsn)
    try:
        with runner_lock(dsn, wait=lock_wait):
            history.ensure(conn)
            applied, partial = history.read(conn)
            with conn.transaction():
                for v, row in applied.items():
                    m = migrations.get(v)
                    if m is None or m.checksum == row.checksum.strip():
                        continue
                    conn.execute(
                        f"""UPDATE {SCHEMA}.schema_versions
                               SET checksum = %s, file = %s, description = %s,
                                   undo_file = COALESCE(%s, undo_file),
                                   undo_checksum = COALESCE(%s, undo_checksum),
                                   undo_sql = COALESCE(%s, undo_sql)
                             WHERE version = %s""",
                        (m.checksum, m.name, m.description, m.undo and m.undo.name,
                         m.undo and m.undo.checksum, m.undo and m.undo.sql, v))
                    fix = Repair(v, m.name, "checksum", row.checksum.strip(), m.checksum)
                    log(conn, version=v, operation="REPAIR", status="SUCCESS", started=now(),
                        context={"file": m.name, "old_checksum": fix.old,
                                 "new_checksum": fix.new, "runner": APP_NAME})
                    done.append(fix)
                for run in partial:
                    conn.execute(
                        f"UPDATE {SCHEMA}.migration_log SET context = context || "
                        "jsonb_build_object('resolved', true), "
                        "status = CASE status WHEN 'RUNNING' THEN 'FAILED' ELSE status END, "
                        "completed_at = COALESCE(completed_at, clock_timestamp()) WHERE id = %s",
                        (run.log_id,))
                    log(conn, version=run.version, operation="REPAIR", status="SUCCESS",
                        started=now(), context={"file": run.file, "resolved_log_id": run.log_id,
                                                "old_status": run.status, "runner": APP_NAME})
                    done.append(Repair(run.version, run.file, "partial run cleared",
                                       f"{run.status}, {run.statements_done} statement(s) ran",
                                       "resolved"))
        return done
    finally:
        conn.close()


def reset(dsn: str, *, yes: bool, disposable: bool | None = None,
          lock_wait: float = 60.0) -> list[str]:
    """Drop every user schema (the history too): for disposable databases only."""
    if disposable is False:
        raise DatakitError("this stack is not marked disposable; reset refused (it drops "
                           "every schema); mark the stack disposable or roll back instead")
    if not yes:
        raise DatakitError("reset drops every schema and all data in the database; "
                           "pass --yes to confirm")
    conn = connect(dsn)
    try:
        with runner_lock(dsn, wait=lock_wait):
            schemas = [r[0] for r in conn.execute(
                """SELECT nspname FROM pg_namespace
                    WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
                    ORDER BY 1""").fetchall()]
            with conn.transaction():
                for name in schemas:
                    conn.execute(f'DROP SCHEMA "{name}" CASCADE')
                conn.execute("CREATE SCHEMA public AUTHORIZATION pg_database_owner")
                conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
        return schemas
    finally:
        conn.close()
