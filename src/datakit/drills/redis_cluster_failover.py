"""redis-cluster-failover: SIGKILL one master of a Redis Cluster under a writer that goes
through `redis.cluster.RedisCluster`; the master's replica wins the failover election
(after `cluster-node-timeout`) and takes its slots; the killed node is started again and
rejoins as a replica of the new master; the drill waits for full redundancy
(cluster_state ok on every node, every master with slots has a replica with its link up)
and reads every write back.

The writer writes only keys in the victim's slots (one hash, its tag chosen to hash into
the victim's slot range), so "first acknowledged write after the kill" is the RTO of the
lost shard, not of the healthy ones. Durable writes are HSET + `WAIT 1 1000` sent as one
pipeline on the connection of the node that owns the key (targets.RedisClusterTarget);
WAIT answering 0 is an unknown outcome.

With `min-replicas-to-write 1` (the stack's durable setting) the promoted replica has no
replica of its own until the killed node rejoins, so it refuses writes (`NOREPLICAS`)
until then: the RTO to the first write includes the restart and the resync. The drill
restarts the killed node as soon as the failover is seen, as an operator or a supervisor
would, and reports the slot takeover time separately (`failover_s`).
"""

from __future__ import annotations

import contextlib

from datakit.drills import redis_cluster_ops as rc
from datakit.drills.harness import Drill, Target
from datakit.drills.targets import RedisClusterTarget
from datakit.drills.waiting import wait
from datakit.drills.writer import wait_first_ack_after
from datakit.stack.schema import StackOutputs


class RedisClusterFailover(Drill):
    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        mode = outputs.endpoints.redis.mode
        return None if mode == "cluster" else f"the stack's Redis mode is {mode!r}, not cluster"

    def setup(self) -> Target:
        rc.wait_redundant(self.out)
        self.victim, self.entry = rc.masters(self.out)[0]
        self.ctl = self.control(self.victim)
        self.key = rc.key_in(self.entry["ranges"], self.ctx.run_id)
        return RedisClusterTarget(self.out, self.key, durable=self.ctx.durable)

    @contextlib.contextmanager
    def prepared(self):
        try:
            yield
        finally:
            self.target.close()  # the writer's client; the read-back opens its own

    def fault(self) -> None:
        self.say(f"killing Redis Cluster master {self.victim.name} (SIGKILL)")
        self.ctl.kill()
        self.event("kill")

    def watch(self) -> None:
        victim, entry = self.victim, self.entry
        t_kill = self.rec.at("kill")
        replica_ids = {e["id"] for e in rc.any_view(self.out, {victim.name})
                       if e["master_id"] == entry["id"]}

        def taken_over():
            for node, e in rc.masters(self.out, {victim.name}):
                if e["id"] in replica_ids and set(e["ranges"]) >= set(entry["ranges"]):
                    return node
            return None

        new = wait(taken_over, what=f"a replica of {victim.name} to take its slots",
                   timeout=60)
        t_failover = self.event("failover")
        self.say(f"{new.name} serves the slots; restarting {victim.name}")
        self.ctl.start()
        self.event("restarted")
        wait_first_ack_after(self.rec, t_kill, timeout=60)
        roles = rc.wait_redundant(self.out)
        self.event("redundant")
        self.result.extra.update(old_master=victim.name, new_master=new.name, key=self.key,
                                 slots=entry["ranges"], failover_s=round(t_failover - t_kill, 3),
                                 replicas={str(k): v for k, v in roles.items()})

