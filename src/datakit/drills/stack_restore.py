"""stack-restore: the DR rehearsal. Back up a live stack's PostgreSQL under a writer,
destroy the whole stack (`datakit down`), create it again (`datakit up`), restore the
data into the new primary, check it and measure.

Backup: the backup-restore drill's streaming archive (`pg_receivewal --synchronous`
through a drill-owned slot) plus a base backup (`pg_basebackup`) are taken as there, and
a logical dump (`pg_dump -Fc`) of the database at an exported snapshot: the marker rows
are read in that same REPEATABLE READ transaction, so they are exactly the rows the dump
holds (the backup point). Everything is kept in the drill's scratch directory, outside
the stack's data, so it survives `down`.

Restore is logical: `pg_restore --clean --if-exists` of that dump into the new primary,
as its superuser; the replicas receive it by streaming replication. Why not the physical
backup: a recreated stack has new generated passwords, a new system identifier and new
replicas, so putting the old base backup under the new primary would carry the old
pg_authid (wrong passwords for every role), and each replica would have to be rebuilt by
hand with pg_basebackup and new slots; the dump restores into the stack as `up` made it,
keeping its roles, passwords, replicas and node config, and it is what a restore into
different infrastructure looks like. The base backup and WAL archive are reported (sizes,
times) as the physical route's inputs, then removed with the scratch directory.

Only PostgreSQL is restored: Redis is a cache here and Kafka's topics come back empty
(recreated by `up`).

RTO: destroy start -> the restored primary takes a new write. RPO: destroy start minus
the acknowledgement time of the newest restored write (the backup point's age at the
disaster); `rpo_to_point_s` is the gap between that write and the backup point.
Refused on a stack whose topology is not `disposable`: it destroys the stack.
"""

from __future__ import annotations

import contextlib
import signal
import time

import psycopg

from datakit import status
from datakit.drills import checker
from datakit.drills import postgres_ops as po
from datakit.drills.backup_restore import _conn_args
from datakit.drills.context import DrillContext
from datakit.drills.result import DrillResult, measure
from datakit.drills.targets import SCHEMA, PostgresTarget
from datakit.drills.waiting import wait
from datakit.drills.writer import Recorder, Writer
from datakit.errors import DatakitError
from datakit.nodes.postgres_conf import pgpass_line
from datakit.nodes.scratch import LocalScratch
from datakit.stack import lifecycle as stacks
from datakit.stack.outputs import with_passwords

NAME = "stack-restore"
SLOT = "datakit_drill_stack_archive"
RECREATES_STACK = True  # the runner reads the outputs again before each further run


def applies(outputs: dict) -> str | None:
    return None if po.nodes(outputs) else "the stack has no PostgreSQL"


def refuse_unless_disposable(stack: str, outputs: dict) -> None:
    if not outputs.get("disposable"):
        raise DatakitError(f"stack {stack!r} is not disposable: stack-restore destroys and "
                           "recreates it; run it on a disposable stack (datakit:disposable: "
                           "\"true\")")


def _pgpass(scratch: LocalScratch, outputs: dict) -> dict:
    pg, secrets = outputs["endpoints"]["postgres"], outputs["secrets"]["postgres"]
    lines = pgpass_line(pg.get("replication_user", "replicator"), secrets["replication"])
    lines += pgpass_line(pg.get("superuser", "postgres"), secrets["superuser"])
    return {"PGPASSFILE": str(scratch.write(scratch.root / "pgpass", lines))}


def _su_args(node: dict, outputs: dict) -> list[str]:
    pg = outputs["endpoints"]["postgres"]
    return ["-h", node["host"], "-p", str(node["port"]), "-U", pg.get("superuser", "postgres"),
            "-w", "-d", pg["database"]]


