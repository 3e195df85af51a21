"""Lint migrations with PostgreSQL's own parser for changes that lock existing tables.

Rules (id, default severity): each finding names the file, the line, the rule and a fix.
A table created earlier in the same file is new, so nothing on it counts as heavy.

  DK001 error    CREATE INDEX without CONCURRENTLY on an existing table
  DK002 error    ADD COLUMN with a volatile default (rewrites the table)
  DK003 error    SET NOT NULL without a validated CHECK (col IS NOT NULL) first
  DK004 error    ALTER COLUMN ... TYPE (usually rewrites the table)
  DK005 warning  DROP COLUMN (breaks readers still using it)
  DK006 warning  a lock-taking change on an existing table with no lock_timeout

Severities are configurable per run (`errors`, `warnings`, `ignore`) and per file
(`-- datakit:lint-ignore=DK005`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from datakit.errors import DatakitError
from datakit.migrate.files import SqlFile, discover
from datakit.migrate.statements import _parse, line_col

RULES: dict[str, tuple[str, str, str]] = {
    "DK001": ("error", "CREATE INDEX without CONCURRENTLY locks writes to the table",
              "use CREATE INDEX CONCURRENTLY in a file with -- datakit:no-transaction"),
    "DK002": ("error", "ADD COLUMN with a volatile default rewrites the whole table",
              "add the column without a default, set the default, backfill in batches"),
    "DK003": ("error", "SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock",
              "first ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, then VALIDATE "
              "CONSTRAINT, then SET NOT NULL"),
    "DK004": ("error", "changing a column's type rewrites the table under an ACCESS "
              "EXCLUSIVE lock", "add a new column, backfill it, switch readers, drop the old"),
    "DK005": ("warning", "DROP COLUMN breaks code that still reads the column",
              "stop using the column in a release first, then drop it"),
    "DK006": ("warning", "this change takes a heavy lock with no lock_timeout, so it can "
              "queue behind a long transaction and block everyone",
              "add -- datakit:lock-timeout=5s (or SET lock_timeout)"),
}

VOLATILE = {"random", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc",
            "uuid_generate_v4", "clock_timestamp", "timeofday", "nextval", "setseed",
            "txid_current", "pg_current_xact_id", "random_normal"}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    file: str
    line: int
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule} {self.severity}: {self.message}; {self.fix}"

    def to_dict(self) -> dict:
        return asdict(self)


def _walk(node):
    from pglast.ast import Node

    if isinstance(node, tuple | list):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, Node):
        yield node
        for slot in node.__slots__:
            yield from _walk(getattr(node, slot, None))


def _func_names(expr) -> set[str]:
    from pglast import ast

    return {n.funcname[-1].sval.lower() for n in _walk(expr)
            if isinstance(n, ast.FuncCall) and n.funcname}


def _rel(rangevar) -> str:
    return f"{rangevar.schemaname or 'public'}.{rangevar.relname}"


def _not_null_checks(stmts) -> set[tuple[str, str]]:
    """(table, column) pairs with a validated `CHECK (col IS NOT NULL)` in the file."""
    from pglast import ast, enums

    checks: dict[tuple[str, str], tuple[str, str]] = {}  # (table, conname) -> (table, col)
    valid: set[tuple[str, str]] = set()
    for raw in stmts:
        node = raw.stmt
        if not isinstance(node, ast.AlterTableStmt):
            continue
        table = _rel(node.relation)
        for cmd in node.cmds or ():
            if cmd.subtype == enums.AlterTableType.AT_AddConstraint and isinstance(
                    cmd.def_, ast.Constraint) and cmd.def_.contype == enums.ConstrType.CONSTR_CHECK:
                for n in _walk(cmd.def_.raw_expr):
                    if isinstance(n, ast.NullTest) and \
                            n.nulltesttype == enums.NullTestType.IS_NOT_NULL and \
                            isinstance(n.arg, ast.ColumnRef):
                        col = n.arg.fields[-1].sval
                        checks[(table, cmd.def_.conname)] = (table, col)
                        if not cmd.def_.skip_validation:
                            valid.add((table, col))
            elif cmd.subtype == enums.AlterTableType.AT_ValidateConstraint and \
                    (table, cmd.name) in checks:
                valid.add(checks[(table, cmd.name)])
    return valid


def lint_file(sql_file: SqlFile) -> list[tuple[str, int, str]]:
    """Raw findings (rule, line, detail) for one file, before severities are applied."""
    from pglast import ast, enums

    stmts = _parse(sql_file)
    created: set[str] = set()
    found: list[tuple[str, int, str]] = []
    has_lock_timeout = sql_file.directives.lock_timeout is not None
    not_null_ok = _not_null_checks(stmts)
    heavy_line = None
    for raw in stmts:
        node = raw.stmt
        line = line_col(sql_file.sql, raw.stmt_location or 0)[0]
        if isinstance(node, ast.VariableSetStmt) and node.name == "lock_timeout":
            has_lock_timeout = True
        elif isinstance(node, ast.CreateStmt):
            created.add(_rel(node.relation))
        elif isinstance(node, ast.CreateTableAsStmt) and node.into:
            created.add(_rel(node.into.rel))
        elif isinstance(node, ast.IndexStmt):
            table = _rel(node.relation)
            if table not in created and not node.concurrent:
                found.append(("DK001", line, f"index on {table}"))
                heavy_line = heavy_line or line
        elif isinstance(node, ast.AlterTableStmt):
            table = _rel(node.relation)
            if table in created:
                continue
            heavy_line = heavy_line or line
            for cmd in node.cmds or ():
                kind = cmd.subtype
                if kind == enums.AlterTableType.AT_AddColumn and isinstance(cmd.def_,
                                                                            ast.ColumnDef):
                    for con in cmd.def_.constraints or ():
                        if con.contype == enums.ConstrType.CONSTR_DEFAULT:
                            volatile = _func_names(con.raw_expr) & VOLATILE
                            if volatile:
                                found.append(("DK002", line, f"{table}.{cmd.def_.colname} "
                                              f"DEFAULT {sorted(volatile)[0]}()"))
                elif kind == enums.AlterTableType.AT_SetNotNull:
                    if (table, cmd.name) not in not_null_ok:
                        found.append(("DK003", line, f"{table}.{cmd.name}"))
                elif kind == enums.AlterTableType.AT_AlterColumnType:
                    found.append(("DK004", line, f"{table}.{cmd.name}"))
                elif kind == enums.AlterTableType.AT_DropColumn:
                    found.append(("DK005", line, f"{table}.{cmd.name}"))
    if heavy_line is not None and not has_lock_timeout:
        found.append(("DK006", heavy_line, "no lock_timeout in this file"))
    return found


def lint(migrations_dir: str | Path | None = None, *, errors: set[str] | None = None,
         warnings: set[str] | None = None, ignore: set[str] | None = None) -> list[Finding]:
    """Every finding in every V and U file, with its effective severity."""
    errors, warnings, ignore = set(errors or ()), set(warnings or ()), set(ignore or ())
    for rule in errors | warnings | ignore:
        if rule not in RULES:
            raise DatakitError(f"unknown lint rule {rule!r}; rules: {', '.join(RULES)}")
    findings: list[Finding] = []
    for m in discover(migrations_dir):
        for sql_file in (m.up, m.undo):
            if sql_file is None:
                continue
            for rule, line, detail in lint_file(sql_file):
                if rule in ignore or rule in sql_file.directives.lint_ignore:
                    continue
                default, message, fix = RULES[rule]
                severity = ("error" if rule in errors else
                            "warning" if rule in warnings else default)
                findings.append(Finding(rule, severity, str(sql_file.path), line,
                                        f"{message} ({detail})", fix))
    return findings
