"""Think time between a user's tasks, from the run's settings (0 for benchmarks)."""

from __future__ import annotations

import random

from datakit.load.settings import current


def think(user=None) -> float:
    low, high = current().think_ms
    return 0.0 if high <= 0 else random.uniform(low, high) / 1000.0


def agent_ids(n: int = 200) -> list[str]:
    """A bounded set of this run's agents, so caches hit and versions collide."""
    run = current().run_id
    return [f"agent-{run}-{i}" for i in range(n)]
