"""replica-slow-link: 50 ms added one way on a synchronous replica's link, then on both,
under a writer on the stack's read-write DSN; the commit latency before, during and after.

A commit waits for a quorum standby (`ANY 1 (...)`): with one replica slow the other one
answers and the quorum hides the slow link; with both slow every commit waits the extra
50 ms. The delay is on the primary's packets to each replica (the WAL stream; nodes/faults'
delay process), one way. Nothing is cut, so nothing may be lost and there is no RTO: the
run fails when one slow replica shows in the commit latency, or two do not.
"""

from __future__ import annotations

import contextlib
import statistics
import time

from datakit.drills import partitions
from datakit.drills.patroni_drill import PatroniDrill
from datakit.nodes.faults import Faults
from datakit.stack.schema import StackOutputs

DELAY_MS = 50.0
PHASE_S = 6.0
HIDDEN_MS = DELAY_MS / 2  # one slow replica may add less than this to the median commit


class ReplicaSlowLink(PatroniDrill):
    fault_event = "slow one"
    measures_rto = False

    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        if len(outputs.of("postgres")) < 3:
            return "needs a leader and two replicas (one slowed, one to hide it)"
        return PatroniDrill.applies(outputs) or partitions.applies(outputs, ("postgres",))

    @contextlib.contextmanager
    def prepared(self):
        with super().prepared(), Faults(self.ctx.stack) as self.faults:
            yield

    def fault(self) -> None:
        time.sleep(PHASE_S)  # the "before" phase (after the harness's warm-up)
        first, second = self.replicas[:2]
        self.say(f"adding {DELAY_MS:g} ms on {self.leader.name} -> {first.name}")
        self.faults.slow(self.leader.host, first.host, DELAY_MS)
        self.event("slow one")
        time.sleep(PHASE_S)
        self.say(f"adding {DELAY_MS:g} ms on {self.leader.name} -> {second.name} too")
        self.faults.slow(self.leader.host, second.host, DELAY_MS)
        self.event("slow two")
        time.sleep(PHASE_S)
        self.faults.heal()
        self.event("healed")

    def watch(self) -> None:
        time.sleep(PHASE_S)  # the "after" phase
        self.whole_again()

    def measure(self) -> None:
        super().measure()
        self.result.rto_s = None  # nothing is down: there is nothing to recover from
        at = self.rec.at
        bounds = {"before": (at("slow one") - PHASE_S, at("slow one")),
                  "one slow": (at("slow one"), at("slow two")),
                  "two slow": (at("slow two"), at("healed")),
                  "after": (at("healed"), at("healed") + PHASE_S)}
        with self.rec.lock:
            ops = [o for o in self.rec.ops if o.status == "ok"]
        self.result.extra["commit_ms"] = {
            phase: _figures([(o.end - o.start) * 1000 for o in ops if t0 <= o.start < t1])
            for phase, (t0, t1) in bounds.items()}

    def verdict(self) -> str | None:
        if reason := super().verdict():
            return reason
        ms = self.result.extra["commit_ms"]
        if not self.ctx.durable:
            return None  # without the quorum a commit waits for no replica at all
        before, one, two = (ms[p]["p50"] for p in ("before", "one slow", "two slow"))
        if None in (before, one, two):
            return "too few writes in a phase to judge"
        if one - before >= HIDDEN_MS:
            return (f"one slow replica showed: median commit {before} -> {one} ms; the "
                    f"quorum should have answered without it")
        if two - before < DELAY_MS * 0.8:
            return (f"two slow replicas stayed hidden: median commit {before} -> {two} ms "
                    f"with {DELAY_MS:g} ms on both links")
        return None


def _figures(ms: list[float]) -> dict:
    if len(ms) < 5:
        return {"writes": len(ms), "p50": None, "p95": None}
    ms.sort()
    return {"writes": len(ms), "p50": round(statistics.median(ms), 1),
            "p95": round(ms[int(len(ms) * 0.95) - 1], 1)}
