"""Versioned SQL migrations for the data layer: files, history, lock, apply, undo, lint, status.

Every command of `datakit migrate` is a plain function here:

>>> from datakit.migrate import apply, status
>>> apply(dsn)                     # pending migrations, one transaction each
>>> status(dsn).ok                 # False when something is pending or drifted

Each name loads its module on first use. Importing any module of the package runs this
file first, and `datakit migrate apply` with nothing to do (`noop`, `fastpath`) must not
pay for the runner, the driver or the file model it never uses.
"""

import sys

# Each exported name and the module that defines it.
_EXPORTS = {
    "apply": "applier", "rollback": "undo", "baseline": "admin", "repair": "admin",
    "reset": "admin", "status": "status", "validate": "status", "lint": "lint",
    "create": "files", "discover": "files", "DriftError": "results",
    "MigrationFailed": "results",
}

__all__ = sorted(_EXPORTS)


class _Package(type(sys)):
    """This package, with its exports loaded on first use."""

    def __getattr__(self, name: str):
        if name not in _EXPORTS:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        module = f"{self.__name__}.{_EXPORTS[name]}"
        __import__(module)
        value = getattr(sys.modules[module], name)
        type(sys).__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value) -> None:
        # Importing a submodule sets it on its package. `status` and `lint` are modules as
        # well as exported functions, and `from datakit.migrate import status` must give the
        # function whichever was imported first.
        if name in _EXPORTS and isinstance(value, type(sys)):
            return
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_EXPORTS})


sys.modules[__name__].__class__ = _Package
