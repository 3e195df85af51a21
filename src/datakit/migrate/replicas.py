"""Replica awareness: wait until every replica has replayed a migration, and measure it."""

from __future__ import annotations

import time
from collections import namedtuple

from datakit.errors import DatakitError


class ReplicaWait(namedtuple("ReplicaWait", "replicas waited_s max_lag_bytes max_replay_lag_s")):
    """How many replicas replayed a migration, the wait, the largest lag in bytes and the
    largest replay lag in seconds (None when no replica reported one)."""

    __slots__ = ()


def lsn_to_int(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def wait_for_replicas(conn, *, timeout: float = 60.0) -> ReplicaWait:
    """Block until every streaming replica's replay position passes the primary's current LSN."""
    target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    t0 = time.monotonic()
    max_lag = 0
    max_replay: float | None = None
    interval = 0.005
    while True:
        rows = conn.execute(
            """SELECT application_name, pg_wal_lsn_diff(%s, replay_lsn)::bigint,
                      extract(epoch FROM replay_lag)::float8
                 FROM pg_stat_replication""",
            (target,)).fetchall()
        behind = [r for r in rows if r[1] is None or r[1] > 0]
        for _, lag, replay in rows:
            if lag is not None:
                max_lag = max(max_lag, int(lag))
            if replay is not None:
                max_replay = max(max_replay or 0.0, replay)
        if not behind:
            return ReplicaWait(len(rows), round(time.monotonic() - t0, 4), max_lag, max_replay)
        if time.monotonic() - t0 > timeout:
            names = ", ".join(r[0] or "?" for r in behind)
            raise DatakitError(f"replicas {names} did not replay the migration within "
                               f"{timeout:g}s; check replication, or raise --replica-timeout")
        time.sleep(interval)
        interval = min(interval * 2, 0.1)
