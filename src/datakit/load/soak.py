"""What a soak run watches besides latency: node memory and connection counts over time.

A thread samples every few seconds: each node's resident memory (local substrate: from
/proc by the pid in its handle), PostgreSQL's connection count (pg_stat_activity on the
primary) and Redis's connected clients. The report compares the first and last fifth of
the run: steady growth is drift, a leak candidate.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from datakit.nodes import tls
from datakit.stack.schema import StackOutputs


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class NodeSampler:
    def __init__(self, outputs: StackOutputs, every_s: float = 10.0) -> None:
        self.outputs = outputs
        self.every_s = every_s
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-sampler", daemon=True)
        self.started = time.time()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.sample())
            self._stop.wait(self.every_s)

    def sample(self) -> dict[str, Any]:
        row: dict[str, Any] = {"t": round(time.time() - self.started, 1), "rss_mb": {}}
        for node in self.outputs.nodes:
            if node.handle.pid:
                row["rss_mb"][node.name] = _rss_mb(node.handle.pid)
        row["pg_connections"] = self._pg_connections()
        row["redis_clients"] = self._redis_clients()
        return row

    def _pg_connections(self) -> int | None:
        import psycopg

        try:
            with psycopg.connect(self.outputs.endpoints.postgres.write_dsn,
                                 connect_timeout=2) as conn:
                return conn.execute("SELECT count(*) FROM pg_stat_activity "
                                    "WHERE backend_type = 'client backend'").fetchone()[0]
        except psycopg.Error:
            return None

    def _redis_clients(self) -> int | None:
        from redis.exceptions import RedisError
        from redis.sentinel import Sentinel

        ep, secrets = self.outputs.endpoints.redis, self.outputs.need_secrets().redis
        if ep.mode == "cluster":
            return None
        try:
            hosts = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in ep.sentinels)]
            ssl = tls.redis(self.outputs.tls_for("redis"))
            master = Sentinel(hosts, sentinel_kwargs={"password": secrets.sentinel,
                                                      "socket_timeout": 2, **ssl},
                              socket_timeout=2, **ssl).master_for(ep.master_name,
                                                                  password=secrets.default)
            return int(master.info("clients")["connected_clients"])
        except RedisError:
            return None

    def report(self) -> dict[str, Any]:
        if not self.samples:
            return {"samples": [], "drift": {}}
        n = max(1, len(self.samples) // 5)
        first, last = self.samples[:n], self.samples[-n:]

        def avg(rows, get):
            values = [v for v in (get(r) for r in rows) if v is not None]
            return sum(values) / len(values) if values else None

        drift: dict[str, Any] = {}
        names = self.samples[0]["rss_mb"].keys()
        series = {f"rss_mb {name}": (lambda r, name=name: r["rss_mb"].get(name))
                  for name in names}
        series["pg_connections"] = lambda r: r["pg_connections"]
        series["redis_clients"] = lambda r: r["redis_clients"]
        for label, get in series.items():
            a, b = avg(first, get), avg(last, get)
            if a is not None and b is not None:
                drift[label] = {"start": round(a, 1), "end": round(b, 1),
                                "growth_pct": round((b - a) / a * 100, 1) if a else None}
        return {"every_s": self.every_s, "samples": self.samples, "drift": drift}
