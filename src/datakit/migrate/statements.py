"""SQL as PostgreSQL parses it: syntax check, statement splitting, error positions.

Uses pglast (PostgreSQL's own parser), never a split on `;`, so dollar-quoted and
`BEGIN ATOMIC` bodies, `DO` blocks, `E''` strings and comments with semicolons are whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from datakit.migrate.files import MigrationFileError, SqlFile


@dataclass(frozen=True)
class Statement:
    text: str
    start: int  # character offset in the file


def line_col(sql: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a 0-based character offset."""
    offset = max(0, min(offset, len(sql)))
    before = sql[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _parse(sql_file: SqlFile):
    import pglast

    try:
        return pglast.parse_sql(sql_file.sql)
    except pglast.parser.ParseError as exc:
        location = exc.args[1] if len(exc.args) > 1 else 0
        line, col = line_col(sql_file.sql, location)
        raise MigrationFileError(
            f"{sql_file.path}:{line}:{col}: syntax error: {exc.args[0]}; fix the SQL"
        ) from None


def check(sql_file: SqlFile) -> int:
    """Parse `sql_file` and refuse what would break its transaction; return the statement count.

    A transactional file may not contain BEGIN/COMMIT/ROLLBACK (the runner owns the
    transaction), and statements PostgreSQL refuses inside a transaction block need
    `-- datakit:no-transaction`.
    """
    from pglast import ast

    stmts = _parse(sql_file)
    if sql_file.directives.no_transaction:
        return len(stmts)
    for raw in stmts:
        node = raw.stmt
        problem = None
        if isinstance(node, ast.TransactionStmt):
            problem = "transaction control (BEGIN/COMMIT/ROLLBACK/SAVEPOINT)"
        elif isinstance(node, ast.IndexStmt) and node.concurrent:
            problem = "CREATE INDEX CONCURRENTLY"
        elif isinstance(node, ast.ReindexStmt) and any(
            getattr(p, "defname", "") == "concurrently" for p in (node.params or ())
        ):
            problem = "REINDEX CONCURRENTLY"
        elif isinstance(node, ast.DropStmt) and node.concurrent:
            problem = "DROP INDEX CONCURRENTLY"
        elif isinstance(node, ast.VacuumStmt | ast.CreatedbStmt | ast.DropdbStmt
                        | ast.CreateTableSpaceStmt):
            problem = type(node).__name__.removesuffix("Stmt").upper()
        if problem:
            line, _ = line_col(sql_file.sql, raw.stmt_location or 0)
            raise MigrationFileError(
                f"{sql_file.path}:{line}: {problem} cannot run inside the migration's "
                "transaction; put it in its own file with '-- datakit:no-transaction'"
            )
    return len(stmts)


def split(sql_file: SqlFile) -> list[Statement]:
    """The statements of a no-transaction file, each with its offset in the file."""
    import pglast

    _parse(sql_file)
    sql = sql_file.sql
    return [Statement(sql[piece], piece.start) for piece in pglast.split(sql, only_slices=True)]
