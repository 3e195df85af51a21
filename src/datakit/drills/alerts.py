"""The stack's alerts through a drill: which fired and cleared, when, about which node.

A thread asks Prometheus for its alerts twice a second, on the drill recorder's clock.
An alert is keyed by its name and labels; it is `fired` when first seen firing (pending
alerts are not counted: their condition has not held for the rule's `for` yet) and
`cleared` when no longer listed. After the stack is whole again, `settle` waits two
scrapes and an evaluation for Prometheus to see it so, and names what still fires: the
drill fails on those.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from datakit.drills.writer import Recorder
from datakit.nodes.metrics.query import Prometheus, PrometheusError
from datakit.stack.schema import StackOutputs

POLL_S = 0.5


@dataclass
class Seen:
    name: str
    node: str
    summary: str
    fired: float  # seconds on the recorder's clock
    cleared: float | None = None

    def as_json(self) -> dict:
        return {"alert": self.name, "node": self.node, "summary": self.summary,
                "fired_s": round(self.fired, 2),
                "cleared_s": None if self.cleared is None else round(self.cleared, 2)}


class AlertWatch:
    """Alerts over a drill, or nothing at all when the stack runs no Prometheus."""

    def __init__(self, outputs: StackOutputs, rec: Recorder):
        metrics = outputs.endpoints.metrics
        self.prom = Prometheus(metrics.prometheus_url, timeout=2.0) if metrics else None
        self.interval_s = metrics.scrape_interval_s if metrics else 0.0
        self.rec, self.seen, self.errors = rec, {}, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drill-alerts", daemon=True)

    @property
    def enabled(self) -> bool:
        return self.prom is not None

    def start(self) -> None:
        if self.enabled:
            self._thread.start()

    def stop(self) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(POLL_S)

    def poll(self) -> None:
        try:
            alerts = self.prom.alerts()
        except PrometheusError:
            self.errors += 1  # Prometheus itself may be the node a drill took down
            return
        now, firing = self.rec.now(), set()
        for a in alerts:
            if a.state != "firing":
                continue
            key = (a.name, tuple(sorted(a.labels.items())))
            firing.add(key)
            current = self.seen.get(key)
            if current is None or current[-1].cleared is not None:
                self.seen.setdefault(key, []).append(
                    Seen(a.name, a.labels.get("node", "?"),
                         a.annotations.get("summary", ""), now))
        for key, spans in self.seen.items():
            if key not in firing and spans[-1].cleared is None:
                spans[-1].cleared = now

    def settle(self) -> list[Seen]:
        """After the stack is whole again: what still fires once Prometheus had time to
        scrape and evaluate (two scrape intervals and a second)."""
        if not self.enabled:
            return []
        time.sleep(2 * self.interval_s + 1.0)
        self.poll()
        return [spans[-1] for spans in self.seen.values() if spans[-1].cleared is None]

    def spans(self) -> list[Seen]:
        return sorted((s for spans in self.seen.values() for s in spans),
                      key=lambda s: s.fired)
