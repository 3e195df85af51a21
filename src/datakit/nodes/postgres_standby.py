"""Hot-standby settings: a replica may never run with less than its primary had.

A standby refuses to replay WAL written under a higher `max_connections` (and the other
settings below) than its own; lowered too soon it stops with "recovery aborted because of
insufficient parameter settings". The program updates the primary first, so when such a
setting goes down, a replica restarts only after it has replayed past the primary's
restart, which recorded the new, lower value.
"""

from __future__ import annotations

import time

from datakit.errors import DatakitError
from datakit.nodes.postgres_client import connect, live_primary

# The settings PostgreSQL checks on a hot standby against the primary's (pg_control).
HOT_STANDBY_MINIMUMS = ("max_connections", "max_worker_processes", "max_wal_senders",
                        "max_prepared_transactions", "max_locks_per_transaction")


def lowered(old: dict, new: dict) -> list[str]:
    """The hot-standby settings that `new` sets lower than `old`."""
    before, after = old.get("settings") or {}, new.get("settings") or {}
    return [k for k in HOT_STANDBY_MINIMUMS
            if k in before and k in after and int(after[k]) < int(before[k])]


def await_replay_of_primary(spec: dict, *, timeout: float = 60.0) -> None:
    """Wait until this replica has replayed everything its live primary has written."""
    user = spec.get("superuser") or "postgres"
    password = spec["superuser_password"]
    primary = live_primary(spec.get("peers") or [], user=user, password=password)
    if primary is None:
        return  # nothing to replay from; the restart cannot be refused for it
    with connect(primary, user=user, password=password) as conn:
        target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    me = {"name": spec["name"], "port": spec["port"], "host": spec.get("host")}
    deadline = time.monotonic() + timeout
    with connect(me, user=user, password=password) as conn:
        while True:
            behind = conn.execute("SELECT pg_wal_lsn_diff(%s, pg_last_wal_replay_lsn())",
                                  (target,)).fetchone()[0]
            if behind is not None and behind <= 0:
                return
            if time.monotonic() > deadline:
                raise DatakitError(
                    f"postgres node {spec['name']}: has not replayed the primary's WAL up to "
                    f"{target} after {timeout:g}s; lowering hot-standby settings before it "
                    "does would stop its recovery")
            time.sleep(0.05)