def _du(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _backup(ctx: DrillContext, scratch: LocalScratch, rec: Recorder, target_run: str,
            version: int) -> tuple[set[int], float, dict]:
    """Archive + base backup + a dump at an exported snapshot; (rows at the point, the
    point's time, figures)."""
    out = ctx.outputs
    primary, _ = po.roles(out)
    env = _pgpass(scratch, out)
    tool = lambda name: scratch.tool(version, name)  # noqa: E731
    archive, base = scratch.dir("archive"), scratch.dir("base")
    dump = scratch.root / "datakit.dump"
    receiver = None
    try:
        scratch.run([tool("pg_receivewal"), *_conn_args(primary, out), "--create-slot",
                     "-S", SLOT, "--if-not-exists"], what="pg_receivewal --create-slot", env=env)
        receiver = scratch.spawn([tool("pg_receivewal"), *_conn_args(primary, out), "-D",
                                  str(archive), "-S", SLOT, "--synchronous", "-n"],
                                 log=scratch.root / "receivewal.log", env=env)
        rec.event("backup start")
        scratch.run([tool("pg_basebackup"), *_conn_args(primary, out), "-D", str(base),
                     "-X", "stream", "-c", "fast"], what="pg_basebackup", env=env)
        rec.event("base backup done")
        time.sleep(ctx.warmup_s)
        db = out["endpoints"]["postgres"]["database"]
        with po.connect(primary, out, dbname=db) as conn:
            conn.execute("begin isolation level repeatable read")
            # Marked before the snapshot is taken (at the transaction's first query): a
            # write acknowledged before the mark was visible before it, so it must be in.
            t_point = rec.event("backup point")
            snapshot = conn.execute("select pg_export_snapshot()").fetchone()[0]
            expected = {r[0] for r in conn.execute(
                f"select id from {SCHEMA}.writes where run = %s", [target_run]).fetchall()}
            scratch.run([tool("pg_dump"), *_su_args(primary, out), "-Fc", "-f", str(dump),
                         f"--snapshot={snapshot}"], what="pg_dump at the backup point",
                        env=env)
            conn.execute("commit")
        rec.event("dump done")
        segment = po.one(primary, out, "select pg_walfile_name(pg_switch_wal())")
        wait(lambda: (archive / segment).exists(), what=f"WAL segment {segment} archived",
             timeout=60)
        rec.event("archived")
    finally:
        if receiver:
            scratch.stop(receiver, sig=signal.SIGINT)
        with contextlib.suppress(psycopg.Error):
            po.one(primary, out, "select pg_drop_replication_slot(slot_name) from "
                   "pg_replication_slots where slot_name = %s", [SLOT])
    figures = {"base_backup_bytes": _du(base), "wal_archive_bytes": _du(archive),
               "dump_bytes": dump.stat().st_size,
               "base_backup_s": round(rec.at("base backup done") - rec.at("backup start"), 3),
               "dump_s": round(rec.at("dump done") - t_point, 3)}
    return expected, t_point, figures


def _restore(scratch: LocalScratch, outputs: dict, version: int) -> dict:
    primary, others = po.roles(outputs)
    env = _pgpass(scratch, outputs)
    scratch.run([scratch.tool(version, "pg_restore"), *_su_args(primary, outputs),
                 "--clean", "--if-exists", "--exit-on-error", "--single-transaction",
                 str(scratch.root / "datakit.dump")], what="pg_restore into the new primary",
                env=env)
    return {"primary": primary["name"],
            "standbys": po.wait_redundant(primary, outputs, others, timeout=120)}


def run(ctx: DrillContext) -> DrillResult:
    out = ctx.outputs
    refuse_unless_disposable(ctx.stack, out)
    result = DrillResult(NAME, ctx.stack, durable=ctx.durable)
    primary, _ = po.roles(out)
    version = int(po.one(primary, out, "show server_version_num")) // 10000
    scratch = LocalScratch(ctx.work_dir / f"{ctx.stack}-{ctx.run_id}")
    target = PostgresTarget(out, ctx.run_id)
    rec = Recorder()
    writer = Writer(target, rec)
    try:
        writer.start()
        time.sleep(ctx.warmup_s)
        expected, t_point, figures = _backup(ctx, scratch, rec, ctx.run_id, version)
        time.sleep(max(ctx.tail_s, 0.5))  # writes after the point: lost by design
        writer.stop()
        ctx.say(f"destroying stack {ctx.stack}")
        t_destroy = rec.event("destroy")
        stacks.down(ctx.stack)
        rec.event("destroyed")
        ctx.say(f"recreating stack {ctx.stack}")
        stacks.up(ctx.stack)
        fresh = with_passwords(stacks.outputs(ctx.stack))
        rec.event("recreated")
        ctx.say("restoring PostgreSQL from the dump at the backup point")
        restored_to = _restore(scratch, fresh, version)
        rec.event("restored")
        after = PostgresTarget(fresh, f"{ctx.run_id}-after")
        after.write(1)  # the restored stack takes writes
        after.reset()
        t_writable = rec.event("writable")
        restored = PostgresTarget(fresh, ctx.run_id).read_ids()
        down = [r["name"] for r in status.live(fresh) if r["health"] != "up"]
        rec.event("redundant")
    finally:
        with contextlib.suppress(Exception):
            writer.stop()
        scratch.cleanup(keep=False)
    acked_early = checker.acked_before(rec, t_point)
    result.check = checker.check_restore(rec, expected, restored)
    measure(result, rec, "destroy")
    result.rto_s = round(t_writable - t_destroy, 3)
    result.rto_redundancy_s = round(rec.at("redundant") - t_destroy, 3)
    newest = max((o.end for o in rec.ops if o.status == "ok" and o.id in restored),
                 default=None)
    result.rpo_s = None if newest is None else round(max(0.0, t_destroy - newest), 3)
    result.error_window_s, result.client_errors = None, {}
    result.extra.update(
        figures, restore="logical: pg_dump -Fc at an exported snapshot, pg_restore --clean",
        rows_at_point=len(expected), rows_restored=len(restored),
        acked_after_point_not_restored=len(rec.ids("ok") - expected),
        rpo_to_point_s=None if newest is None else round(max(0.0, t_point - newest), 3),
        destroy_s=round(rec.at("destroyed") - t_destroy, 3),
        up_s=round(rec.at("recreated") - rec.at("destroyed"), 3),
        restore_s=round(rec.at("restored") - rec.at("recreated"), 3),
        acked_before_point_missing_from_point=len(acked_early - expected),
        nodes_down_after=down, **restored_to)
    if result.check.lost or result.check.unexpected or acked_early - expected or down:
        result.reason = (f"restore differs: {len(result.check.lost)} missing, "
                         f"{len(result.check.unexpected)} unexpected, nodes down: {down}")
    return result
