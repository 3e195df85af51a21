"""Figures from a run's merged histograms: per request type, totals, and over time.

A request type is `"<request_type> <name>"` (e.g. `postgres read/agent_state`). Pool waits
and end-to-end Kafka latency are derived measurements: they have latencies and can fail,
but they are not operations of their own, so throughput leaves them out.
"""

from __future__ import annotations

from typing import Any

from datakit.load import client_health
from datakit.load.histogram import Histogram

PERCENTILES = {"p50_ms": 50, "p95_ms": 95, "p99_ms": 99, "p999_ms": 99.9}


def is_derived(key: str) -> bool:
    _, name = key.split(" ", 1)
    return name.startswith("pool_wait") or name == "e2e"


def figures(hist: Histogram, failures: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"count": hist.total, "failures": failures,
                           "rps": round(hist.total / seconds, 2) if seconds > 0 else 0.0}
    for label, pct in PERCENTILES.items():
        value = hist.percentile_ms(pct)
        out[label] = None if value is None else round(value, 3)
    out["mean_ms"] = None if hist.mean_ms() is None else round(hist.mean_ms(), 3)
    out["max_ms"] = round(hist.max_us / 1000.0, 3)
    return out


def matching(hists: dict[str, Histogram], request_type: str, prefix: str | None) -> Histogram:
    """Merged histogram of `request_type` names equal to `prefix` or under `prefix/`."""
    parts = []
    for key, hist in hists.items():
        rtype, name = key.split(" ", 1)
        if rtype != request_type:
            continue
        if prefix is None or name == prefix or name.startswith(prefix + "/"):
            parts.append(hist)
    return Histogram.merged(parts)


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    hists = {k: Histogram.from_wire(w) for k, w in result["hists"].items()}
    failures = result["failures"]
    warmup = result.get("warmup_s") or 0.0
    seconds = max(1e-9, result["stopped"] - result["started"] - warmup)
    types = {}
    for key in sorted(hists):
        rtype, name = key.split(" ", 1)
        types[key] = {"request_type": rtype, "name": name, "derived": is_derived(key),
                      **figures(hists[key], failures.get(key, 0), seconds),
                      "errors": result["errors"].get(key, {})}
    ops = [k for k in hists if not is_derived(k)]
    requests = sum(hists[k].total for k in hists)
    fails = sum(failures.values())
    return {
        "duration_s": round(seconds, 2),
        "warmup_s": warmup,
        "totals": {"requests": requests, "failures": fails,
                   "error_ratio": fails / requests if requests else 0.0,
                   "operations": sum(hists[k].total for k in ops),
                   "rps": round(sum(hists[k].total for k in ops) / seconds, 2)},
        "types": types,
        "counters": dict(sorted(result["counters"].items())),
        "locust": {"requests": result.get("locust_requests"),
                   "failures": result.get("locust_failures")},
        "client": client_health.summarize(result.get("client_health") or {}),
    }


def timeline(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per request type, per window: time offset, rps, failures/s, p50 and p99 (ms)."""
    window = result["window_s"]
    started = result["started"]
    series: dict[str, list[dict[str, Any]]] = {}
    for w, slots in sorted(result["timeline"], key=lambda item: item[0]):
        for key, (wire, fails) in slots.items():
            h = Histogram.from_wire(wire)
            series.setdefault(key, []).append({
                "t": round(w - started, 1), "rps": h.total / window, "fails": fails / window,
                "p50_ms": h.percentile_ms(50), "p99_ms": h.percentile_ms(99)})
    return series
