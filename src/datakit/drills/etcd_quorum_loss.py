"""etcd-quorum-loss: two of three members of Patroni's store lost (SIGKILL), so etcd has no
quorum and Patroni's leader cannot renew its key. What the primary does then is what this
drill measures, under a writer on the stack's read-write DSN, for longer than the leader
key lives (ttl plus a few loops):

- with `failsafe_mode` on, the leader asks every member over REST (`POST /failsafe`) and,
  when all answer, stays primary: the writes go on;
- without it (or when a member does not answer), it demotes itself once it cannot renew
  the key, and no node takes writes until etcd is back.

`extra` says which (`primary_during_outage`), when the primary went read-only if it did,
and how many writes were acknowledged during the outage. Then the drill starts the members
again, as an operator would, and waits for etcd and Patroni to be whole. The run fails on
a lost write (durable mode) only: either behaviour is Patroni doing what it is configured
to; a stack that expects failsafe can read `primary_during_outage`.
"""

from __future__ import annotations

import time

from datakit.drills import patroni_ops as pat
from datakit.drills import postgres_ops as po
from datakit.drills.patroni_drill import PatroniDrill
from datakit.stack.schema import StackOutputs

MARGIN_S = 5.0  # watched past the leader key's expiry and one retry_timeout


class EtcdQuorumLoss(PatroniDrill):
    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        if len(outputs.of("etcd")) != 3:
            return "needs exactly three etcd members (two of them are taken away)"
        return PatroniDrill.applies(outputs)

    def setup(self):
        target = super().setup()
        cfg = pat.config(self.out)
        self.window = self.ttl + int(cfg.get("retry_timeout") or 10) + \
            2 * int(cfg.get("loop_wait") or 10) + MARGIN_S
        members = self.out.of("etcd")
        leader = pat.etcd_leader(self.out)
        # The etcd leader and one other: the survivor is a follower with no quorum.
        self.victims = sorted(members, key=lambda n: n.name != leader)[:2]
        self.result.extra.update(failsafe_mode=bool(cfg.get("failsafe_mode")),
                                 etcd_victims=[n.name for n in self.victims],
                                 watched_s=self.window)
        return target

    def fault(self) -> None:
        self.say(f"killing etcd members {', '.join(n.name for n in self.victims)} (SIGKILL)")
        for node in self.victims:
            self.control(node).kill()
        self.event("kill")

    def watch(self) -> None:
        t_kill = self.rec.at("kill") or 0.0
        demoted_at = None
        end = time.monotonic() + self.window
        while time.monotonic() < end:
            if demoted_at is None and self._read_only():
                demoted_at = self.event("demoted") - t_kill
                self.say(f"{self.leader.name} went read-only {demoted_at:.1f} s after the kill")
            time.sleep(0.5)
        acked = [o for o in self.rec.ops if o.status == "ok" and o.start >= t_kill]
        self.result.extra.update(
            primary_during_outage="demoted" if demoted_at is not None else "stayed read-write",
            demoted_after_s=None if demoted_at is None else round(demoted_at, 3),
            acked_during_outage=len(acked))
        self.say("starting the etcd members again")
        for node in self.victims:
            self.control(node).start()
        pat.wait_etcd(self.out)
        self.event("etcd back")
        self.first_write_after("etcd back")
        self.whole_again()

    def _read_only(self) -> bool:
        try:
            return bool(po.one(self.leader, self.out, "select pg_is_in_recovery()"))
        except Exception:  # noqa: BLE001 - a primary that does not answer takes no writes
            return True
