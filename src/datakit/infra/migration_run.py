"""The migration step of `pulumi up`: inputs that change with the files, and the apply.

The resource's inputs carry every migration and undo file's checksum, so a new or edited
migration shows in `preview` and `up` applies it; the apply itself is the framework's own
(datakit.migrate), with its lock, history and drift checks.
"""

from __future__ import annotations

from pathlib import Path


def migration_inputs(migrations_dir: Path | str) -> dict[str, str]:
    """File name -> sha256 of every V and U file, in version order.

    Reads the files as the runner does, so a malformed name, an unknown directive or a
    duplicate version fails `preview` with the runner's message, not `up` halfway.
    """
    from datakit.migrate.files import discover

    inputs: dict[str, str] = {}
    for m in discover(migrations_dir):
        inputs[m.name] = m.checksum
        if m.undo is not None:
            inputs[m.undo.name] = m.undo.checksum
    return inputs


def apply_for_stack(dsn: str, migrations_dir: Path | str) -> dict:
    """Apply what is pending; the summary becomes the resource's state."""
    from datakit.migrate.runner import apply

    result = apply(dsn, migrations_dir)
    return {
        "applied": [s.file for s in result.steps],
        "current_version": result.current_version,
        "execution_ms": sum(s.execution_ms for s in result.steps),
        "wal_bytes": sum(s.wal_bytes or 0 for s in result.steps),
    }
