"""Think time between a user's tasks, from the run's settings (0 for benchmarks)."""

from __future__ import annotations

import random
from collections.abc import Callable

from datakit.load.settings import current

_before_think: list[Callable[[], None]] = []


def before_think(hook: Callable[[], None]) -> None:
    """Run `hook` in a user's greenlet before it sleeps (e.g. give back a connection)."""
    if hook not in _before_think:
        _before_think.append(hook)


def think(user=None) -> float:
    low, high = current().think_ms
    if high <= 0:
        return 0.0
    for hook in _before_think:
        hook()
    return random.uniform(low, high) / 1000.0


def agent_ids(n: int = 200) -> list[str]:
    """A bounded set of this run's agents, so caches hit and versions collide."""
    run = current().run_id
    return [f"agent-{run}-{i}" for i in range(n)]
