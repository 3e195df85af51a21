"""postgres-switchover: the planned version. Writes are fenced (the writer pauses with
nothing in flight and drops its connection), the primary is stopped cleanly (a fast
shutdown sends all WAL to the standbys), the most caught-up standby is promoted, the
others re-pointed, the fence lifted, and the old primary rejoins as a standby.

No write fails or is lost; the price is the fenced pause, reported as the RTO (fence to
first write). Without the fence, the in-flight write on the stopping primary would end
in an error whose outcome is unknown: that is the failover drill.
"""

from __future__ import annotations

import time

from datakit.drills import postgres_ops as po
from datakit.drills.checker import check
from datakit.drills.context import DrillContext
from datakit.drills.postgres_failover import restore_redundancy
from datakit.drills.result import DrillResult, measure
from datakit.drills.targets import PostgresTarget
from datakit.drills.writer import Recorder, Writer, wait_first_ack_after
from datakit.nodes.control import control_for

NAME = "postgres-switchover"


def applies(outputs: dict) -> str | None:
    return None if len(po.nodes(outputs)) >= 2 else "needs a primary and a replica"


def run(ctx: DrillContext) -> DrillResult:
    out = ctx.outputs
    result = DrillResult(NAME, ctx.stack, durable=ctx.durable)
    old, replicas = po.roles(out)
    target = PostgresTarget(out, ctx.run_id)
    rec = Recorder()
    writer = Writer(target, rec)
    try:
        writer.start()
        time.sleep(ctx.warmup_s)
        rec.event("fence")
        writer.pause()
        ctx.say(f"stopping primary {old['name']} cleanly")
        final = po.lsn(po.one(old, out, "select pg_current_wal_lsn()::text"))
        control_for(old, out).stop()
        rec.event("stopped")
        lsns = {r["name"]: po.received_lsn(r, out) for r in replicas}
        best = max(replicas, key=lambda r: lsns[r["name"]])
        if lsns[best["name"]] < final:
            result.notes.append(f"{best['name']} had received {lsns[best['name']]:X} < "
                                f"{final:X} at the old primary's stop")
        po.promote(best, out)
        rec.event("promoted")
        others = [r for r in replicas if r is not best]
        for r in others:
            po.repoint(r, best, out)
        result.extra["synchronous_standby_names"] = po.ensure_quorum(best, out,
                                                                     [*others, old])
        rec.event("repointed")
        writer.resume()
        rec.event("unfenced")
        wait_first_ack_after(rec, rec.at("unfenced") or 0.0, timeout=30)
        restore_redundancy(ctx, rec, result, old, best, others, out)
    finally:
        writer.resume()
        writer.stop()
    result.check = check(rec, target.read_ids())
    measure(result, rec, "fence")
    failed = result.check.failed + result.check.unknown
    if result.check.lost or failed:
        result.reason = f"planned switchover: {len(result.check.lost)} lost, {failed} failed"
    return result
