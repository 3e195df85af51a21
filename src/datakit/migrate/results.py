"""What a migration run returns, and how it fails: its steps, its result, its two errors.

Plain classes, not dataclasses, for the start-up cost (see files.py).
"""

from __future__ import annotations

from collections.abc import Callable

from datakit.errors import DatakitError
from datakit.migrate.replicas import ReplicaWait


class MigrationFailed(DatakitError):
    """A migration's SQL failed; it was rolled back (or reported statement by statement)."""


class DriftError(DatakitError):
    """The files and the database's history disagree."""


class Step:
    """One migration applied or rolled back: its time, the WAL it wrote, the replicas' wait."""

    __slots__ = ("version", "file", "operation", "execution_ms", "wal_bytes", "replicas")

    def __init__(self, version: int, file: str, operation: str, execution_ms: int = 0,
                 wal_bytes: int | None = None, replicas: ReplicaWait | None = None) -> None:
        self.version, self.file, self.operation = version, file, operation
        self.execution_ms, self.wal_bytes, self.replicas = execution_ms, wal_bytes, replicas

    def to_dict(self) -> dict:
        return {"version": self.version, "file": self.file, "operation": self.operation,
                "execution_ms": self.execution_ms, "wal_bytes": self.wal_bytes,
                "replicas": self.replicas._asdict() if self.replicas is not None else None}

    def __eq__(self, other) -> bool:
        return isinstance(other, Step) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Step({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"


class Result:
    """What a run did (`steps`) or would do (`planned`, with `dry_run`), and the version the
    database is at after it."""

    __slots__ = ("operation", "steps", "planned", "dry_run", "current_version", "notes")

    def __init__(self, operation: str, steps: list[Step] | None = None,
                 planned: list[str] | None = None, dry_run: bool = False,
                 current_version: int | None = None, notes: list[str] | None = None) -> None:
        self.operation, self.dry_run, self.current_version = operation, dry_run, current_version
        self.steps = [] if steps is None else steps
        self.planned = [] if planned is None else planned
        self.notes = [] if notes is None else notes

    def to_dict(self) -> dict:
        return {"operation": self.operation, "steps": [s.to_dict() for s in self.steps],
                "planned": list(self.planned), "dry_run": self.dry_run,
                "current_version": self.current_version, "notes": list(self.notes)}

    def __eq__(self, other) -> bool:
        return isinstance(other, Result) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Result({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"


Progress = Callable[[Step], None]
