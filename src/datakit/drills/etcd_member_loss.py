"""etcd-member-loss: one member of Patroni's store lost (SIGKILL of etcd's leader, the
member whose loss costs an election), under a writer on the stack's read-write DSN. The
others elect a leader within etcd's election timeout, well inside Patroni's retry_timeout,
so Patroni's leader keeps its key and the writes go on: no write may fail, none be lost,
and Patroni's leader must stay the same. The drill only watches, then starts the member
again (as an operator would) and waits for etcd and Patroni to be whole.

RTO: the kill to the first acknowledged write after it (a few milliseconds when the
writes went on). The run fails when a write failed after the kill or Patroni's leader
changed.
"""

from __future__ import annotations

import time

from datakit.drills import patroni_ops as pat
from datakit.drills.patroni_drill import PatroniDrill
from datakit.drills.waiting import wait
from datakit.stack.schema import StackOutputs

HOLD_S = 5.0  # writes watched after etcd's new election, on top of one Patroni loop


class EtcdMemberLoss(PatroniDrill):
    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        if len(outputs.of("etcd")) < 3:
            return "needs at least three etcd members (one may be lost)"
        return PatroniDrill.applies(outputs)

    def setup(self):
        target = super().setup()
        health = pat.etcd_health(self.out)
        by_name = {n.name: n for n in self.out.of("etcd")}
        self.victim = by_name[health["leader"] or next(iter(by_name))]
        self.rest = [n for n in by_name.values() if n.name != self.victim.name]
        self.result.extra.update(etcd_victim=self.victim.name, etcd_leader=health["leader"])
        return target

    def fault(self) -> None:
        self.say(f"killing etcd member {self.victim.name} (SIGKILL)")
        self.control(self.victim).kill()
        self.event("kill")

    def watch(self) -> None:
        self.first_write_after("kill")
        leader = wait(lambda: pat.etcd_leader(self.out, self.rest), what="etcd to elect a "
                      f"leader among {[n.name for n in self.rest]}", timeout=60)
        self.event("etcd leader")
        self.result.extra["etcd_new_leader"] = leader
        time.sleep(HOLD_S + int(pat.config(self.out).get("loop_wait") or 1))
        self.result.extra["patroni_leader_during"] = pat.leader(self.out)
        self.say(f"starting {self.victim.name} again")
        self.control(self.victim).start()
        pat.wait_etcd(self.out)
        self.event("restarted")
        self.whole_again()

    def verdict(self) -> str | None:
        if reason := super().verdict():
            return reason
        t_kill = self.rec.at("kill") or 0.0
        failed = [o for o in self.result.ops if o.status != "ok" and o.end >= t_kill]
        if failed:
            return f"writes did not go on: {len(failed)} failed after the kill"
        if self.result.extra.get("patroni_leader_during") != self.leader.name:
            return (f"Patroni's leader changed from {self.leader.name} to "
                    f"{self.result.extra.get('patroni_leader_during')}")
        return None
