"""The runner: apply, rollback, baseline, repair and reset, each a plain function.

Each migration and its history row commit in one transaction; a failure rolls that one
back, logs FAILED and stops, leaving earlier ones applied. Consecutive transactional
migrations go to the server together, one round trip per batch. No-transaction files run
statement by statement in autocommit with their progress logged, so a failure or a killed
runner is reported precisely. A no-op `apply` reads the history once, without the lock.
"""

from __future__ import annotations

import json
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from datakit.errors import DatakitError
from datakit.migrate import history, statements
from datakit.migrate.connection import APP_NAME, connect
from datakit.migrate.files import Migration, SqlFile, discover, parse_directives, sha256
from datakit.migrate.history import SCHEMA, Applied, PartialRun
from datakit.migrate.lock import runner_lock
from datakit.migrate.replicas import ReplicaWait, lsn_to_int, wait_for_replicas


class MigrationFailed(DatakitError):
    """A migration's SQL failed; it was rolled back (or reported statement by statement)."""


class DriftError(DatakitError):
    """The files and the database's history disagree."""


@dataclass
class Step:
    """One migration applied or rolled back."""

    version: int
    file: str
    operation: str
    execution_ms: int = 0
    wal_bytes: int | None = None
    replicas: ReplicaWait | None = None


@dataclass
class Result:
    operation: str
    steps: list[Step] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    dry_run: bool = False
    current_version: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


Progress = Callable[[Step], None]

_INSERT_LOG = f"""
INSERT INTO {SCHEMA}.migration_log
  (version, operation, status, started_at, completed_at, error_message, error_sqlstate,
   error_position, context)
VALUES (%(version)s, %(operation)s, %(status)s, %(started)s,
        CASE WHEN %(status)s = 'RUNNING' THEN NULL ELSE clock_timestamp() END,
        %(error)s, %(sqlstate)s, %(position)s, %(context)s::jsonb)
RETURNING id
"""


def _now() -> datetime:
    return datetime.now(UTC)


def _snippet(sql: str, limit: int = 80) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _set_timeouts(conn, sql_file: SqlFile, local: bool) -> None:
    scope = "LOCAL " if local else ""
    d = sql_file.directives
    # Values are checked against a strict duration pattern when the file is read.
    if d.lock_timeout:
        conn.execute(f"SET {scope}lock_timeout = '{d.lock_timeout}'")
    if d.statement_timeout:
        conn.execute(f"SET {scope}statement_timeout = '{d.statement_timeout}'")


def _reset_timeouts(conn, sql_file: SqlFile) -> None:
    if sql_file.directives.lock_timeout:
        conn.execute("RESET lock_timeout")
    if sql_file.directives.statement_timeout:
        conn.execute("RESET statement_timeout")


def _describe_error(exc, sql_file: SqlFile, offset: int = 0) -> tuple[str, str | None, str | None]:
    """(one-line message, SQLSTATE, "line:col") for a psycopg error raised by `sql_file`."""
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag and diag.message_primary else str(exc)) or "error"
    message = " ".join(message.split())
    sqlstate = getattr(exc, "sqlstate", None)
    position = None
    at = offset + int(diag.statement_position) - 1 if diag and diag.statement_position else -1
    if 0 <= at <= len(sql_file.sql):  # else not in the file (no position, or in our own SQL)
        position = "{}:{}".format(*statements.line_col(sql_file.sql, at))
    return message, sqlstate, position


def _hint(sqlstate: str | None) -> str:
    if sqlstate == "55P03":
        return ("another session holds a lock the migration needs; retry when it is quiet "
                "or raise -- datakit:lock-timeout")
    if sqlstate == "57014":
        return "it ran past its statement timeout; raise -- datakit:statement-timeout"
    return "fix the file and run apply again"


def _log(conn, **values) -> int | None:
    values.setdefault("error", None)
    values.setdefault("sqlstate", None)
    values.setdefault("position", None)
    values["context"] = json.dumps(values.get("context") or {})
    try:
        return conn.execute(_INSERT_LOG, values).fetchone()[0]
    except Exception:  # noqa: BLE001 - logging must never hide the original failure
        return None


