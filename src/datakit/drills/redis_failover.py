"""redis-failover: SIGKILL the Redis master under a writer that finds the master through
Sentinel; Sentinel (down-after-milliseconds, then a vote) promotes a replica and the
client follows; once every Sentinel names the new master, the old one is started again as
its replica, as an operator would, and the drill waits for full redundancy.

Durable writes are HSET + `WAIT 1 1000` (acknowledged once a replica has it) on top of
the stack's `min-replicas-to-write`; a write whose WAIT answered 0 is an unknown outcome.
The non-durable mode drops WAIT and min-replicas-to-write and cuts the replication links a
moment before the kill (see `cut_links_then_kill`): the master acknowledges writes that
no replica has, and the checker must find every one of them lost.
"""

from __future__ import annotations

import contextlib
import time

from datakit.drills import redis_ops as ro
from datakit.drills.harness import Drill, Target
from datakit.drills.targets import RedisTarget
from datakit.drills.waiting import wait
from datakit.drills.writer import wait_first_ack_after
from datakit.stack.schema import StackOutputs


class RedisFailover(Drill):
    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        mode = outputs.endpoints.redis.mode
        return None if mode == "sentinel" else f"the stack's Redis mode is {mode!r}, not sentinel"

    def setup(self) -> Target:
        self.old = ro.wait_redundant(self.out)
        self.ctl = self.control(self.old)
        return RedisTarget(self.out, self.ctx.run_id, durable=self.ctx.durable)

    @contextlib.contextmanager
    def prepared(self):
        saved = None if self.ctx.durable else ro.set_min_replicas(self.out, 0)
        try:
            yield
        finally:
            if saved is not None:
                ro.set_min_replicas(self.out, saved)

    def fault(self) -> None:
        self.say(f"killing Redis master {self.old.name} (SIGKILL)")
        if self.ctx.durable:
            self.ctl.kill()
        else:
            self.cut_links_then_kill()
        self.event("kill")  # the node is dead now

    def cut_links_then_kill(self, gap_s: float = 0.3) -> None:
        """The non-durable mode's fault: the master loses its replication links, takes
        writes alone for `gap_s`, then dies; what it acknowledged in the gap exists nowhere
        else.

        On loopback a replica is current within microseconds and reconnects at once with a
        partial resync, so a plain kill almost never loses an asynchronous write: the
        replicas are frozen (SIGSTOP) across the gap so that they cannot, as a replica
        across a network blip could not."""
        replicas = [self.control(n) for n in ro.data_nodes(self.out)
                    if n.name != self.old.name]
        for one in replicas:
            one.pause()
        try:
            with ro.client(self.old, self.out) as c:
                c.client_kill_filter(_type="replica")
            time.sleep(gap_s)
            self.ctl.kill()
        finally:
            for one in replicas:
                one.resume()

    def watch(self) -> None:
        wait(lambda: ro.master_node(self.out).name != self.old.name,
             what="Sentinel to promote a replica", timeout=60)
        self.event("promoted")
        wait_first_ack_after(self.rec, self.rec.at("kill") or 0.0, timeout=60)
        # Back as a replica of the master all Sentinels agree on, never as a stale master.
        self.ctl.start(replica_of=ro.agreed_master(self.out, self.old))
        self.event("restarted")
        new = ro.wait_redundant(self.out)
        self.event("redundant")
        self.result.extra.update(old_master=self.old.name, new_master=new.name)
