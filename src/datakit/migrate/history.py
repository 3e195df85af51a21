"""The migration history: its own schema, one table of applied versions, one log of operations.

`ms_migrations.schema_versions` holds what is applied (with the undo SQL, so a rollback
works even if files moved); `ms_migrations.migration_log` records every operation
(MIGRATE, ROLLBACK, BASELINE, REPAIR, RESET), its status and its error. This module
creates and reads them, and writes the rows every operation shares.
"""

from __future__ import annotations

import json
from collections import namedtuple
from datetime import datetime

from datakit.migrate.files import Migration

SCHEMA = "ms_migrations"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_versions (
    version           bigint PRIMARY KEY,
    description       text NOT NULL,
    file              text NOT NULL,
    checksum          char(64) NOT NULL,
    applied_at        timestamptz NOT NULL DEFAULT now(),
    applied_by        text NOT NULL DEFAULT current_user,
    execution_time_ms integer NOT NULL DEFAULT 0,
    success           boolean NOT NULL DEFAULT true,
    baseline          boolean NOT NULL DEFAULT false,
    undo_file         text,
    undo_checksum     char(64),
    undo_sql          text
);
CREATE INDEX IF NOT EXISTS schema_versions_applied_at_idx
    ON {SCHEMA}.schema_versions (applied_at);
CREATE TABLE IF NOT EXISTS {SCHEMA}.migration_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version        bigint NOT NULL,
    operation      text NOT NULL
        CHECK (operation IN ('MIGRATE', 'ROLLBACK', 'BASELINE', 'REPAIR', 'RESET')),
    status         text NOT NULL DEFAULT 'RUNNING'
        CHECK (status IN ('RUNNING', 'SUCCESS', 'FAILED')),
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at   timestamptz,
    error_message  text,
    error_sqlstate text,
    error_position text,
    context        jsonb NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS migration_log_version_idx ON {SCHEMA}.migration_log (version, id);
"""


class Applied(namedtuple("Applied", "version description file checksum applied_at applied_by "
                         "execution_time_ms baseline undo_file undo_sql")):
    """A row of schema_versions (applied_at a datetime, undo_file and undo_sql None when the
    migration had no undo)."""

    __slots__ = ()


class PartialRun(namedtuple("PartialRun", "log_id version file status statements_done "
                            "statements_total running error")):
    """A no-transaction migration that failed or was killed after some statements ran:
    its log row, how many of its statements ran, the one running and the error."""

    __slots__ = ()


def exists(conn) -> bool:
    return conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.schema_versions",)
    ).fetchone()[0]


def ensure(conn) -> None:
    """Create the history schema and tables if missing (call with the runner lock held)."""
    if not exists(conn):
        conn.execute(DDL)


def read(conn) -> tuple[dict[int, Applied], list[PartialRun]]:
    """Everything applied, and the unresolved partial no-transaction runs, in one round trip.

    A run that failed in its first statement counts: a CREATE INDEX CONCURRENTLY that dies
    leaves an invalid index behind, which the caller must look for.
    """
    if not exists(conn):
        return {}, []
    rows = conn.execute(
        f"""
        SELECT 'A', version, description, file, checksum, applied_at, applied_by,
               execution_time_ms, baseline, undo_file, undo_sql, NULL::jsonb
          FROM {SCHEMA}.schema_versions
        UNION ALL
        SELECT 'P', l.version, l.status, l.context->>'file', NULL, NULL, NULL,
               l.id, NULL, l.error_message, NULL, l.context
          FROM {SCHEMA}.migration_log l
         WHERE l.operation = 'MIGRATE' AND l.status IN ('RUNNING', 'FAILED')
           AND (l.context->>'no_transaction')::boolean
           AND NOT (l.context ? 'resolved')
           AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.schema_versions v
                            WHERE v.version = l.version)
        """
    ).fetchall()
    applied: dict[int, Applied] = {}
    partial: list[PartialRun] = []
    for row in rows:
        if row[0] == "A":
            applied[row[1]] = Applied(*row[1:11])
        else:
            ctx = row[11]
            partial.append(PartialRun(
                log_id=row[7], version=row[1], file=row[3], status=row[2],
                statements_done=int(ctx.get("statements_done", 0)),
                statements_total=int(ctx.get("statements_total", 0)),
                running=ctx.get("running"), error=row[9],
            ))
    return dict(sorted(applied.items())), partial


def invalid_indexes(conn) -> list[str]:
    """Indexes left invalid (an interrupted or failed CREATE INDEX CONCURRENTLY)."""
    rows = conn.execute(
        """
        SELECT format('%I.%I', n.nspname, c.relname)
          FROM pg_index i
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE NOT i.indisvalid
         ORDER BY 1
        """
    ).fetchall()
    return [r[0] for r in rows]


INSERT_LOG = f"""
INSERT INTO {SCHEMA}.migration_log
  (version, operation, status, started_at, completed_at, error_message, error_sqlstate,
   error_position, context)
VALUES (%(version)s, %(operation)s, %(status)s, %(started)s,
        CASE WHEN %(status)s = 'RUNNING' THEN NULL ELSE clock_timestamp() END,
        %(error)s, %(sqlstate)s, %(position)s, %(context)s::jsonb)
RETURNING id
"""


def log(conn, **values) -> int | None:
    """Insert a migration_log row (see INSERT_LOG for the keys); its id, or None if it failed."""
    values.setdefault("error", None)
    values.setdefault("sqlstate", None)
    values.setdefault("position", None)
    values["context"] = json.dumps(values.get("context") or {})
    try:
        return conn.execute(INSERT_LOG, values).fetchone()[0]
    except Exception:  # noqa: BLE001 - logging must never hide the original failure
        return None


def applied_values(m: Migration, ms: int, started: datetime, context: dict) -> dict:
    """The parameters of `m`'s schema_versions row (and its log row's start and context)."""
    return {
        "version": m.version, "description": m.description, "file": m.name,
        "checksum": m.checksum, "ms": ms,
        "undo_file": m.undo.name if m.undo else None,
        "undo_checksum": m.undo.checksum if m.undo else None,
        "undo_sql": m.undo.sql if m.undo else None,
        "started": started, "context": json.dumps(context),
    }
