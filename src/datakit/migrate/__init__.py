"""Versioned SQL migrations for the data layer: files, history, lock, apply, undo, lint, status.

Every command of `datakit migrate` is a plain function here:

>>> from datakit.migrate import apply, status
>>> apply(dsn)                     # pending migrations, one transaction each
>>> status(dsn).ok                 # False when something is pending or drifted

These modules import no driver or parser at load time (psycopg and pglast load on first
use), so importing the package stays cheap for the CLI.
"""

from datakit.migrate.admin import baseline, repair, reset
from datakit.migrate.applier import apply
from datakit.migrate.files import create, discover
from datakit.migrate.lint import lint
from datakit.migrate.results import DriftError, MigrationFailed
from datakit.migrate.status import status, validate
from datakit.migrate.undo import rollback

__all__ = ["DriftError", "MigrationFailed", "apply", "baseline", "create", "discover", "lint",
           "repair", "reset", "rollback", "status", "validate"]
