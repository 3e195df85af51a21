"""postgres-failover: the leader node lost. Patroni and the postmaster of Patroni's leader
are SIGKILLed together, under a writer on the stack's own read-write DSN; the drill only
watches. Patroni's leader key expires after ttl, a replica that is a quorum standby takes
it and is promoted, and the client finds the new primary through the multi-host DSN
(`target_session_attrs=read-write`). RTO: the kill to the first acknowledged write.

Then, as an operator restarts a lost machine, the drill starts the old node's Patroni
again; Patroni rejoins it as a replica (pg_rewind), and the run ends when the cluster is
whole: one leader, every member streaming, the quorum listed.

The non-durable mode: the quorum off and the leader alone for a moment before the kill
(patroni_drill.py); the checker must count every write acknowledged then as lost.
"""

from __future__ import annotations

from datakit.drills.patroni_drill import PatroniDrill


class PostgresFailover(PatroniDrill):
    def fault(self) -> None:
        self.say(f"killing leader node {self.leader.name} (Patroni and postmaster, SIGKILL)")
        with self.leader_alone():
            self.control(self.leader).kill()
        self.event("kill")  # both are dead now

    def watch(self) -> None:
        self.first_write_after("kill")
        new = self.new_leader(other_than=self.leader.name)
        self.event("promoted")
        self.say(f"{new} leads; starting {self.leader.name} again")
        self.control(self.leader).start()  # Patroni rejoins it (pg_rewind)
        self.event("restarted")
        self.whole_again()
