"""postgres-switchover: the planned version. Writes are fenced (the writer pauses with
nothing in flight and drops its connection), the primary is stopped cleanly (a fast
shutdown sends all WAL to the standbys), the most caught-up standby is promoted, the
others re-pointed, the fence lifted, and the old primary rejoins as a standby.

No write fails or is lost; the price is the fenced pause, reported as the RTO (fence to
first write). Without the fence, the in-flight write on the stopping primary would end
in an error whose outcome is unknown: that is the failover drill.
"""

from __future__ import annotations

from datakit.drills import postgres_ops as po
from datakit.drills.postgres_handover import PostgresHandover


class PostgresSwitchover(PostgresHandover):
    fault_event = "fence"
    final: int  # the old primary's last WAL position, read behind the fence

    def fault(self) -> None:
        self.event("fence")
        self.writer.pause()
        self.say(f"stopping primary {self.old.name} cleanly")
        self.final = po.lsn(po.one(self.old, self.out, "select pg_current_wal_lsn()::text"))
        self.control(self.old).stop()
        self.event("stopped")

    def watch(self) -> None:
        lsns = {r.name: po.received_lsn(r, self.out) for r in self.replicas}
        best = self.take_over(lsns)
        if lsns[best.name] < self.final:
            self.result.notes.append(f"{best.name} had received {lsns[best.name]:X} < "
                                     f"{self.final:X} at the old primary's stop")
        self.writer.resume()
        self.event("unfenced")
        self.rejoin_after("unfenced")

    def verdict(self) -> str | None:
        failed = self.result.check.failed + self.result.check.unknown
        if self.result.check.lost or failed:
            return f"planned switchover: {len(self.result.check.lost)} lost, {failed} failed"
        return None
