"""How busy the load generator itself was: each Locust process's CPU and gevent's loop lag.

A latency figure belongs to the server only while the client kept up. Every process that
runs users samples its CPU time and the machine's load average once a second, and how late
a short timer fires (the loop lag: how long a ready greenlet waits for the hub, or the
process for a core, time that shows up in every latency it measures). Workers ship their
samples to the master with each stats report. The summary marks a run whose generator was
saturated, so a slow p99 is never blamed on the server, nor passed, silently.
"""

from __future__ import annotations

import os
import time
from typing import Any

import gevent

TICK_S = 0.05


class ClientHealth:
    """Samples of this process, and of the workers it heard from (on a master)."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[str, list[float]]] = {}
        self._greenlet: gevent.Greenlet | None = None

    def _own(self) -> dict[str, list[float]]:
        return self.samples.setdefault(str(os.getpid()), {"cpu": [], "lag_ms": [], "load": []})

    def start(self, delay_s: float = 0.0) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn_later(delay_s, self._sample)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _sample(self) -> None:
        own = self._own()
        wall, cpu = time.perf_counter(), time.process_time()
        while True:
            before = time.perf_counter()
            gevent.sleep(TICK_S)
            now = time.perf_counter()
            own["lag_ms"].append(max(0.0, (now - before - TICK_S) * 1000))
            if now - wall >= 1.0:
                spent = time.process_time()
                own["cpu"].append(100 * (spent - cpu) / (now - wall))
                own["load"].append(os.getloadavg()[0])
                wall, cpu = now, spent

    def drain(self) -> dict[str, dict[str, list[float]]]:
        """This process's samples since the last drain (a worker's report to its master)."""
        own = self._own()
        out = {str(os.getpid()): {k: list(v) for k, v in own.items()}}
        for series in own.values():
            series.clear()
        return out

    def merge(self, client_id: str, wire: dict[str, dict[str, list[float]]]) -> None:
        for series in wire.values():
            mine = self.samples.setdefault(client_id, {})
            for key, values in series.items():
                mine.setdefault(key, []).extend(values)


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def summarize(samples: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """The worst process's figures (median CPU, loop lag p99 and max) and the machine's
    median load average beside the number of cores."""
    per = [{"cpu_p50": _pct(s.get("cpu", []), 50), "lag_p99": _pct(s.get("lag_ms", []), 99),
            "lag_max": max(s.get("lag_ms") or [0.0]), "load": s.get("load", [])}
           for s in samples.values()]
    per = [p for p in per if p["cpu_p50"] is not None or p["lag_p99"] is not None]
    load = _pct([v for p in per for v in p["load"]], 50)
    if not per:
        return {"processes": 0, "cpu_percent_p50": None, "loop_lag_p99_ms": None,
                "loop_lag_max_ms": None, "load_average_p50": None, "cores": os.cpu_count()}
    return {
        "processes": len(per),
        "cpu_percent_p50": round(max(p["cpu_p50"] or 0.0 for p in per), 1),
        "loop_lag_p99_ms": round(max(p["lag_p99"] or 0.0 for p in per), 2),
        "loop_lag_max_ms": round(max(p["lag_max"] for p in per), 2),
        "load_average_p50": None if load is None else round(load, 2),
        "cores": os.cpu_count(),
    }


HEALTH = ClientHealth()
