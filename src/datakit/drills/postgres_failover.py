"""postgres-failover: SIGKILL the primary under a writer; promote the replica that
received the most WAL; re-point the other replicas to it (they follow the new timeline);
rejoin the old primary with pg_rewind as a standby with its own slot. Clients on the
multi-host DSN (`target_session_attrs=read-write`) find the new primary themselves.

Detection is modelled as an HA agent would do it: the primary is probed every 0.2 s and
declared failed after two refused probes in a row; datakit runs no agent of its own.

The non-durable mode turns synchronous replication off and ends the WAL senders a moment
before the kill (`postgres_ops.cut_walsenders`): commits acknowledged in that gap exist on
the killed primary only, and the checker must count each as lost.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import psycopg

from datakit.drills import postgres_ops as po
from datakit.drills.checker import check
from datakit.drills.context import DrillContext
from datakit.drills.result import DrillResult, measure
from datakit.drills.targets import PostgresTarget
from datakit.drills.writer import Recorder, Writer, wait_first_ack_after
from datakit.nodes.control import control_for

NAME = "postgres-failover"
PROBE_INTERVAL_S = 0.2
PROBES_TO_FAIL = 2


def applies(outputs: dict) -> str | None:
    return None if len(po.nodes(outputs)) >= 2 else "needs a primary and a replica"


def detect_failure(node: dict, outputs: dict) -> None:
    failed = 0
    while failed < PROBES_TO_FAIL:
        try:
            po.one(node, outputs, "select 1")
            failed = 0
        except psycopg.Error:
            failed += 1
        if failed < PROBES_TO_FAIL:
            time.sleep(PROBE_INTERVAL_S)


def fail_over(ctx: DrillContext, rec: Recorder, old: dict, replicas: list[dict]) -> dict:
    """From a dead primary to a promoted one with the others following; returns it."""
    out = ctx.outputs
    detect_failure(old, out)
    rec.event("detected")
    lsns = {}
    for r in replicas:
        try:
            lsns[r["name"]] = po.received_lsn(r, out)
        except psycopg.Error:
            lsns[r["name"]] = -1
    best = max(replicas, key=lambda r: lsns[r["name"]])
    ctx.say(f"promoting {best['name']} (WAL received: {lsns})")
    po.promote(best, out)
    rec.event("promoted")
    others = [r for r in replicas if r is not best]
    for r in others:
        po.repoint(r, best, out)
    rec.event("repointed")
    return best


def restore_redundancy(ctx: DrillContext, rec: Recorder, result: DrillResult, old: dict,
                       best: dict, others: list[dict], out: dict) -> None:
    """Rejoin the old primary under the new one with pg_rewind, then wait until every
    standby streams again: the second half of a failover and of a switchover."""
    result.extra["pg_rewind"] = po.rejoin(old, best, out)
    rec.event("rejoined")
    result.extra["standbys"] = po.wait_redundant(best, out, [*others, old])
    rec.event("redundant")
    time.sleep(ctx.tail_s)
    result.extra.update(old_primary=old["name"], new_primary=best["name"])


def run(ctx: DrillContext) -> DrillResult:
    out = ctx.outputs
    result = DrillResult(NAME, ctx.stack, durable=ctx.durable)
    old, replicas = po.roles(out)
    target = PostgresTarget(out, ctx.run_id)
    rec = Recorder()
    if not ctx.durable:
        po.set_async(out, True)
    writer = Writer(target, rec)
    try:
        writer.start()
        time.sleep(ctx.warmup_s)
        ctx.say(f"killing primary {old['name']} (SIGKILL)")
        with po.cut_walsenders(old, replicas, out) if not ctx.durable else nullcontext():
            control_for(old, out).kill()
        rec.event("kill")  # the node is dead now
        best = fail_over(ctx, rec, old, replicas)
        others = [r for r in replicas if r is not best]
        result.extra["synchronous_standby_names"] = po.ensure_quorum(best, out,
                                                                     [*others, old])
        t_kill = rec.at("kill") or 0.0
        wait_first_ack_after(rec, t_kill, timeout=30)
        ctx.say(f"rejoining {old['name']} with pg_rewind")
        restore_redundancy(ctx, rec, result, old, best, others, out)
    finally:
        writer.stop()
        if not ctx.durable:
            po.set_async(out, False)
    result.check = check(rec, target.read_ids())
    measure(result, rec, "kill")
    if result.check.lost and ctx.durable:
        result.reason = f"{len(result.check.lost)} acknowledged writes lost"
    return result
