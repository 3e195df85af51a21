"""PostgreSQL for Locust users: one psycopg_pool per process and DSN, created on first use.

`--processes N` forks after the locustfile is imported, so nothing connects at import: the
first user of a process builds the pool behind a lock (and a forked child never reuses its
parent's). Each query reports two request types: `pool_wait/<dsn kind>` (time to acquire a
connection) and the query's own name (time on the connection), so an oversubscribed pool
shows as acquire wait, not as query time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from locust import events

from datakit.load.settings import current

T = TypeVar("T")
REQUEST_TYPE = "postgres"

_lock = threading.Lock()  # gevent's lock: Locust monkey-patches before any locustfile
_pools: dict[str, Any] = {}
_pid = os.getpid()


def pool(kind: str):
    """The process's pool for `write` (read-write primary) or `read` (prefer a standby)."""
    global _pid
    p = _pools.get(kind)
    if p is not None and _pid == os.getpid():
        return p
    with _lock:
        if _pid != os.getpid():  # a forked child: the parent's pools are not ours
            _pools.clear()
            _pid = os.getpid()
        p = _pools.get(kind)
        if p is None:
            from psycopg_pool import ConnectionPool

            s = current()
            p = ConnectionPool(
                s.postgres[f"{kind}_dsn"], min_size=int(s.pool["min_size"]),
                max_size=int(s.pool["max_size"]), timeout=float(s.pool["acquire_timeout_s"]),
                kwargs={"autocommit": True, "prepare_threshold": 0}, open=True,
                name=f"datakit-{kind}", reconnect_timeout=30.0)
            _pools[kind] = p
    return p


def fire(name: str, seconds: float, exc: BaseException | None = None) -> None:
    events.request.fire(request_type=REQUEST_TYPE, name=name, response_time=seconds * 1000.0,
                        response_length=0, exception=exc, context=None)


def run(kind: str, name: str, work: Callable[[Any], T]) -> T | None:
    """Acquire from the `kind` pool, run `work(conn)`, report wait and query separately.

    Returns None when acquiring or the query failed (both are reported as failures).
    """
    from psycopg import Error
    from psycopg_pool import PoolTimeout

    p = pool(kind)
    started = time.perf_counter()
    try:
        conn = p.getconn()
    except (PoolTimeout, Error) as exc:
        fire(f"pool_wait/{kind}", time.perf_counter() - started, exc)
        return None
    acquired = time.perf_counter()
    fire(f"pool_wait/{kind}", acquired - started)
    try:
        result = work(conn)
    except Error as exc:
        fire(name, time.perf_counter() - acquired, exc)
        result = None
    else:
        fire(name, time.perf_counter() - acquired)
    finally:
        p.putconn(conn)
    return result


def close_all() -> None:
    for p in list(_pools.values()):
        p.close(timeout=1.0)
    _pools.clear()
