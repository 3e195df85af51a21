"""How drills wait for what they measure: readiness's wait_until with a short poll, since
a drill times what it waits for (a coarse poll would add to the RTO it reports)."""

from __future__ import annotations

from datakit.nodes.readiness import wait_until


def wait(probe, *, what: str, timeout: float = 60.0, interval: float = 0.02):
    """readiness.wait_until with a short poll: drills time what they wait for."""
    return wait_until(probe, what=what, timeout=timeout, interval=interval, max_interval=0.1)
