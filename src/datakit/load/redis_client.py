"""Redis for Locust users: one client per process, found through Sentinel (or Cluster seeds).

Built on first use behind a lock (forked workers build their own). Every call is reported
as request type `redis` with the operation's name; timeouts and connection errors are
failures, a cache miss is not.
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
            ep, secrets = s.redis, s.secrets["redis"]
            timeouts = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
            if ep["mode"] == "cluster":
                from redis.cluster import ClusterNode, RedisCluster

                _client = RedisCluster(
                    startup_nodes=[ClusterNode(h, p) for h, p in _hostports(ep["seeds"])],
                    password=secrets["default"], **timeouts)
            else:
                from redis.sentinel import Sentinel

                sentinel = Sentinel(_hostports(ep["sentinels"]),
                                    sentinel_kwargs={"password": secrets.get("sentinel"),
                                                     **timeouts}, **timeouts)
                _client = sentinel.master_for(ep["master_name"], password=secrets["default"],
                                              **timeouts)
    return _client


def call(name: str, work: Callable[[Any], T]) -> T | None:
    """Run `work(client)` and report it as `redis <name>`; None when it failed."""
    from redis.exceptions import RedisError

    c = client()
    started = time.perf_counter()
    try:
        result = work(c)
    except RedisError as exc:
        events.request.fire(request_type=REQUEST_TYPE, name=name,
                            response_time=(time.perf_counter() - started) * 1000.0,
                            response_length=0, exception=exc, context=None)
        return None
    events.request.fire(request_type=REQUEST_TYPE, name=name,
                        response_time=(time.perf_counter() - started) * 1000.0,
                        response_length=0, exception=None, context=None)
    return result
