"""The migration step of `pulumi up`: inputs that change with the files, and the apply.

The resource's inputs carry every bundled file's checksum, so a new or edited migration
shows in `preview` and `up` applies it; the apply itself is the framework's own
(datakit.migrate), with its lock, history and drift checks.
"""

from __future__ import annotations

from pathlib import Path

from datakit.migrate.files import sha256


def migration_inputs(migrations_dir: Path | str) -> dict[str, str]:
    """File name -> sha256 of every migration and undo file, in name order."""
    folder = Path(migrations_dir)
    return {p.name: sha256(p.read_bytes()) for p in sorted(folder.glob("*.sql"))}


def apply_for_stack(dsn: str, migrations_dir: Path | str) -> dict:
    """Apply what is pending; the summary becomes the resource's state."""
    from datakit.migrate.runner import apply

    result = apply(dsn, migrations_dir)
    return {"applied": [s.file for s in result.steps],
            "current_version": result.current_version}