# --- planning ---------------------------------------------------------------------------


def _check_drift(migrations: list[Migration], applied: dict[int, Applied],
                 migrations_dir: str) -> None:
    files = {m.version: m for m in migrations}
    problems = []
    for version, row in applied.items():
        m = files.get(version)
        if m is None:
            problems.append(
                f"version {version} ({row.file}) is applied but its file is missing from "
                f"{migrations_dir}; restore the file, or roll it back with `datakit migrate "
                f"rollback --target {version - 1}` (its undo SQL is stored)"
            )
        elif m.checksum != row.checksum.strip():
            problems.append(
                f"{m.up.path} changed since it was applied: checksum was {row.checksum.strip()}, "
                f"file now {m.checksum}; restore the file (e.g. git checkout), or review the "
                "change and run `datakit migrate repair`"
            )
    if problems:
        more = f" (and {len(problems) - 1} more drift problem(s))" if len(problems) > 1 else ""
        raise DriftError(problems[0] + more)


def _check_partial(conn, partial: list[PartialRun]) -> None:
    if not partial:
        return
    invalid = history.invalid_indexes(conn)
    for run in partial:
        if run.statements_done == 0 and not invalid:
            continue  # nothing of it ran: it is simply retried
        what = "was interrupted" if run.status == "RUNNING" else "failed"
        ran = (f"statements 1-{run.statements_done} of {run.statements_total} ran"
               if run.statements_done else "its first statement did not finish")
        running = f", statement {run.statements_done + 1} was: {run.running}" if run.running else ""
        left = (f"; invalid indexes left: {', '.join(invalid)} (drop each with DROP INDEX "
                "CONCURRENTLY)" if invalid else "")
        raise DriftError(
            f"{run.file} (no-transaction) {what} part-way: {ran}{running}{left}; finish or "
            "undo what ran by hand (or make the file rerunnable with IF NOT EXISTS), then run "
            "`datakit migrate repair` and apply again"
        )


def _pending(migrations: list[Migration], applied: dict[int, Applied], target: int | None,
             allow_out_of_order: bool) -> list[Migration]:
    pending = [m for m in migrations
               if m.version not in applied and (target is None or m.version <= target)]
    newest = max(applied) if applied else None
    if newest is not None and not allow_out_of_order:
        late = [m for m in pending if m.version < newest]
        if late:
            raise DriftError(
                f"{late[0].up.path}: version {late[0].version} is older than the newest applied "
                f"version {newest}; give it a version above {newest}, or pass "
                "--allow-out-of-order if running it late is intended"
            )
    return pending


# --- apply ------------------------------------------------------------------------------


def apply(dsn: str, migrations_dir: str | Path | None = None, *, target: int | None = None,
          dry_run: bool = False, allow_out_of_order: bool = False, lock_wait: float = 60.0,
          wait_replicas: bool = False, replica_timeout: float = 60.0,
          progress: Progress | None = None, migrations: list[Migration] | None = None) -> Result:
    """Apply pending migrations (up to `target`); return what ran.

    `migrations` are the files of `migrations_dir` when the caller has read them already.
    """
    if migrations is None:
        migrations = discover(migrations_dir)
    where = str(migrations_dir or "migrations/")
    result = Result("apply", dry_run=dry_run)
    conn = connect(dsn)
    try:
        applied, partial = history.read(conn)
        _check_drift(migrations, applied, where)
        pending = _pending(migrations, applied, target, allow_out_of_order)
        if not pending:
            _check_partial(conn, partial)
            result.current_version = max(applied) if applied else None
            return result
        if dry_run:
            _check_partial(conn, partial)
            for m in pending:
                statements.check(m.up)
            result.planned = [m.name for m in pending]
            result.current_version = max(applied) if applied else None
            return result
        with runner_lock(dsn, wait=lock_wait):
            history.ensure(conn)
            applied, partial = history.read(conn)  # another runner may have gone first
            _check_drift(migrations, applied, where)
            _check_partial(conn, partial)
            pending = _pending(migrations, applied, target, allow_out_of_order)
            for m in pending:  # refuse bad SQL before anything runs
                statements.screen(m.up)
                if m.undo:  # stored for later, never parsed by the server now
                    statements.check(m.undo)
            conn.execute(_PREPARE)
            lsn = lsn_to_int(conn.execute("SELECT pg_current_wal_insert_lsn()::text")
                             .fetchone()[0])
            queue = deque(_batches(pending, one_by_one=wait_replicas))
            while queue:
                batch = queue.popleft()
                if batch[0].up.directives.no_transaction:
                    done = [_apply_no_transaction(conn, batch[0])]
                else:
                    durable = wait_replicas or batch[-1] is pending[-1]
                    try:
                        done = _apply_transactional(conn, batch, durable, applied)
                    except _Unparsed as exc:  # the ones before it, then it alone (to fail)
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
            done = [*applied, *(s.version for s in result.steps)]
            result.current_version = max(done) if done else None
        return result
    finally:
        conn.close()


