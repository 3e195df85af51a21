"""backup-restore: continuous WAL archiving plus a base backup, then a point-in-time
restore into a new instance on a free port, compared with what was committed up to
that point.

Archiving: the stack's own archive (`postgres.archive`) gets only finished WAL segments,
so a restore to "now" would miss the newest acknowledged writes. The drill archives by
streaming instead: `pg_receivewal --synchronous` through its own replication slot into a
drill-owned directory, which holds every flushed record and leaves the stack as it was.
The base backup is `pg_basebackup`. The chosen point is a named restore point created
while the drill holds a SHARE lock on the writes table, so the rows committed before it
are exactly the rows the drill reads in that same transaction: the restored instance
must hold those and no others. RTO is the restore (start of the instance to promoted and
answering); RPO is how much earlier than the point the newest restored acknowledged
write was.
"""

from __future__ import annotations

import contextlib
import signal
import time

import psycopg

from datakit.drills import checker
from datakit.drills import postgres_ops as po
from datakit.drills.context import DrillContext
from datakit.drills.result import DrillResult, measure
from datakit.drills.targets import SCHEMA, PostgresTarget
from datakit.drills.waiting import wait
from datakit.drills.writer import Recorder, Writer
from datakit.nodes.postgres_conf import pgpass_line
from datakit.nodes.scratch import LocalScratch

NAME = "backup-restore"
SLOT = "datakit_drill_archive"


def applies(outputs: dict) -> str | None:
    return None if po.nodes(outputs) else "the stack has no PostgreSQL"


def _conn_args(node: dict, outputs: dict) -> list[str]:
    user = outputs["endpoints"]["postgres"].get("replication_user", "replicator")
    return ["-h", node["host"], "-p", str(node["port"]), "-U", user, "-w"]


def _restore_point(primary: dict, outputs: dict, run: str, name: str) -> set[int]:
    db = outputs["endpoints"]["postgres"]["database"]
    with po.connect(primary, outputs, dbname=db) as conn, conn.transaction():
        conn.execute(f"lock table {SCHEMA}.writes in share mode")
        conn.execute("select pg_create_restore_point(%s)", [name])
        rows = conn.execute(f"select id from {SCHEMA}.writes where run = %s", [run])
        return {r[0] for r in rows.fetchall()}


def run(ctx: DrillContext) -> DrillResult:
    out = ctx.outputs
    result = DrillResult(NAME, ctx.stack, durable=ctx.durable)
    primary, _ = po.roles(out)
    version = int(po.one(primary, out, "show server_version_num")) // 10000
    secrets = out["secrets"]["postgres"]
    scratch = LocalScratch(ctx.work_dir / f"{ctx.stack}-{ctx.run_id}")
    env = {"PGPASSFILE": str(scratch.write(scratch.root / "pgpass", pgpass_line(
        out["endpoints"]["postgres"].get("replication_user", "replicator"),
        secrets["replication"])))}
    archive, base = scratch.dir("archive"), scratch.dir("base")
    target = PostgresTarget(out, ctx.run_id)
    rec = Recorder()
    writer = Writer(target, rec)
    point = f"drill-{ctx.run_id}"
    receiver = None
    try:
        tool = lambda name: scratch.tool(version, name)  # noqa: E731
        scratch.run([tool("pg_receivewal"), *_conn_args(primary, out), "--create-slot",
                     "-S", SLOT, "--if-not-exists"], what="pg_receivewal --create-slot", env=env)
        receiver = scratch.spawn([tool("pg_receivewal"), *_conn_args(primary, out), "-D",
                                  str(archive), "-S", SLOT, "--synchronous", "-n"],
                                 log=scratch.root / "receivewal.log", env=env)
        writer.start()
        rec.event("backup start")
        scratch.run([tool("pg_basebackup"), *_conn_args(primary, out), "-D", str(base),
                     "-X", "stream", "-c", "fast"], what="pg_basebackup", env=env)
        rec.event("backup done")
        time.sleep(ctx.warmup_s)
        expected = _restore_point(primary, out, ctx.run_id, point)
        t_point = rec.event("restore point")
        time.sleep(max(ctx.warmup_s, 0.5))  # rows after the point must not come back
        segment = po.one(primary, out, "select pg_walfile_name(pg_switch_wal())")
        wait(lambda: (archive / segment).exists(), what=f"WAL segment {segment} archived",
             timeout=60)
        rec.event("archived")
    finally:
        writer.stop()
        if receiver:
            scratch.stop(receiver, sig=signal.SIGINT)
        with contextlib.suppress(psycopg.Error):
            po.one(primary, out, "select pg_drop_replication_slot(slot_name) from "
                   "pg_replication_slots where slot_name = %s", [SLOT])
        if rec.at("archived") is None:
            scratch.cleanup(keep=False)
    try:
        port = scratch.free_port()
        overrides = {
            "port": port, "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(scratch.root), "cluster_name": "drill-restore",
            "restore_command": f"cp {archive}/%f %p", "recovery_target_name": point,
            "recovery_target_action": "promote", "synchronous_standby_names": "",
            "primary_conninfo": "", "primary_slot_name": "", "archive_mode": "off",
        }
        auto = base / "postgresql.auto.conf"
        text = auto.read_text() if auto.exists() else ""
        text += "".join(f"{k} = '{v}'\n" for k, v in overrides.items())
        scratch.write(auto, text)
        scratch.write(base / "recovery.signal", "")
        (base / "standby.signal").unlink(missing_ok=True)
        t_start = rec.event("restore start")
        pid = scratch.spawn([tool("postgres"), "-D", str(base)], log=scratch.root / "restore.log",
                            cwd=base)
        restored_node = {"name": "restore", "host": "127.0.0.1", "port": port}

        def promoted():
            if not scratch.alive(pid):
                raise RuntimeError(f"restored instance exited: see {scratch.root}/restore.log")
            return po.one(restored_node, out, "select not pg_is_in_recovery()")

        wait(promoted, what="restored instance promoted at the restore point", timeout=300)
        t_done = rec.event("restored")
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres",
                             password=secrets["superuser"],
                             dbname=out["endpoints"]["postgres"]["database"]) as conn:
            restored = {r[0] for r in conn.execute(
                f"select id from {SCHEMA}.writes where run = %s", [ctx.run_id]).fetchall()}
    finally:
        scratch.cleanup(keep=False)
    acked_early = checker.acked_before(rec, t_point)
    result.check = checker.check_restore(rec, expected, restored)
    measure(result, rec, "restore start")
    result.rto_s = round(t_done - t_start, 3)
    newest = max((o.end for o in rec.ops if o.status == "ok" and o.id in restored),
                 default=None)
    result.rpo_s = None if newest is None else round(max(0.0, t_point - newest), 3)
    result.extra.update(
        restore_point=point, rows_at_point=len(expected), rows_restored=len(restored),
        acked_before_point_missing_from_point=len(acked_early - expected),
        archive="pg_receivewal --synchronous (streaming archive, drill-owned slot)",
        backup_s=round((rec.at("backup done") or 0) - (rec.at("backup start") or 0), 3))
    if result.check.lost or result.check.unexpected or acked_early - expected:
        result.reason = (f"restore differs: {len(result.check.lost)} missing, "
                         f"{len(result.check.unexpected)} unexpected")
    return result
