"""redis-cluster-failover: kill a master of a Redis Cluster; its replica takes the slots.

Applies only when the stack's Redis mode is `cluster`. The cluster run itself is not
written yet: on a cluster stack the drill says so instead of pretending.
"""

from __future__ import annotations

from datakit.drills.context import DrillContext
from datakit.drills.result import DrillResult

NAME = "redis-cluster-failover"


def applies(outputs: dict) -> str | None:
    mode = outputs["endpoints"]["redis"].get("mode")
    if mode != "cluster":
        return f"the stack's Redis mode is {mode!r}, not cluster"
    return None


def run(ctx: DrillContext) -> DrillResult:
    return DrillResult(NAME, ctx.stack, durable=ctx.durable,
                       reason="not implemented yet for cluster stacks (see the module doc)")
