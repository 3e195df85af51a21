"""Refuse a driver that blocks the gevent hub: queries must overlap, or figures are lies.

psycopg 3 cooperates with gevent (from 3.1.14) when it is imported after monkey-patching;
with `PSYCOPG_WAIT_FUNC=wait_c`, or imported too early, each query blocks every user of
the process. The check opens `n` connections, runs `SELECT pg_sleep(sleep_s)` on all of
them at once in greenlets and requires the wall time to stay well under `n * sleep_s`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from datakit.errors import DatakitError


class NotCooperative(DatakitError):
    exit_code = 3


@dataclass
class ConcurrencyCheck:
    n: int
    sleep_s: float
    wall_s: float
    limit_s: float
    wait_func: str

    @property
    def ok(self) -> bool:
        return self.wall_s < self.limit_s

    def message(self) -> str:
        return (f"the PostgreSQL driver does not run queries concurrently under gevent: "
                f"{self.n} × pg_sleep({self.sleep_s}) took {self.wall_s:.3f} s "
                f"(limit {self.limit_s:.3f} s, serial would be {self.n * self.sleep_s:.2f} s; "
                f"psycopg wait function {self.wait_func}). Fix: psycopg >= 3.1.14 imported "
                f"after gevent's monkey-patching, and no PSYCOPG_WAIT_FUNC=wait_c")


def check(dsn: str, n: int = 8, sleep_s: float = 0.05) -> ConcurrencyCheck:
    import gevent
    import psycopg
    from psycopg import waiting

    conns = [psycopg.connect(dsn, autocommit=True) for _ in range(n)]
    try:
        started = time.perf_counter()
        jobs = [gevent.spawn(c.execute, "SELECT pg_sleep(%s)", (sleep_s,)) for c in conns]
        gevent.joinall(jobs, raise_error=True)
        wall = time.perf_counter() - started
    finally:
        for c in conns:
            c.close()
    wait = getattr(waiting, "wait", None)
    return ConcurrencyCheck(n=n, sleep_s=sleep_s, wall_s=wall, limit_s=n * sleep_s / 2,
                            wait_func=getattr(wait, "__name__", str(wait)))
