"""postgres-switchover: the planned version, through Patroni's REST API. `POST /switchover`
asks the leader to hand over to a quorum standby Patroni picks: it stops PostgreSQL cleanly
(a fast shutdown sends all WAL to the standbys), the candidate is promoted, the old leader
follows it. The writer is not fenced: a write in flight at the shutdown is an unknown
outcome and the ones refused meanwhile are failures, as a real client sees them.

RTO: the request to the first acknowledged write on the new leader, i.e. the first
acknowledged write after the old one stopped taking writes (a write acknowledged by the
old leader before its shutdown is no recovery). Nothing acknowledged may be lost.
"""

from __future__ import annotations

from datakit.drills import patroni_ops as pat
from datakit.drills.patroni_drill import PatroniDrill
from datakit.nodes import patroni_cluster


class PostgresSwitchover(PatroniDrill):
    fault_event = "switchover"

    def fault(self) -> None:
        self.say(f"switchover from {self.leader.name} (POST /switchover)")
        members = pat.members(self.out)
        self.event("switchover")  # the request: RTO counts from here
        done = patroni_cluster.switchover(members, old=self.leader.name,
                                          synchronous_standbys=self.quorum, timeout=120)
        self.event("switched")
        self.result.extra["patroni_took_s"] = done["took_s"]

    def watch(self) -> None:
        self.first_write_after("switched")
        self.whole_again()

    def measure(self) -> None:
        super().measure()
        t0 = self.rec.at("switchover")
        if t0 is None:
            return
        ops = sorted(self.result.ops, key=lambda o: o.start)
        gap = next((o.start for o in ops if o.start >= t0 and o.status != "ok"), None)
        since = gap if gap is not None else (self.rec.at("switched") or t0)
        after = [o.end for o in ops if o.status == "ok" and o.start >= since]
        self.result.rto_s = round(min(after) - t0, 3) if after else None
        self.result.extra["write_gap"] = gap is not None

    def verdict(self) -> str | None:
        if reason := super().verdict():
            return reason
        if self.result.check.lost:
            return f"planned switchover: {len(self.result.check.lost)} acknowledged writes lost"
        return None
