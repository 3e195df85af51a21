"""SQL as PostgreSQL parses it: syntax check, statement splitting, error positions.

Uses pglast (PostgreSQL's own parser), never a split on `;`, so dollar-quoted and
`BEGIN ATOMIC` bodies, `DO` blocks, `E''` strings and comments with semicolons are whole.
"""

from __future__ import annotations

import re
from collections import namedtuple

from datakit.migrate.files import MigrationFileError, SqlFile


class Statement(namedtuple("Statement", "text start")):
    """One statement of a file: its text and its character offset in the file."""

    __slots__ = ()


def line_col(sql: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a 0-based character offset."""
    offset = max(0, min(offset, len(sql)))
    before = sql[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _syntax_error(sql_file: SqlFile, exc) -> MigrationFileError:
    location = exc.args[1] if len(exc.args) > 1 else 0
    line, col = line_col(sql_file.sql, location)
    return MigrationFileError(
        f"{sql_file.path}:{line}:{col}: syntax error: {exc.args[0]}; fix the SQL"
    )


def _parse(sql_file: SqlFile):
    """The file's statements as pglast AST nodes (for lint)."""
    import pglast

    try:
        return pglast.parse_sql(sql_file.sql)
    except pglast.parser.ParseError as exc:
        raise _syntax_error(sql_file, exc) from None


# Statements PostgreSQL refuses inside a transaction block (or that would end ours).
_OUTSIDE_TRANSACTION = {
    "TransactionStmt": "transaction control (BEGIN/COMMIT/ROLLBACK/SAVEPOINT)",
    "VacuumStmt": "VACUUM",
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "CreateTableSpaceStmt": "CREATE TABLESPACE",
    "DropTableSpaceStmt": "DROP TABLESPACE",
    "AlterSystemStmt": "ALTER SYSTEM",
}


def check(sql_file: SqlFile) -> int:
    """Parse `sql_file` and refuse what would break its transaction; return the statement count.

    A transactional file may not contain BEGIN/COMMIT/ROLLBACK (the runner owns the
    transaction), and statements PostgreSQL refuses inside a transaction block need
    `-- datakit:no-transaction`. No file may DEALLOCATE or DISCARD the runner's statements.
    Uses the parser's JSON output: fast enough to run on every pending file before anything
    is applied.
    """
    import json

    from pglast import parser

    try:
        tree = json.loads(parser.parse_sql_json(sql_file.sql))
    except parser.ParseError as exc:
        raise _syntax_error(sql_file, exc) from None
    stmts = tree.get("stmts", [])
    for raw in stmts:
        ((kind, node),) = raw["stmt"].items()
        if kind in ("DeallocateStmt", "DiscardStmt"):
            line, _ = line_col(sql_file.sql, raw.get("stmt_location", 0))
            raise MigrationFileError(
                f"{sql_file.path}:{line}: DEALLOCATE and DISCARD would drop the statements "
                "apply prepares for its history rows; take it out of the file"
            )
        if sql_file.directives.no_transaction:
            continue
        problem = _OUTSIDE_TRANSACTION.get(kind)
        if kind == "IndexStmt" and node.get("concurrent"):
            problem = "CREATE INDEX CONCURRENTLY"
        elif kind == "DropStmt" and node.get("concurrent"):
            problem = "DROP INDEX CONCURRENTLY"
        elif kind == "ReindexStmt" and any(
            p.get("DefElem", {}).get("defname") == "concurrently" for p in node.get("params", [])
        ):
            problem = "REINDEX CONCURRENTLY"
        if problem:
            line, _ = line_col(sql_file.sql, raw.get("stmt_location", 0))
            raise MigrationFileError(
                f"{sql_file.path}:{line}: {problem} cannot run inside the migration's "
                "transaction; put it in its own file with '-- datakit:no-transaction'"
            )
    return len(stmts)


# A word that every statement `check` refuses in a transaction needs; a file without any
# of them cannot hold one, whatever its strings and comments say.
_REFUSABLE = re.compile(r"\b(begin|start|commit|end|abort|rollback|savepoint|release|prepare|"
                        r"vacuum|analy[sz]e|database|tablespace|system|concurrently|deallocate|discard)\b",
                        re.IGNORECASE)


def screen(sql_file: SqlFile) -> None:
    """`check` a file `apply` sends as is, unless it cannot hold a statement to refuse.

    Skips loading the parser for plain files: the server parses what apply sends before
    running any of it, so their syntax errors still stop apply before they run.
    """
    if sql_file.directives.no_transaction or _REFUSABLE.search(sql_file.sql):
        check(sql_file)


def split(sql_file: SqlFile) -> list[Statement]:
    """The statements of a no-transaction file, each with its offset in the file."""
    import pglast

    _parse(sql_file)
    sql = sql_file.sql
    return [Statement(sql[piece], piece.start) for piece in pglast.split(sql, only_slices=True)]
