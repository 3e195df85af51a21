"""Redis for Locust users: one client per process, found through Sentinel (or Cluster seeds).

Built on first use behind a lock (forked workers build their own). Every call is reported
as request type `redis` with the operation's name; timeouts and connection errors are
failures, a cache miss is not.

Two ways to call: `call(name, work)` runs `work(client)` on the shared client (any
redis-py command, Cluster included); `Link` is one Locust user's own connection, taken
from the Sentinel-managed pool and held, as each of redis-benchmark's clients holds one.
A command on a link is packed, then sent and read on that connection (the round trip is
what is timed: `send_packed_command`, `read_response`), without the client's per-command
pool checkout, socket readiness check, retry wrapper and response callbacks, which cost
more CPU than the round trip itself. A connection or timeout error drops the connection:
the next command reconnects to the master Sentinel names then (redis-py's
`SentinelManagedConnection`), so a failover shows as errors, then recovery.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from time import perf_counter
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from datakit.load.events import reporter
from datakit.load.settings import current
from datakit.nodes import tls

T = TypeVar("T")
REQUEST_TYPE = "redis"

_lock = threading.Lock()
_client: Any = None
_pid = os.getpid()


def _hostports(items: list[str]) -> list[tuple[str, int]]:
    return [(h, int(p)) for h, p in (i.rsplit(":", 1) for i in items)]


def client():
    global _client, _pid
    if _client is not None and _pid == os.getpid():
        return _client
    with _lock:
        if _pid != os.getpid():
            _client, _pid = None, os.getpid()
        if _client is None:
            s = current()
            ep, secrets = s.redis, s.secrets.redis
            timeouts = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0,
                        **tls.redis(s.outputs.tls_for("redis"))}
            if ep.mode == "cluster":
                from redis.cluster import ClusterNode, RedisCluster

                _client = RedisCluster(
                    startup_nodes=[ClusterNode(h, p) for h, p in _hostports(ep.seeds)],
                    password=secrets.default, **timeouts)
            else:
                from redis.sentinel import Sentinel

                sentinel = Sentinel(_hostports(ep.sentinels),
                                    sentinel_kwargs={"password": secrets.sentinel,
                                                     **timeouts}, **timeouts)
                _client = sentinel.master_for(ep.master_name, password=secrets.default,
                                              **timeouts)
    return _client


fire = reporter(REQUEST_TYPE)


def call(name: str, work: Callable[[Any], T]) -> T | None:
    """Run `work(client)` and report it as `redis <name>`; None when it failed."""
    c = client()
    started = perf_counter()
    try:
        result = work(c)
    except RedisError as exc:
        fire(name, perf_counter() - started, exc)
        return None
    fire(name, perf_counter() - started)
    return result


class Link:
    """A user's own connection to the master (Sentinel mode); Cluster falls back to `call`.

    `link.command("cache/get", "GET", key)` returns the raw reply (bytes, b"OK", an
    integer) or None when it failed (reported as a failure, like `call`).
    """

    def __init__(self) -> None:
        c = client()
        self._client = c
        self._pool = None if current().redis.mode == "cluster" else c.connection_pool
        self._conn = None

    def command(self, name: str, *args: Any) -> Any:
        pool = self._pool
        if pool is None:
            return call(name, lambda r: r.execute_command(*args))
        conn = self._conn
        started = perf_counter()
        try:
            if conn is None:
                conn = self._conn = pool.get_connection()
            packed = conn.pack_command(*args)  # encoding is not the round trip
            started = perf_counter()
            conn.send_packed_command(packed)
            result = conn.read_response()
            elapsed = perf_counter() - started
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            elapsed = perf_counter() - started
            self.close(broken=True)
            fire(name, elapsed, exc)
            return None
        except RedisError as exc:  # an error reply: the connection is fine
            fire(name, perf_counter() - started, exc)
            return None
        fire(name, elapsed)
        return result

    def close(self, broken: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None or self._pool is None:
            return
        if broken:
            conn.disconnect()
        self._pool.release(conn)
