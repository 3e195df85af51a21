"""What the PostgreSQL failover and switchover drills share: the primary and its replicas
at the start, the take-over by the most caught-up replica, and the old primary's rejoin
with pg_rewind to full redundancy. Each drill adds its fault (a kill, a fenced clean stop)
and how it sees the primary gone."""

from __future__ import annotations

from datakit.drills import postgres_ops as po
from datakit.drills.harness import Drill, Target
from datakit.drills.targets import PostgresTarget
from datakit.drills.writer import wait_first_ack_after
from datakit.stack.schema import Node, StackOutputs


class PostgresHandover(Drill):
    """A primary handing over to a replica under a writer on the multi-host DSN."""

    old: Node  # the primary at the start
    replicas: list[Node]
    best: Node  # the promoted replica
    others: list[Node]  # the replicas that follow it

    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        return None if len(po.nodes(outputs)) >= 2 else "needs a primary and a replica"

    def setup(self) -> Target:
        self.old, self.replicas = po.roles(self.out)
        return PostgresTarget(self.out, self.ctx.run_id)

    def take_over(self, lsns: dict[str, int]) -> Node:
        """The replica with the most WAL (`lsns`, by name) is promoted, the others follow it
        (on its new timeline) and its quorum names them all; returns it."""
        self.best = max(self.replicas, key=lambda r: lsns[r.name])
        self.say(f"promoting {self.best.name} (WAL received: {lsns})")
        po.promote(self.best, self.out)
        self.event("promoted")
        self.others = [r for r in self.replicas if r is not self.best]
        for r in self.others:
            po.repoint(r, self.best, self.out)
        self.event("repointed")
        self.result.extra["synchronous_standby_names"] = po.ensure_quorum(
            self.best, self.out, [*self.others, self.old])
        return self.best

    def rejoin_after(self, event: str) -> None:
        """Once writes are acknowledged again after `event`: rejoin the old primary under
        the new one with pg_rewind, then wait until every standby streams again."""
        wait_first_ack_after(self.rec, self.rec.at(event) or 0.0, timeout=30)
        self.say(f"rejoining {self.old.name} with pg_rewind")
        self.result.extra["pg_rewind"] = po.rejoin(self.old, self.best, self.out)
        self.event("rejoined")
        self.result.extra["standbys"] = po.wait_redundant(self.best, self.out,
                                                          [*self.others, self.old])
        self.event("redundant")
        self.result.extra.update(old_primary=self.old.name, new_primary=self.best.name)
