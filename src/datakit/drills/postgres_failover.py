"""postgres-failover: SIGKILL the primary under a writer; promote the replica that
received the most WAL; re-point the other replicas to it (they follow the new timeline);
rejoin the old primary with pg_rewind as a standby with its own slot. Clients on the
multi-host DSN (`target_session_attrs=read-write`) find the new primary themselves.

Detection is modelled as an HA agent would do it: the primary is probed every 0.2 s and
declared failed after two refused probes in a row; datakit runs no agent of its own.

The non-durable mode turns synchronous replication off and ends the WAL senders a moment
before the kill (`postgres_ops.cut_walsenders`): commits acknowledged in that gap exist on
the killed primary only, and the checker must count each as lost.
"""

from __future__ import annotations

import contextlib
import time

import psycopg

from datakit.drills import postgres_ops as po
from datakit.drills.postgres_handover import PostgresHandover

PROBE_INTERVAL_S = 0.2
PROBES_TO_FAIL = 2


class PostgresFailover(PostgresHandover):
    @contextlib.contextmanager
    def prepared(self):
        if self.ctx.durable:
            yield
            return
        po.set_async(self.out, True)
        try:
            yield
        finally:
            po.set_async(self.out, False)

    def fault(self) -> None:
        self.say(f"killing primary {self.old.name} (SIGKILL)")
        cut = contextlib.nullcontext() if self.ctx.durable else \
            po.cut_walsenders(self.old, self.replicas, self.out)
        with cut:
            self.control(self.old).kill()
        self.event("kill")  # the node is dead now

    def watch(self) -> None:
        self.detect_failure()
        self.event("detected")
        lsns = {}
        for r in self.replicas:
            try:
                lsns[r.name] = po.received_lsn(r, self.out)
            except psycopg.Error:
                lsns[r.name] = -1
        self.take_over(lsns)
        self.rejoin_after("kill")

    def detect_failure(self) -> None:
        failed = 0
        while failed < PROBES_TO_FAIL:
            try:
                po.one(self.old, self.out, "select 1")
                failed = 0
            except psycopg.Error:
                failed += 1
            if failed < PROBES_TO_FAIL:
                time.sleep(PROBE_INTERVAL_S)
