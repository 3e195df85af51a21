"""kafka-partition-leader: the broker leading a partition of the drill's topic cut from
every other broker and controller, both ways, while the producer still reaches it
(nodes/faults). The drill only cuts and watches.

Cut off, the broker can neither heartbeat to the KRaft quorum nor hear its followers: the
controllers fence it after broker.session.timeout.ms and move its leaderships to in-sync
followers. It cannot shrink an ISR by itself either (only the controller writes ISR
changes), so with `acks=all` and `min.insync.replicas` 2 it acknowledges nothing the
followers do not have: its partitions' writes stall until the producer finds the new
leaders. RTO is the end of that stall (kafka_ops.stall_end). Then the partition heals and
the broker catches up into every ISR.

Besides the set check (0 acknowledged records lost), each partition is read back in offset
order: no record may appear twice, and a partition's ids must rise as they were produced
(one idempotent producer).
"""

from __future__ import annotations

import contextlib
import time

from datakit.drills import checker, partitions
from datakit.drills import kafka_ops as ko
from datakit.drills.checker import SetCheck
from datakit.drills.harness import Drill, Target
from datakit.drills.waiting import wait
from datakit.nodes.faults import Faults
from datakit.stack.schema import StackOutputs

RECOVERY_TIMEOUT_S = 60.0
PARTITION = 0  # the drill topic's partition whose leader is cut off


class KafkaPartitionLeader(Drill):
    fault_event = "partition"
    writer_class = ko.ProducerWriter

    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        if len(ko.brokers(outputs)) < 3:
            return "needs 3 brokers (RF 3, min.insync.replicas 2)"
        return partitions.applies(outputs, ("kafka",))

    def setup(self) -> Target:
        ko.ensure_topic(self.out)
        ko.wait_full_isr(self.out)
        self.cut = partitions.leader(self.out, partition=PARTITION)
        self.leader = self.cut.node
        self.result.extra["old_leader"] = self.leader.name
        self.topic = ko.DrillTopic(self.out, self.ctx.run_id)
        return self.topic

    @contextlib.contextmanager
    def prepared(self):
        # The partition's owner: it heals on any exit (an error, Ctrl-C, SIGTERM) as well.
        with Faults(self.ctx.stack) as self.faults:
            yield

    def fault(self) -> None:
        self.say(self.cut.describe())
        self.faults.partition({self.leader.host}, self.cut.peers)
        self.event("partition")

    def watch(self) -> None:
        try:
            def moved() -> str | None:
                now = ko.leaders(self.out, avoid=self.leader).get(PARTITION)
                return now if now not in (None, self.leader.name) else None

            new = wait(moved, what=f"the controllers to move {ko.TOPIC}/{PARTITION}'s "
                       f"leadership off {self.leader.name}", timeout=RECOVERY_TIMEOUT_S)
            self.event("leader moved")
            self.result.extra["new_leader"] = new
            time.sleep(3.0)  # the producer finds the new leaders; stalled writes finish
        finally:
            self.faults.heal()
            self.event("healed")
        ko.wait_full_isr(self.out, avoid=self.leader)  # the healed one's view is stale
        self.event("redundant")

    def check(self) -> SetCheck:
        """One read of the topic: the set check, and each partition's order kept for
        `measure`."""
        self.order = self.topic.read_partitions()
        return checker.check(self.rec, {i for ids in self.order.values() for i in ids})

    def measure(self) -> None:
        super().measure()
        t_fault = self.rec.at("partition")
        end = ko.stall_end(self.rec, t_fault or 0.0, self.rec.at("healed") or 0.0)
        self.result.rto_s = None if end is None or t_fault is None else round(end - t_fault, 3)
        order = self.order
        self.result.extra["duplicated"] = sorted(
            {i for ids in order.values() for i in ids if ids.count(i) > 1})
        self.result.extra["reordered_partitions"] = sorted(
            p for p, ids in order.items() if ids != sorted(ids))

    def verdict(self) -> str | None:
        if reason := super().verdict():
            return reason
        lost = self.result.check.lost
        if lost:
            return f"{len(lost)} acknowledged messages lost"
        if dup := self.result.extra["duplicated"]:
            return f"{len(dup)} records written twice (ids {dup[:5]})"
        if bad := self.result.extra["reordered_partitions"]:
            return f"records out of order in partitions {bad}"
        return None
