"""The runner's operations under one name: apply, rollback, baseline, repair and reset.

Each lives in the module of its operation (`applier`, `undo`, `admin`), with what they
share in `results`, `planning`, `execution` and `history`; this module gathers them for
callers that want the whole runner (the Pulumi migration-run resource among them).
"""

from datakit.migrate.admin import Repair, baseline, repair, reset
from datakit.migrate.applier import apply
from datakit.migrate.results import DriftError, MigrationFailed, Progress, Result, Step
from datakit.migrate.undo import rollback

__all__ = ["DriftError", "MigrationFailed", "Progress", "Repair", "Result", "Step", "apply",
           "baseline", "repair", "reset", "rollback"]
