"""What the drills on a Patroni cluster share: the cluster seen whole before the writes,
the writer on the stack's own read-write DSN, waiting for the first acknowledged write
after the fault (RTO), a node brought back as an operator would (Patroni rejoins it), and
the cluster whole again (one leader, every member streaming, the quorum listed).

The non-durable mode (the checker's own test) makes the fault bite: the quorum is turned
off for the run (`PATCH /config`, back afterwards), and just before the leader goes the
replicas are frozen (SIGSTOP) and the leader's WAL senders ended, so it commits alone for a
moment, as across a network blip; on loopback a replica is otherwise current within
microseconds. What it acknowledged then exists nowhere else, and the checker must count
each such write as lost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from datakit.drills import patroni_ops as pat
from datakit.drills import postgres_ops as po
from datakit.drills.harness import Drill, Target
from datakit.drills.targets import PostgresTarget
from datakit.drills.waiting import wait
from datakit.drills.writer import wait_first_ack_after
from datakit.stack.schema import Node, StackOutputs

# A lost leader's key expires after ttl; the new leader's first write follows. Room for a
# busy machine on top of the largest ttl a stack may set here.
RECOVERY_TIMEOUT_S = 120.0


class PatroniDrill(Drill):
    """A drill on the stack's Patroni cluster, under a writer on the read-write DSN."""

    leader: Node  # Patroni's leader when the drill starts
    replicas: list[Node]
    quorum: int  # the configured count of quorum standbys

    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        nodes = outputs.of("postgres")
        if len(nodes) < 2:
            return "needs a leader and a replica"
        if not all(n.rest_url for n in nodes):
            return "the stack's outputs name no Patroni REST API: run `datakit up` first"
        return None

    def setup(self) -> Target:
        cfg = pat.config(self.out)
        self.quorum = pat.quorum(cfg)
        self.ttl = int(cfg.get("ttl") or 30)
        ready = pat.wait_ready(self.out, synchronous_standbys=self.quorum)
        nodes = {n.name: n for n in self.out.of("postgres")}
        self.leader = nodes[ready["leader"]]
        self.replicas = [n for name, n in nodes.items() if name != self.leader.name]
        self.result.extra.update(old_leader=self.leader.name, quorum=self.quorum,
                                 ttl_s=self.ttl)
        return PostgresTarget(self.out, self.ctx.run_id)

    @contextlib.contextmanager
    def prepared(self):
        if self.ctx.durable:
            yield
            return
        cfg = pat.config(self.out)
        keep = {k: cfg.get(k) for k in ("synchronous_mode", "synchronous_mode_strict")}
        pat.patch(self.out, {"synchronous_mode": False, "synchronous_mode_strict": False})
        wait(lambda: po.one(self.leader, self.out, "show synchronous_standby_names") == "",
             what="Patroni to turn the synchronous quorum off", timeout=30)
        try:
            yield
        finally:
            pat.patch(self.out, keep)
            pat.wait_ready(self.out, synchronous_standbys=self.quorum)

    @contextlib.contextmanager
    def leader_alone(self, gap_s: float = 0.3) -> Iterator[None]:
        """Non-durable mode only: the replicas frozen and the leader's WAL senders ended for
        `gap_s` before the caller's fault (inside this context); the replicas go on after."""
        if self.ctx.durable:
            yield
            return
        frozen = [self.control(n) for n in self.replicas]
        for ctl in frozen:
            ctl.pause()
        try:
            with po.connect(self.leader, self.out) as conn:
                conn.execute("select pg_terminate_backend(pid) from pg_stat_replication")
            time.sleep(gap_s)
            yield
        finally:
            for ctl in frozen:
                ctl.resume()

    # ------------------------------------------------------------- what drills watch
    def first_write_after(self, event: str, timeout: float = RECOVERY_TIMEOUT_S) -> bool:
        """Until a write that started after `event` is acknowledged (records "first
        write"); False, with the run's reason, when none is within `timeout`."""
        if wait_first_ack_after(self.rec, self.rec.at(event) or 0.0, timeout=timeout) is None:
            self.result.reason = (f"no write was acknowledged within {timeout:g} s of the "
                                  f"{event}: the stack did not recover by itself")
            return False
        self.event("first write")
        return True

    def new_leader(self, *, other_than: str | None = None,
                   timeout: float = RECOVERY_TIMEOUT_S) -> str:
        """Patroni's leader once it names one (other than `other_than`, when given)."""
        def named() -> str | None:
            name = pat.leader(self.out)
            return name if name and name != other_than else None

        return wait(named, what="Patroni to name a new leader", timeout=timeout)

    def whole_again(self) -> dict:
        """Until the cluster is whole (records "redundant"); its leader and timeline."""
        # The non-durable mode runs without the quorum until `prepared` puts it back.
        ready = pat.wait_ready(self.out, synchronous_standbys=self.quorum if self.ctx.durable
                               else 0, timeout=RECOVERY_TIMEOUT_S)
        self.event("redundant")
        lines = {m.get("timeline") for m in ready["members"]}
        self.result.extra.update(new_leader=ready["leader"],
                                 quorum_standbys=ready["quorum_standbys"],
                                 timeline=max((t for t in lines if t), default=None))
        return ready
