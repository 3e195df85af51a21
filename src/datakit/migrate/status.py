"""What the files and the database's history say together: status and validate."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from datakit.migrate import history, statements
from datakit.migrate.connection import connect
from datakit.migrate.files import discover
from datakit.migrate.planning import check_drift, check_partial, pending


@dataclass
class Row:
    version: int
    file: str
    state: str  # applied, baseline, pending, out-of-order, drifted, missing-file, partial
    applied_at: str | None = None
    execution_ms: int | None = None
    detail: str | None = None


@dataclass
class StatusReport:
    rows: list[Row] = field(default_factory=list)
    current_version: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[Row]:
        return [r for r in self.rows if r.state in ("pending", "out-of-order")]

    @property
    def drifted(self) -> list[Row]:
        return [r for r in self.rows if r.state in ("drifted", "missing-file", "partial")]

    @property
    def ok(self) -> bool:
        return not self.pending and not self.drifted

    def to_dict(self) -> dict:
        return {"current_version": self.current_version, "ok": self.ok,
                "pending": len(self.pending), "drifted": len(self.drifted),
                "problems": self.problems, "migrations": [asdict(r) for r in self.rows]}


def status(dsn: str, migrations_dir: str | Path | None = None) -> StatusReport:
    """Every version, applied or not, with its state; never changes the database."""
    migrations = discover(migrations_dir)
    conn = connect(dsn)
    try:
        applied, partial = history.read(conn)
        invalid = history.invalid_indexes(conn) if partial else []
    finally:
        conn.close()
    files = {m.version: m for m in migrations}
    newest = max(applied) if applied else None
    # A run of which nothing ran and that left nothing behind is simply pending.
    partial_versions = {p.version: p for p in partial if p.statements_done or invalid}
    report = StatusReport(current_version=newest)
    for version in sorted(set(files) | set(applied)):
        m, row = files.get(version), applied.get(version)
        if row is not None:
            entry = Row(version, row.file, "baseline" if row.baseline else "applied",
                        f"{row.applied_at:%Y-%m-%d %H:%M:%S%z}", row.execution_time_ms)
            if m is None:
                entry.state, entry.detail = "missing-file", "applied, file not found"
            elif m.checksum != row.checksum.strip():
                entry.state = "drifted"
                entry.detail = f"checksum was {row.checksum.strip()[:12]}, now {m.checksum[:12]}"
        else:
            state = "out-of-order" if newest is not None and version < newest else "pending"
            entry = Row(version, m.name, state)
            if version in partial_versions:
                p = partial_versions[version]
                entry.state = "partial"
                entry.detail = (f"no-transaction run {p.status.lower()} after "
                                f"{p.statements_done}/{p.statements_total} statements")
                if invalid:
                    entry.detail += f"; invalid indexes left: {', '.join(invalid)}"
        report.rows.append(entry)
    for r in report.rows:
        if r.state not in ("applied", "baseline"):
            report.problems.append(f"{r.file}: {r.state}" + (f" ({r.detail})" if r.detail else ""))
    return report


def validate(dsn: str | None, migrations_dir: str | Path | None = None, *,
             allow_out_of_order: bool = False) -> StatusReport:
    """Check every file (names, directives, SQL) and, with a DSN, drift against the database.

    Raises DatakitError on the first problem; returns the status report (pending rows
    included) when the files and the history agree.
    """
    migrations = discover(migrations_dir)
    for m in migrations:
        statements.check(m.up)
        if m.undo:
            statements.check(m.undo)
    if dsn is None:
        return StatusReport(rows=[Row(m.version, m.name, "unchecked") for m in migrations])
    conn = connect(dsn)
    try:
        applied, partial = history.read(conn)
        check_drift(migrations, applied, str(migrations_dir or "migrations/"))
        check_partial(conn, partial)
        pending(migrations, applied, None, allow_out_of_order)
    finally:
        conn.close()
    return status(dsn, migrations_dir)
