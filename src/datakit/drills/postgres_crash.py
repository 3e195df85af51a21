"""postgres-crash: PostgreSQL alone crashes on the leader. Its postmaster is SIGKILLed;
Patroni keeps running and decides by itself: within `primary_start_timeout` it restarts
the postmaster in place (crash recovery, the same leader), with 0 it gives the leader key
up at once and a quorum standby is promoted. The drill only watches and reports which it
was (`outcome`: "restarted in place" or "failed over"); a node that failed over is
rejoined by its own Patroni (pg_rewind). RTO: the crash to the first acknowledged write.

Durability under `synchronous_mode_strict`: no write may be acknowledged without a quorum
standby while Patroni restarts or fails over; the checker reads every acknowledged write
back. The non-durable mode is the failover drill's (patroni_drill.py).
"""

from __future__ import annotations

from datakit.drills.patroni_drill import PatroniDrill


class PostgresCrash(PatroniDrill):
    fault_event = "crash"

    def fault(self) -> None:
        ctl = self.control(self.leader)
        self.postmaster = ctl.postmaster_pid()
        self.say(f"killing the postmaster of leader {self.leader.name} (SIGKILL); "
                 "Patroni stays")
        with self.leader_alone():
            ctl.kill_postmaster()
        self.event("crash")

    def watch(self) -> None:
        self.first_write_after("crash")
        now = self.new_leader()
        ctl = self.control(self.leader)
        if now == self.leader.name:
            outcome = "restarted in place"
            self.result.extra["new_postmaster"] = ctl.postmaster_pid() != self.postmaster
        else:
            outcome = "failed over"
        self.event(outcome)
        self.say(f"Patroni {outcome} ({now} leads)")
        self.result.extra["outcome"] = outcome
        self.whole_again()  # a node that failed over is rejoined by its own Patroni
