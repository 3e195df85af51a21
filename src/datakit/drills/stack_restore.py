"""stack-restore: the DR rehearsal. Back up a live stack's PostgreSQL under a writer,
destroy the whole stack (`datakit down`), create it again (`datakit up`), restore the
data into the new primary, check it and measure.

Backup: the streaming archive and base backup of backup.py, as backup-restore takes them,
and a logical dump (`pg_dump -Fc`) of the database at an exported snapshot: the marker
rows are read in that same REPEATABLE READ transaction, so they are exactly the rows the
dump holds (the backup point). All of it is kept in the drill's scratch directory, outside
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

import time

from datakit import status
from datakit.drills import postgres_ops as po
from datakit.drills.backup import RestoreDrill
from datakit.drills.harness import Target
from datakit.drills.targets import SCHEMA, PostgresTarget
from datakit.errors import DatakitError
from datakit.stack import lifecycle as stacks
from datakit.stack import outputs as stack_outputs
from datakit.stack.schema import StackOutputs


class StackRestore(RestoreDrill):
    fault_event = "destroy"
    recreates_stack = True
    slot = "datakit_drill_stack_archive"

    def setup(self) -> Target:
        if not self.out.disposable:
            raise DatakitError(
                f"stack {self.ctx.stack!r} is not disposable: stack-restore destroys and "
                "recreates it; run it on a disposable stack (datakit:disposable: \"true\")")
        target = super().setup()
        self.dump = self.backup.scratch.root / "datakit.dump"
        return target

    def fault(self) -> None:
        """The backup under writes, writes after its point (lost by design), then the
        whole stack destroyed."""
        with self.backup.streaming_archive():
            self.backup.base_backup()
            time.sleep(self.ctx.warmup_s)
            self.dump_at_point()
            self.backup.archived()
        self.figures = {**self.backup.figures(), "dump_bytes": self.dump.stat().st_size,
                        "dump_s": round(self.rec.at("dump done") - self.t_point, 3)}
        time.sleep(max(self.ctx.tail_s, 0.5))
        self.stop_writes()
        self.say(f"destroying stack {self.ctx.stack}")
        self.event("destroy")
        stacks.down(self.ctx.stack)
        self.event("destroyed")

    def dump_at_point(self) -> None:
        """`pg_dump` at an exported snapshot; the rows of this run read in the same
        transaction are the ones the dump holds."""
        primary, db = self.backup.primary, self.out.endpoints.postgres.database
        with po.connect(primary, self.out, dbname=db) as conn:
            conn.execute("begin isolation level repeatable read")
            # Marked before the snapshot is taken (at the transaction's first query): a
            # write acknowledged before the mark was visible before it, so it must be in.
            self.t_point = self.event("backup point")
            snapshot = conn.execute("select pg_export_snapshot()").fetchone()[0]
            self.expected = {r[0] for r in conn.execute(
                f"select id from {SCHEMA}.writes where run = %s", [self.ctx.run_id])}
            self.backup.scratch.run(
                [self.backup.tool("pg_dump"), *self.backup.superuser_args(primary, self.out),
                 "-Fc", "-f", str(self.dump), f"--snapshot={snapshot}"],
                what="pg_dump at the backup point", env=self.backup.env)
            conn.execute("commit")
        self.event("dump done")

    def watch(self) -> None:
        self.say(f"recreating stack {self.ctx.stack}")
        stacks.up(self.ctx.stack)
        fresh = stack_outputs.of_stack(self.ctx.stack).with_passwords()
        self.event("recreated")
        self.say("restoring PostgreSQL from the dump at the backup point")
        self.restored_to = self.restore(fresh)
        self.event("restored")
        after = PostgresTarget(fresh, f"{self.ctx.run_id}-after")
        after.write(1)  # the restored stack takes writes
        after.reset()
        self.event("writable")
        self.restored = PostgresTarget(fresh, self.ctx.run_id).read_ids()
        self.down = [r["name"] for r in status.live(fresh) if r["health"] != "up"]
        self.event("redundant")

    def restore(self, fresh: StackOutputs) -> dict:
        """`pg_restore` of the dump into the recreated stack's primary (its own, new
        passwords); until its standbys stream again."""
        primary, others = po.roles(fresh)
        self.backup.scratch.run(
            [self.backup.tool("pg_restore"), *self.backup.superuser_args(primary, fresh),
             "--clean", "--if-exists", "--exit-on-error", "--single-transaction",
             str(self.dump)], what="pg_restore into the new primary",
            env=self.backup.pgpass(fresh))
        return {"primary": primary.name,
                "standbys": po.wait_redundant(primary, fresh, others, timeout=120)}

    def measure(self) -> None:
        super().measure()
        rec, result, at = self.rec, self.result, self.rec.at
        t_destroy = at("destroy")
        result.rto_s = round(at("writable") - t_destroy, 3)
        result.rto_redundancy_s = round(at("redundant") - t_destroy, 3)
        newest = self.newest_restored()
        result.rpo_s = None if newest is None else round(max(0.0, t_destroy - newest), 3)
        result.error_window_s, result.client_errors = None, {}
        result.extra.update(
            self.figures, restore="logical: pg_dump -Fc at an exported snapshot, pg_restore "
            "--clean", rows_at_point=len(self.expected), rows_restored=len(self.restored),
            acked_after_point_not_restored=len(rec.ids("ok") - self.expected),
            rpo_to_point_s=None if newest is None else round(max(0.0, self.t_point - newest),
                                                             3),
            destroy_s=round(at("destroyed") - t_destroy, 3),
            up_s=round(at("recreated") - at("destroyed"), 3),
            restore_s=round(at("restored") - at("recreated"), 3),
            acked_before_point_missing_from_point=len(self.acked_early_missing()),
            nodes_down_after=self.down, **self.restored_to)

    def verdict(self) -> str | None:
        check = self.result.check
        if check.lost or check.unexpected or self.acked_early_missing() or self.down:
            return (f"restore differs: {len(check.lost)} missing, "
                    f"{len(check.unexpected)} unexpected, nodes down: {self.down}")
        # The base rule after: its loss check is part of the one above (named more
        # precisely there); what it adds is the alerts still firing.
        return super().verdict()
