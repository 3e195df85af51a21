"""stack-restore: destroy a stack, create it again, restore its data from the backups of
the old one, verify, measure. Not written yet: it reports that it was not run."""

from __future__ import annotations

from datakit.drills.context import DrillContext
from datakit.drills.result import DrillResult

NAME = "stack-restore"


def applies(outputs: dict) -> str | None:
    return "not implemented yet (destroy, recreate, restore from backup-restore's backups)"


def run(ctx: DrillContext) -> DrillResult:
    return DrillResult(NAME, ctx.stack, applies=False, reason=applies(ctx.outputs))
