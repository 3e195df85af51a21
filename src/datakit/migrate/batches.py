"""Consecutive transactional migrations sent in one round trip, each its own transaction.

The text of a batch is, per migration: BEGIN and its settings, the file, its history and
log rows, a check that every history row of the batch so far is there, and COMMIT. The
bookkeeping statements are prepared once per connection (`PREPARE`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from datetime import datetime

from datakit.migrate import libpq, statements
from datakit.migrate.connection import APP_NAME
from datakit.migrate.execution import describe_error, hint, now
from datakit.migrate.files import Migration
from datakit.migrate.history import SCHEMA, applied_values, log
from datakit.migrate.replicas import lsn_to_int
from datakit.migrate.results import MigrationFailed, Step

TYPE_CHECKING = False  # typing costs a start-up more than this module's work
if TYPE_CHECKING:
    from typing import NoReturn

BATCH_MAX = 50  # migrations per round trip: bounds the text sent and how long progress waits


def batches(pending: list[Migration], one_by_one: bool) -> Iterator[list[Migration]]:
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


def context(m: Migration) -> dict:
    """The log row's context of a transactional migration."""
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
PREPARE = f"""
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


def apply_batch(conn, batch: list[Migration], durable: bool,
                applied: Iterable[int] = ()) -> list[tuple[Step, int]]:
    """Run `batch` in one round trip, each migration with its records in its own transaction
    (the statements of `PREPARE` must be prepared on `conn`); return each step and the WAL
    position after it.

    Files hold no transaction control (screened before), so between our BEGIN and our
    history INSERT + COMMIT each is exactly "the file in a transaction". PostgreSQL parses
    the whole text before running any of it and stops at the first error, leaving the
    migrations before the failed one committed. Only a `durable` batch's last commit waits
    for the WAL flush; it (or the FAILED log row) flushes the earlier ones too. `applied`
    are versions already in the history (out-of-order runs), which the checks count too.
    """
    first = batch[0].version
    earlier = sorted(v for v in applied if v >= first)
    parts: list[str] = []
    spans: list[tuple[int, int]] = []  # where each migration's text and file SQL start
    size = 0
    for i, m in enumerate(batch):
        prefix = _prefix(m, durable and i == len(batch) - 1)
        expected = i + 1 + bisect_right(earlier, m.version)
        record = (conn.mogrify(_RECORD, applied_values(m, 0, now(), context(m)))
                  + _commit(first, m.version, expected))
        spans.append((size, size + len(prefix)))
        parts += [prefix, m.up.sql, "\n;\n", record]  # the newline ends a trailing comment
        size += len(prefix) + len(m.up.sql) + 3 + len(record)
    started = now()
    try:
        reports = _reports(conn.execute("".join(parts)))
    except libpq.Error as exc:
        _fail_batch(conn, batch, spans, exc, started)
    return [(Step(m.version, m.name, "MIGRATE", ms), lsn_to_int(lsn))
            for m, (_, ms, lsn) in zip(batch, reports, strict=True)]


def _reports(cur) -> list[tuple]:
    """The row our check returns before each COMMIT (the files hold no COMMIT of their own)."""
    rows, last = [], None
    while True:
        if cur.statusmessage == "COMMIT":
            rows.append(last)
        last = cur.fetchone() if cur.rowcount == 1 else None
        if not cur.nextset():
            return rows


class Unparsed(Exception):
    """The server refused a batch's whole text for migration `index`: none of it ran."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _fail_batch(conn, batch: list[Migration], spans: list[tuple[int, int]], exc,
                started: datetime) -> NoReturn:
    """Roll back, find the migration that failed, log FAILED and raise naming its file.

    PostgreSQL parses a batch's whole text before running it, so a syntax error leaves the
    migrations sent before the broken one unapplied: raise `Unparsed` for the caller to
    send those again on their own, as if each had been sent alone.
    """
    if conn.closed:  # which ones committed is for the next apply to read
        raise MigrationFailed(
            f"lost the connection while applying {batch[0].up.path} and the {len(batch) - 1} "
            f"migration(s) after it: {' '.join(str(exc).split())}; the ones that committed "
            "stay applied; check the server and run apply again") from None
    if conn.transaction_status != libpq.IDLE:
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
        raise Unparsed(i)
    failed = batch[i]
    message, sqlstate, position = describe_error(exc, failed.up, -spans[i][1])
    if position is None:  # name the statement when there is only one
        parts = statements.split(failed.up)
        if len(parts) == 1:
            position = "{}:{}".format(*statements.line_col(failed.up.sql, parts[0].start))
    log(conn, version=failed.version, operation="MIGRATE", status="FAILED", started=started,
        error=message, sqlstate=sqlstate, position=position, context=context(failed))
    if sqlstate == "42601" and position:  # a syntax error, worded as a compiler would
        head = f"{failed.up.path}:{position}: {message}"
    else:
        at = f" at line {position.replace(':', ', column ')}" if position else ""
        head = f"{failed.up.path} failed{at}: {message}"
    raise MigrationFailed(f"{head} (SQLSTATE {sqlstate}); it was rolled back and earlier "
                          f"migrations stay applied; {hint(sqlstate)}") from None