def _applied_values(m: Migration, ms: int, started: datetime, context: dict) -> dict:
    return {
        "version": m.version, "description": m.description, "file": m.name,
        "checksum": m.checksum, "ms": ms,
        "undo_file": m.undo.name if m.undo else None,
        "undo_checksum": m.undo.checksum if m.undo else None,
        "undo_sql": m.undo.sql if m.undo else None,
        "started": started, "context": json.dumps(context),
    }


BATCH_MAX = 50  # migrations per round trip: bounds the text sent and how long progress waits


def _batches(pending: list[Migration], one_by_one: bool) -> Iterator[list[Migration]]:
    """Runs of transactional migrations to send together; a no-transaction file goes alone."""
    batch: list[Migration] = []
    for m in pending:
        if m.up.directives.no_transaction:
            if batch:
                yield batch
                batch = []
            yield [m]
            continue
        batch.append(m)
        if one_by_one or len(batch) == BATCH_MAX:
            yield batch
            batch = []
    if batch:
        yield batch


def _context(m: Migration) -> dict:
    return {"file": m.name, "checksum": m.checksum, "no_transaction": False, "runner": APP_NAME}


def _prefix(m: Migration, durable: bool) -> str:
    """BEGIN, the start time and the migration's settings, local to its transaction."""
    prefix = "BEGIN;\nEXECUTE datakit_start;\n"
    if not durable:
        prefix += "SET LOCAL synchronous_commit = off;\n"
    d = m.up.directives
    # Values are checked against a strict duration pattern when the file is read.
    if d.lock_timeout:
        prefix += f"SET LOCAL lock_timeout = '{d.lock_timeout}';\n"
    if d.statement_timeout:
        prefix += f"SET LOCAL statement_timeout = '{d.statement_timeout}';\n"
    return prefix


# The bookkeeping of a batched migration, prepared once per connection: parsed and planned
# for every migration it cost the server 76 ms of CPU per 200 migrations; prepared, 42 ms.
_PREPARE = f"""
PREPARE datakit_start AS
  SELECT set_config('datakit.started', clock_timestamp()::text, true);
PREPARE datakit_record (bigint, text, text, text, text, text, text, jsonb) AS
  WITH t AS (SELECT current_setting('datakit.started')::timestamptz AS started,
                    clock_timestamp() AS done),
  v AS (
    INSERT INTO {SCHEMA}.schema_versions
      (version, description, file, checksum, applied_at, execution_time_ms, undo_file,
       undo_checksum, undo_sql)
    SELECT $1, $2, $3, $4, done, (extract(epoch FROM done - started) * 1000)::int, $5, $6, $7
      FROM t
  )
  INSERT INTO {SCHEMA}.migration_log
    (version, operation, status, started_at, completed_at, context)
  SELECT $1, 'MIGRATE', 'SUCCESS', started, done, $8 FROM t;
PREPARE datakit_check (bigint, bigint, bigint) AS
  SELECT 1 / (count(*) = $3)::int, max(execution_time_ms) FILTER (WHERE version = $2),
         pg_current_wal_insert_lsn()::text
    FROM {SCHEMA}.schema_versions WHERE version BETWEEN $1 AND $2;
"""

