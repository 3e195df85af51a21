"""kafka-broker-loss: SIGKILL one broker (not the active controller) under an `acks=all`
idempotent producer, bring it back and wait for every partition's ISR to be full; then
the same with the active KRaft controller. A fresh consumer reads the drill's messages
back afterwards: every acknowledged id must be there (no gap).

A hard-killed broker keeps its partitions' leadership until the controller fences it
(`broker.session.timeout.ms`, 4 s in the local stack); the producer's retries cover the
window, so writes to those partitions stall rather than fail. RTO here is the end of the
stall: the acknowledgement of the last write sent between the kill and the restart that
waited more than 1 s (or, if none waited, the first write after the kill). Stalls while
the restarted broker takes back its preferred leaderships are not counted.
"""

from __future__ import annotations

import time

from datakit.drills import kafka_ops as ko
from datakit.drills.harness import Drill, Target
from datakit.stack.schema import Node, StackOutputs


class KafkaBrokerLoss(Drill):
    fault_event = "kill broker"
    writer_class = ko.ProducerWriter

    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        enough = len(ko.brokers(outputs)) >= 3
        return None if enough else "needs 3 brokers (RF 3, min.insync.replicas 2)"

    def setup(self) -> Target:
        ko.ensure_topic(self.out)
        ko.wait_full_isr(self.out)
        return ko.DrillTopic(self.out, self.ctx.run_id)

    def fault(self) -> None:
        """Two faults, each watched until every ISR is full: a broker, then the
        controller."""
        leader = ko.active_controller(self.out)
        broker = next(n for n in ko.brokers(self.out) if n.name != leader.name)
        self.phases = [self.lose(broker, "broker")]
        self.phases.append(self.lose(ko.active_controller(self.out), "controller"))

    def watch(self) -> None:
        """After both phases: every ISR still full (the restarted controller may have
        moved leaderships back meanwhile), then the stack is whole again ("redundant":
        the alerts are settled from there, see harness.py)."""
        ko.wait_full_isr(self.out)
        self.event("redundant")

    def lose(self, node: Node, label: str) -> dict:
        ctl = self.control(node)
        self.say(f"killing Kafka {label} {node.name} (SIGKILL)")
        ctl.kill()
        t_kill = self.event(f"kill {label}")
        time.sleep(max(self.ctx.warmup_s, 1.0))
        t_restart = self.event(f"restarting {label}")
        ctl.start()
        self.event(f"restarted {label}")
        ko.wait_full_isr(self.out)
        t_red = self.event(f"redundant {label}")
        time.sleep(2.0)  # let writes stalled on fenced leaders finish
        end = ko.stall_end(self.rec, t_kill, t_restart)
        return {"node": node.name, "rto_s": None if end is None else round(end - t_kill, 3),
                "rto_redundancy_s": round(t_red - t_kill, 3)}

    def measure(self) -> None:
        super().measure()
        self.result.extra["phases"] = self.phases
        rtos = [p["rto_s"] for p in self.phases if p["rto_s"] is not None]
        self.result.rto_s = max(rtos) if rtos else None
        self.result.rto_redundancy_s = max(p["rto_redundancy_s"] for p in self.phases)

    def verdict(self) -> str | None:
        if reason := super().verdict():
            return reason
        lost = self.result.check.lost
        return f"{len(lost)} acknowledged messages lost" if lost else None
