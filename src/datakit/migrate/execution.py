"""Running one file's SQL on a connection: its timeout directives, and the server's errors
worded for a person (message, SQLSTATE, `line:column` in the file, and a hint)."""

from __future__ import annotations

from datetime import UTC, datetime

from datakit.migrate import statements
from datakit.migrate.files import SqlFile


def now() -> datetime:
    return datetime.now(UTC)


def snippet(sql: str, limit: int = 80) -> str:
    """`sql` on one line, cut to `limit` characters (for the log's "running" field)."""
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def set_timeouts(conn, sql_file: SqlFile, local: bool) -> None:
    scope = "LOCAL " if local else ""
    d = sql_file.directives
    # Values are checked against a strict duration pattern when the file is read.
    if d.lock_timeout:
        conn.execute(f"SET {scope}lock_timeout = '{d.lock_timeout}'")
    if d.statement_timeout:
        conn.execute(f"SET {scope}statement_timeout = '{d.statement_timeout}'")


def reset_timeouts(conn, sql_file: SqlFile) -> None:
    if sql_file.directives.lock_timeout:
        conn.execute("RESET lock_timeout")
    if sql_file.directives.statement_timeout:
        conn.execute("RESET statement_timeout")


def describe_error(exc, sql_file: SqlFile, offset: int = 0) -> tuple[str, str | None, str | None]:
    """(one-line message, SQLSTATE, "line:col") for a libpq error raised by `sql_file`."""
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag and diag.message_primary else str(exc)) or "error"
    message = " ".join(message.split())
    sqlstate = getattr(exc, "sqlstate", None)
    position = None
    at = offset + int(diag.statement_position) - 1 if diag and diag.statement_position else -1
    if 0 <= at <= len(sql_file.sql):  # else not in the file (no position, or in our own SQL)
        position = "{}:{}".format(*statements.line_col(sql_file.sql, at))
    return message, sqlstate, position


def hint(sqlstate: str | None) -> str:
    """The fix to suggest for a failed migration, by SQLSTATE."""
    if sqlstate == "55P03":
        return ("another session holds a lock the migration needs; retry when it is quiet "
                "or raise -- datakit:lock-timeout")
    if sqlstate == "57014":
        return "it ran past its statement timeout; raise -- datakit:statement-timeout"
    return "fix the file and run apply again"
