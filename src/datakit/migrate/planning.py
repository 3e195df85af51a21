"""What a run may do, decided from the files and the history: drift, partial runs, pending.

Shared by apply (before and under the lock) and by status and validate, so all three refuse
the same things with the same words.
"""

from __future__ import annotations

from datakit.migrate import history
from datakit.migrate.files import Migration
from datakit.migrate.history import Applied, PartialRun
from datakit.migrate.results import DriftError


def check_drift(migrations: list[Migration], applied: dict[int, Applied],
                migrations_dir: str) -> None:
    """Raise DriftError when an applied file changed or went missing."""
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


def check_partial(conn, partial: list[PartialRun]) -> None:
    """Raise DriftError for a no-transaction run that left something behind."""
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


def pending(migrations: list[Migration], applied: dict[int, Applied], target: int | None,
            allow_out_of_order: bool) -> list[Migration]:
    """The migrations to apply (up to `target`); one older than the newest applied is drift."""
    todo = [m for m in migrations
            if m.version not in applied and (target is None or m.version <= target)]
    newest = max(applied) if applied else None
    if newest is not None and not allow_out_of_order:
        late = [m for m in todo if m.version < newest]
        if late:
            raise DriftError(
                f"{late[0].up.path}: version {late[0].version} is older than the newest applied "
                f"version {newest}; give it a version above {newest}, or pass "
                "--allow-out-of-order if running it late is intended"
            )
    return todo
