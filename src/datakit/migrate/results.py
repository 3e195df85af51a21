"""What a migration run returns, and how it fails: its steps, its result, its two errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from datakit.errors import DatakitError
from datakit.migrate.replicas import ReplicaWait


class MigrationFailed(DatakitError):
    """A migration's SQL failed; it was rolled back (or reported statement by statement)."""


class DriftError(DatakitError):
    """The files and the database's history disagree."""


@dataclass
class Step:
    """One migration applied or rolled back."""

    version: int
    file: str
    operation: str
    execution_ms: int = 0
    wal_bytes: int | None = None
    replicas: ReplicaWait | None = None


@dataclass
class Result:
    operation: str
    steps: list[Step] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    dry_run: bool = False
    current_version: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


Progress = Callable[[Step], None]