_RECORD = ("EXECUTE datakit_record (%(version)s, %(description)s, %(file)s, %(checksum)s, "
           "%(undo_file)s, %(undo_checksum)s, %(undo_sql)s, %(context)s);\n")


def _commit(first: int, version: int, expected: int) -> str:
    """SQL that ends a migration: check that the `expected` history rows from `first` (the
    batch's first version) to `version` are there, report this one's time and WAL position,
    and COMMIT.

    It holds no quote of any kind, so nothing a file left open (a string, quoted name,
    comment or dollar quote) can end inside it. A file that swallowed the text after it,
    yet still parsed, lost its history row with it: the next check fails and rolls back
    everything since that file's BEGIN.
    """
    return f"EXECUTE datakit_check ({first}, {version}, {expected});\nCOMMIT;\n"


def _apply_transactional(conn, batch: list[Migration], durable: bool,
                         applied: Iterable[int] = ()) -> list[tuple[Step, int]]:
    """Run `batch` in one round trip, each migration with its records in its own transaction
    (the statements of `_PREPARE` must be prepared on `conn`).

    Files hold no transaction control (screened before), so between our BEGIN and our
    history INSERT + COMMIT each is exactly "the file in a transaction". PostgreSQL parses
    the whole text before running any of it and stops at the first error, leaving the
    migrations before the failed one committed. Only a `durable` batch's last commit waits
    for the WAL flush; it (or the FAILED log row) flushes the earlier ones too. `applied`
    are versions already in the history (out-of-order runs), which the checks count too.
    """
    import psycopg

    mogrify = psycopg.ClientCursor(conn).mogrify
    first = batch[0].version
    earlier = sorted(v for v in applied if v >= first)
    parts: list[str] = []
    spans: list[tuple[int, int]] = []  # where each migration's text and file SQL start
    size = 0
    for i, m in enumerate(batch):
        prefix = _prefix(m, durable and i == len(batch) - 1)
        expected = i + 1 + bisect_right(earlier, m.version)
        record = (mogrify(_RECORD, _applied_values(m, 0, _now(), _context(m)))
                  + _commit(first, m.version, expected))
        spans.append((size, size + len(prefix)))
        parts += [prefix, m.up.sql, "\n;\n", record]  # the newline ends a trailing comment
        size += len(prefix) + len(m.up.sql) + 3 + len(record)
    started = _now()
    try:
        reports = _reports(conn.execute("".join(parts)))
    except psycopg.Error as exc:
        _fail_batch(conn, batch, spans, exc, started)
    return [(Step(m.version, m.name, "MIGRATE", ms), lsn_to_int(lsn))
            for m, (_, ms, lsn) in zip(batch, reports, strict=True)]


def _reports(cur) -> list[tuple]:
    """The row our check returns before each COMMIT (the files hold no COMMIT of their own)."""
    rows, last = [], None
    while True:
        if cur.statusmessage == "COMMIT":
            rows.append(last)
        last = cur.fetchone() if cur.pgresult.ntuples == 1 else None
        if not cur.nextset():
            return rows


