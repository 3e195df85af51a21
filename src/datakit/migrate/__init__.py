"""Versioned SQL migrations for the data layer: files, history, lock, runner, lint, status.

Every command of `datakit migrate` is a plain function here:

>>> from datakit.migrate import apply, status
>>> apply(dsn)                     # pending migrations, one transaction each
>>> status(dsn).ok                 # False when something is pending or drifted
"""

from datakit.migrate.lint import lint
from datakit.migrate.runner import apply, baseline, repair, reset, rollback
from datakit.migrate.status import status, validate

__all__ = ["apply", "baseline", "lint", "repair", "reset", "rollback", "status", "validate"]
