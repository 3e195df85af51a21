"""The microsecond histogram listener: every Locust request, per request type, over time.

Hooks Locust's events (STYLE.md, "extend by events"): `request` records into this process's
histograms; on workers `report_to_master` ships them and starts afresh; on the master
`worker_report` merges them. Counters (event-store conflicts, retries, dead letters) travel
the same way. The master (or the only process) writes everything to the result file when
it quits; `datakit.load.summary` turns that into figures.
"""

from __future__ import annotations

import json
from time import time as _now
from typing import Any

from datakit.load.histogram import Histogram

MAX_ERROR_SAMPLES = 5


def key_of(request_type: str, name: str) -> str:
    return f"{request_type} {name}"


class Recorder:
    """Histograms per `"<request_type> <name>"`, in total and per time window."""

    def __init__(self, window_s: int = 1) -> None:
        self.window_s = max(1, int(window_s))
        # Before this time (the warm-up: pools filling, brokers' first fetches, JIT) a
        # sample is drawn in the timeline but left out of the totals the baselines judge.
        self.judge_from = 0.0
        self.reset()

    def reset(self) -> None:
        self.hists: dict[str, Histogram] = {}
        self.failures: dict[str, int] = {}
        self.timeline: dict[int, dict[str, list]] = {}  # window -> key -> [Histogram, fails]
        self.counters: dict[str, int] = {}
        self.errors: dict[str, dict[str, int]] = {}

    def record(self, key: str, us: int, failed: str | None = None) -> None:
        """One sample (every request of the process comes here: kept cheap)."""
        now = _now()
        judged = now >= self.judge_from
        if judged:
            hist = self.hists.get(key)
            if hist is None:
                hist = self.hists[key] = Histogram()
            hist.record(us)
        window = int(now) // self.window_s * self.window_s
        slots = self.timeline.get(window)
        if slots is None:
            slots = self.timeline[window] = {}
        slot = slots.get(key)
        if slot is None:
            slot = slots[key] = [Histogram(), 0]
        slot[0].record(us)
        if failed is not None:
            slot[1] += 1
            if not judged:
                return
            self.failures[key] = self.failures.get(key, 0) + 1
            kinds = self.errors.setdefault(key, {})
            if failed in kinds or len(kinds) < MAX_ERROR_SAMPLES:
                kinds[failed] = kinds.get(failed, 0) + 1

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def drain(self) -> dict[str, Any]:
        """This process's data since the last drain, for the wire (then forgotten)."""
        wire = self.to_wire()
        self.reset()
        return wire

    def to_wire(self) -> dict[str, Any]:
        return {
            "window_s": self.window_s,
            "hists": {k: h.to_wire() for k, h in self.hists.items()},
            "failures": dict(self.failures),
            "timeline": [[w, {k: [s[0].to_wire(), s[1]] for k, s in slots.items()}]
                         for w, slots in self.timeline.items()],
            "counters": dict(self.counters),
            "errors": {k: dict(v) for k, v in self.errors.items()},
        }

    def merge_wire(self, wire: dict[str, Any]) -> None:
        for k, h in wire["hists"].items():
            self.hists.setdefault(k, Histogram()).merge(Histogram.from_wire(h))
        for k, n in wire["failures"].items():
            self.failures[k] = self.failures.get(k, 0) + n
        for w, slots in wire["timeline"]:
            mine = self.timeline.setdefault(int(w), {})
            for k, (h, fails) in slots.items():
                slot = mine.setdefault(k, [Histogram(), 0])
                slot[0].merge(Histogram.from_wire(h))
                slot[1] += fails
        for k, n in wire["counters"].items():
            self.count(k, n)
        for k, kinds in wire["errors"].items():
            mine_k = self.errors.setdefault(k, {})
            for text, n in kinds.items():
                if text in mine_k or len(mine_k) < MAX_ERROR_SAMPLES:
                    mine_k[text] = mine_k.get(text, 0) + n

    def write(self, path: str, **extra: Any) -> None:
        with open(path, "w") as out:
            json.dump({**self.to_wire(), **extra}, out)


RECORDER = Recorder()


def count(name: str, n: int = 1) -> None:
    """Count something that is neither a request nor an error (e.g. a version conflict)."""
    RECORDER.count(name, n)
