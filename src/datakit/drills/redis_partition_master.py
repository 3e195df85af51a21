"""redis-partition-master: the Redis master cut from its replicas and from every Sentinel,
both ways, while clients still reach it (nodes/faults). The drill only cuts and watches.

The Sentinels lose the master, agree it is down after down-after-milliseconds and promote
a replica; the client, which finds the master through Sentinel, follows once its old
connection fails. Meanwhile the isolated master takes writes until
`min-replicas-to-write` refuses them: its replicas' last acknowledgements grow older than
`min-replicas-max-lag`. That isolated window is measured with a probe write on the old
master itself. Then the partition heals, the Sentinels turn the old master into a replica
of the new one, and what it took alone is gone.

Durable writes wait for a replica (`WAIT 1`): the isolated master acknowledges none of them,
so nothing is lost. The non-durable mode is Redis's default for an application that does
not `WAIT`: the writes the isolated master took are acknowledged, and the checker must
count each of them as lost.
"""

from __future__ import annotations

import contextlib

from datakit.drills import partitions
from datakit.drills import redis_ops as ro
from datakit.drills.harness import Drill, Target
from datakit.drills.targets import RedisTarget
from datakit.drills.waiting import wait
from datakit.drills.writer import wait_first_ack_after
from datakit.nodes.faults import Faults
from datakit.stack.schema import StackOutputs

RECOVERY_TIMEOUT_S = 60.0
PROBE_KEY = "datakit:drill:isolated-probe"


class RedisPartitionMaster(Drill):
    fault_event = "partition"

    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        mode = outputs.endpoints.redis.mode
        if mode != "sentinel":
            return f"the stack's Redis mode is {mode!r}, not sentinel"
        return partitions.applies(outputs, ("redis", "sentinel"))

    def setup(self) -> Target:
        self.old = ro.wait_redundant(self.out)
        return RedisTarget(self.out, self.ctx.run_id, durable=self.ctx.durable)

    @contextlib.contextmanager
    def prepared(self):
        # The partition's owner: it heals on any exit (an error, Ctrl-C, SIGTERM) as well.
        with Faults(self.ctx.stack) as self.faults:
            yield

    def fault(self) -> None:
        cut = partitions.master(self.out)
        self.old = cut.node  # the master now, which setup saw too
        self.say(cut.describe())
        self.faults.partition({cut.node.host}, cut.peers)
        self.event("partition")

    def watch(self) -> None:
        try:
            self.isolated_master_refuses()
            wait(lambda: ro.master_node(self.out).name != self.old.name,
                 what="Sentinel to promote a replica", timeout=RECOVERY_TIMEOUT_S)
            self.event("promoted")
            wait_first_ack_after(self.rec, self.rec.at("partition") or 0.0,
                                 timeout=RECOVERY_TIMEOUT_S)
        finally:
            self.faults.heal()
            self.event("healed")
        new = ro.wait_redundant(self.out, timeout=RECOVERY_TIMEOUT_S)
        self.event("redundant")
        self.result.extra.update(old_master=self.old.name, new_master=new.name)

    def isolated_master_refuses(self) -> None:
        """Until the cut-off master refuses a write (NOREPLICAS, or it is a replica);
        records "isolated refuses writes" and the isolated window."""
        import redis

        def refuses() -> bool:
            try:
                with ro.client(self.old, self.out) as c:
                    c.set(PROBE_KEY, "1")
                return False
            except redis.ResponseError:  # NOREPLICAS, or READONLY
                return True

        wait(refuses, what=f"the isolated {self.old.name} to refuse writes",
             timeout=RECOVERY_TIMEOUT_S, interval=0.1)
        at = self.event("isolated refuses writes")
        self.result.extra["isolated_write_window_s"] = round(
            at - (self.rec.at("partition") or at), 3)
