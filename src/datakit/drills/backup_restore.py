"""backup-restore: continuous WAL archiving plus a base backup (backup.py), then a
point-in-time restore into a new instance on a free port, compared with what was
committed up to that point.

The chosen point is a named restore point created while the drill holds a SHARE lock on
the writes table, so the rows committed before it are exactly the rows the drill reads in
that same transaction: the restored instance must hold those and no others. RTO is the
restore (start of the instance to promoted and answering); RPO is how much earlier than
the point the newest restored acknowledged write was.
"""

from __future__ import annotations

import time

from datakit.drills import postgres_ops as po
from datakit.drills.backup import RestoreDrill
from datakit.drills.targets import SCHEMA
from datakit.drills.waiting import wait


class BackupRestore(RestoreDrill):
    fault_event = "restore start"
    slot = "datakit_drill_archive"

    @property
    def point(self) -> str:
        return f"drill-{self.ctx.run_id}"

    def fault(self) -> None:
        """The backup and the point to restore to, under writes; then the writes stop."""
        with self.backup.streaming_archive():
            self.backup.base_backup()
            time.sleep(self.ctx.warmup_s)
            self.expected = self.restore_point()
            self.t_point = self.event("restore point")
            time.sleep(max(self.ctx.warmup_s, 0.5))  # rows after the point must not come back
            self.backup.archived()
            self.stop_writes()

    def restore_point(self) -> set[int]:
        """The named point, made under a SHARE lock: the rows read here are exactly the
        rows committed before it."""
        db = self.out.endpoints.postgres.database
        with po.connect(self.backup.primary, self.out, dbname=db) as conn, conn.transaction():
            conn.execute(f"lock table {SCHEMA}.writes in share mode")
            conn.execute("select pg_create_restore_point(%s)", [self.point])
            rows = conn.execute(f"select id from {SCHEMA}.writes where run = %s",
                                [self.ctx.run_id])
            return {r[0] for r in rows.fetchall()}

    def watch(self) -> None:
        restored = self.backup.start_restored(self.point)
        wait(lambda: self.backup.promoted(restored),
             what="restored instance promoted at the restore point", timeout=300)
        self.event("restored")
        db = self.out.endpoints.postgres.database
        with po.connect(restored, self.out, dbname=db) as conn:
            self.restored = {r[0] for r in conn.execute(
                f"select id from {SCHEMA}.writes where run = %s", [self.ctx.run_id])}

    def measure(self) -> None:
        super().measure()
        rec, result = self.rec, self.result
        result.rto_s = round(rec.at("restored") - rec.at("restore start"), 3)
        newest = self.newest_restored()
        result.rpo_s = None if newest is None else round(max(0.0, self.t_point - newest), 3)
        result.extra.update(
            restore_point=self.point, rows_at_point=len(self.expected),
            rows_restored=len(self.restored),
            acked_before_point_missing_from_point=len(self.acked_early_missing()),
            archive="pg_receivewal --synchronous (streaming archive, drill-owned slot)",
            backup_s=self.backup.base_backup_s())

    def verdict(self) -> str | None:
        check = self.result.check
        if check.lost or check.unexpected or self.acked_early_missing():
            return (f"restore differs: {len(check.lost)} missing, "
                    f"{len(check.unexpected)} unexpected")
        # The base rule after: its loss check is part of the one above (named more
        # precisely there); what it adds is the alerts still firing.
        return super().verdict()
