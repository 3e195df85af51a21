"""One runner at a time per database: a session advisory lock on its own connection.

Taken by polling `pg_try_advisory_lock` until a deadline (never a blocking lock, and never
a transaction-level one, which `CREATE INDEX CONCURRENTLY` would wait on). Released when
the block exits, and by the server when the runner's connection dies.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from datakit.errors import DatakitError
from datakit.migrate.connection import connect

# A fixed 64-bit key: "datakit.migrate" in the advisory lock space of each database.
LOCK_KEY = 0x6461_7461_6B69_7401 & 0x7FFF_FFFF_FFFF_FFFF


class LockTimeout(DatakitError):
    """Another runner held the migration lock past the wait."""


def holder(conn) -> str:
    row = conn.execute(
        """
        SELECT a.pid, a.application_name, a.usename, a.client_addr, a.backend_start
          FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
               SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid = (%(key)s >> 32)::oid AND l.objid = (%(key)s & 4294967295)::oid
           AND l.objsubid = 1
        """,
        {"key": LOCK_KEY},
    ).fetchone()
    if row is None:
        return "a runner that has since finished"
    pid, app, user, addr, started = row
    return (f"server pid {pid} ({app or 'no application_name'}, user {user}, "
            f"from {addr or 'local socket'}, connected {started:%Y-%m-%d %H:%M:%S})")


@contextmanager
def runner_lock(dsn: str, *, wait: float = 60.0):
    """Hold the database's migration lock for the duration of the block."""
    conn = connect(dsn)
    try:
        deadline = time.monotonic() + wait
        interval = 0.02
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"migration lock busy after {wait:g}s, held by {holder(conn)}; wait for "
                    "that run to finish (or end it), or raise --lock-wait"
                )
            time.sleep(interval)
            interval = min(interval * 1.5, 0.25)
        yield conn
    finally:
        conn.close()  # ends the session, which releases the lock
