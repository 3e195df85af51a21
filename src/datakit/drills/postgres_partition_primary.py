"""postgres-partition-primary: Patroni's leader cut from its replicas and from etcd, both
ways, while clients still reach it (nodes/faults; each local node sends from its own
loopback address, nodes/own_address.py). The drill only cuts and watches.

The leader's Patroni can renew the leader key no more and, under failsafe_mode, reaches no
member that would vouch for it, so it demotes its PostgreSQL (offline: without etcd,
Patroni stops it): the isolated window is the partition to the old primary taking no more
writes. The others see the key expire after
ttl and promote a quorum standby; RTO is the partition to the first acknowledged write.
With the synchronous quorum the isolated primary acknowledges nothing (no standby hears
it), so nothing is lost. Then the partition heals, and Patroni rejoins the old leader as a
replica (pg_rewind) until the cluster is whole.

The non-durable mode turns the quorum off: the isolated primary then acknowledges writes
alone until it demotes, and the checker must count each of them as lost.
"""

from __future__ import annotations

import contextlib

import psycopg

from datakit.drills import partitions
from datakit.drills import postgres_ops as po
from datakit.drills.patroni_drill import RECOVERY_TIMEOUT_S, PatroniDrill
from datakit.drills.waiting import wait
from datakit.nodes.faults import Faults
from datakit.nodes.postgres_client import WrongPassword
from datakit.stack.schema import StackOutputs


class PostgresPartitionPrimary(PatroniDrill):
    fault_event = "partition"

    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        reason = PatroniDrill.applies(outputs)
        if reason:
            return reason
        return partitions.applies(outputs, ("postgres", "etcd"))

    @contextlib.contextmanager
    def prepared(self):
        # The partition's owner: it heals on any exit (an error, Ctrl-C, SIGTERM) as well.
        with super().prepared(), Faults(self.ctx.stack) as self.faults:
            yield

    def fault(self) -> None:
        cut = partitions.primary(self.out)
        self.leader = cut.node  # the leader now, which setup saw too
        self.say(cut.describe())
        self.faults.partition({cut.node.host}, cut.peers)
        self.event("partition")

    def watch(self) -> None:
        try:
            self.old_primary_stops_writes()
            self.first_write_after("partition")
            new = self.new_leader(other_than=self.leader.name)
            self.event("promoted")
        finally:
            self.faults.heal()
            self.event("healed")
        self.say(f"{new} leads; healed, {self.leader.name} rejoins")
        self.whole_again()

    def old_primary_stops_writes(self) -> None:
        """Until the cut-off leader takes no more writes: it answers read-only, or not at
        all (stopped); records "isolated refuses writes" and the isolated window."""
        def stopped_writes() -> bool:
            try:
                return po.one(self.leader, self.out, "select pg_is_in_recovery()") is True
            except (psycopg.Error, WrongPassword):
                return True

        wait(stopped_writes, what=f"the isolated {self.leader.name} to stop taking writes",
             timeout=RECOVERY_TIMEOUT_S)
        at = self.event("isolated refuses writes")
        self.result.extra["isolated_write_window_s"] = round(
            at - (self.rec.at("partition") or at), 3)