class _Unparsed(Exception):
    """The server refused a batch's whole text for migration `index`: none of it ran."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _fail_batch(conn, batch: list[Migration], spans: list[tuple[int, int]], exc,
                started: datetime) -> NoReturn:
    """Roll back, find the migration that failed, log FAILED and raise naming its file.

    PostgreSQL parses a batch's whole text before running it, so a syntax error leaves the
    migrations sent before the broken one unapplied: raise `_Unparsed` for the caller to
    send those again on their own, as if each had been sent alone.
    """
    import psycopg

    if conn.closed:  # which ones committed is for the next apply to read
        raise MigrationFailed(
            f"lost the connection while applying {batch[0].up.path} and the {len(batch) - 1} "
            f"migration(s) after it: {' '.join(str(exc).split())}; the ones that committed "
            "stay applied; check the server and run apply again") from None
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.execute("ROLLBACK")
    kept = {r[0] for r in conn.execute(
        f"SELECT version FROM {SCHEMA}.schema_versions WHERE version = ANY(%s)",
        ([m.version for m in batch],))}
    if exc.diag.statement_position:  # an offset in the batch's text names the file
        i = bisect_right([start for start, _ in spans], int(exc.diag.statement_position) - 1) - 1
    else:  # the first one not committed
        i = next((i for i, m in enumerate(batch) if m.version not in kept), 0)
        statements.check(batch[i].up)  # one left unclosed shows here, not as _commit's 1/0
    if len(kept) < i:
        raise _Unparsed(i)
    failed = batch[i]
    message, sqlstate, position = _describe_error(exc, failed.up, -spans[i][1])
    if position is None:  # name the statement when there is only one
        parts = statements.split(failed.up)
        if len(parts) == 1:
            position = "{}:{}".format(*statements.line_col(failed.up.sql, parts[0].start))
    _log(conn, version=failed.version, operation="MIGRATE", status="FAILED", started=started,
         error=message, sqlstate=sqlstate, position=position, context=_context(failed))
    if sqlstate == "42601" and position:  # a syntax error, worded as a compiler would
        head = f"{failed.up.path}:{position}: {message}"
    else:
        at = f" at line {position.replace(':', ', column ')}" if position else ""
        head = f"{failed.up.path} failed{at}: {message}"
    raise MigrationFailed(f"{head} (SQLSTATE {sqlstate}); it was rolled back and earlier "
                          f"migrations stay applied; {_hint(sqlstate)}") from None


def _apply_no_transaction(conn, m: Migration) -> tuple[Step, int]:
    import psycopg

    stmts = statements.split(m.up)
    started = _now()
    t0 = time.perf_counter()
    context = {"file": m.name, "checksum": m.checksum, "no_transaction": True,
               "runner": APP_NAME, "statements_total": len(stmts), "statements_done": 0,
               "running": _snippet(stmts[0].text) if stmts else None}
    log_id = _log(conn, version=m.version, operation="MIGRATE", status="RUNNING",
                  started=started, context=context)
    progress_sql = (f"UPDATE {SCHEMA}.migration_log SET context = context || %s::jsonb "
                    "WHERE id = %s")
    done = 0
    try:
        _set_timeouts(conn, m.up, local=False)
        for i, stmt in enumerate(stmts):
            conn.execute(stmt.text)
            done = i + 1
            nxt = _snippet(stmts[i + 1].text) if i + 1 < len(stmts) else None
            conn.execute(progress_sql, (json.dumps({"statements_done": done, "running": nxt}),
                                        log_id))
        _reset_timeouts(conn, m.up)
        ms = round((time.perf_counter() - t0) * 1000)
        with conn.transaction():
            conn.execute(
                f"""INSERT INTO {SCHEMA}.schema_versions
                      (version, description, file, checksum, execution_time_ms, undo_file,
                       undo_checksum, undo_sql)
                    VALUES (%(version)s, %(description)s, %(file)s, %(checksum)s, %(ms)s,
                            %(undo_file)s, %(undo_checksum)s, %(undo_sql)s)""",
                _applied_values(m, ms, started, context))
            lsn = conn.execute(
                f"""UPDATE {SCHEMA}.migration_log SET status = 'SUCCESS',
                           completed_at = clock_timestamp(), context = context || %s::jsonb
                     WHERE id = %s RETURNING pg_current_wal_insert_lsn()::text""",
                (json.dumps({"running": None}), log_id)).fetchone()[0]
    except psycopg.Error as exc:
        failed = stmts[done] if done < len(stmts) else None
        message, sqlstate, position = _describe_error(exc, m.up, failed.start if failed else 0)
        if position is None and failed is not None:
            position = "{}:{}".format(*statements.line_col(m.up.sql, failed.start))
        invalid: list[str] = []
        if not conn.closed:
            try:
                _reset_timeouts(conn, m.up)
                conn.execute(
                    f"""UPDATE {SCHEMA}.migration_log SET status = 'FAILED',
                               completed_at = clock_timestamp(), error_message = %s,
                               error_sqlstate = %s, error_position = %s,
                               context = context || %s::jsonb
                         WHERE id = %s""",
                    (message, sqlstate, position,
                     json.dumps({"statements_done": done}), log_id))
                invalid = history.invalid_indexes(conn)
            except psycopg.Error:
                pass
        at = f" at line {position.replace(':', ', column ')}" if position else ""
        ran = (f"statements 1-{done} of {len(stmts)} ran and stay applied"
               if done else "no statement of it ran")
        left = (f"; invalid indexes left: {', '.join(invalid)} (drop each with DROP INDEX "
                "CONCURRENTLY)" if invalid else "")
        fix = ("finish or undo what ran, then `datakit migrate repair` and apply again"
               if done or invalid else _hint(sqlstate))
        raise MigrationFailed(
            f"{m.up.path} (no-transaction) failed in statement {done + 1}{at}: {message} "
            f"(SQLSTATE {sqlstate}); {ran}{left}; {fix}"
        ) from None
    return Step(m.version, m.name, "MIGRATE", ms), lsn_to_int(lsn)


# --- rollback ---------------------------------------------------------------------------


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
    import psycopg

    started = _now()
    t0 = time.perf_counter()
    context = {"file": row.file, "undo_file": undo.name, "runner": APP_NAME,
               "no_transaction": undo.directives.no_transaction}
    remove = f"DELETE FROM {SCHEMA}.schema_versions WHERE version = %s"
    offset = 0
    try:
        if undo.directives.no_transaction:
            _set_timeouts(conn, undo, local=False)
            for stmt in statements.split(undo):
                offset = stmt.start
                conn.execute(stmt.text)
            _reset_timeouts(conn, undo)
            with conn.transaction():
                conn.execute(remove, (row.version,))
                _log(conn, version=row.version, operation="ROLLBACK", status="SUCCESS",
                     started=started, context=context)
        else:
            with conn.transaction():
                _set_timeouts(conn, undo, local=True)
                if undo.sql.strip():
                    conn.execute(undo.sql)
                conn.execute(remove, (row.version,))
                conn.execute(_INSERT_LOG, {
                    "version": row.version, "operation": "ROLLBACK", "status": "SUCCESS",
                    "started": started, "error": None, "sqlstate": None, "position": None,
                    "context": json.dumps(context)})
    except psycopg.Error as exc:
        message, sqlstate, position = _describe_error(exc, undo, offset)
        if not conn.closed:
            _log(conn, version=row.version, operation="ROLLBACK", status="FAILED",
                 started=started, error=message, sqlstate=sqlstate, position=position,
                 context=context)
        at = f" at line {position.replace(':', ', column ')}" if position else ""
        raise MigrationFailed(
            f"undo of {row.file} ({undo.name}) failed{at}: {message} (SQLSTATE {sqlstate}); "
            f"version {row.version} stays applied; fix the undo SQL and run rollback again"
        ) from None
    return Step(row.version, row.file, "ROLLBACK", round((time.perf_counter() - t0) * 1000))


# --- baseline, repair, reset ------------------------------------------------------------


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
                    values = _applied_values(m, 0, _now(), {})
                    conn.execute(
                        f"""INSERT INTO {SCHEMA}.schema_versions
                              (version, description, file, checksum, execution_time_ms,
                               baseline, undo_file, undo_checksum, undo_sql)
                            VALUES (%(version)s, %(description)s, %(file)s, %(checksum)s, 0,
                                    true, %(undo_file)s, %(undo_checksum)s, %(undo_sql)s)""",
                        values)
                    result.steps.append(Step(m.version, m.name, "BASELINE"))
                _log(conn, version=version, operation="BASELINE", status="SUCCESS",
                     started=_now(), context={"versions": [m.version for m in chosen],
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
                    _log(conn, version=v, operation="REPAIR", status="SUCCESS", started=_now(),
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
                    _log(conn, version=run.version, operation="REPAIR", status="SUCCESS",
                         started=_now(), context={"file": run.file, "resolved_log_id": run.log_id,
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
