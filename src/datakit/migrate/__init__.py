"""Versioned SQL migrations for the data layer: files, history, lock, runner, lint, status.

Every command of `datakit migrate` is a plain function here (imported on first use, so the
CLI starts fast):

>>> from datakit.migrate import apply, status
>>> apply(dsn)                     # pending migrations, one transaction each
>>> status(dsn).ok                 # False when something is pending or drifted
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "apply": "runner", "rollback": "runner", "baseline": "runner", "repair": "runner",
    "reset": "runner", "status": "status", "validate": "status", "lint": "lint",
    "discover": "files", "create": "files",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"datakit.migrate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'datakit.migrate' has no attribute {name!r}")
