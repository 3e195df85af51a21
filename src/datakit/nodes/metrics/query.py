"""A small client of Prometheus's HTTP API (v1): range queries for reports, the scrape
targets and the alerts for verify and drills, the loaded rules. JSON over HTTP with the
standard library; Prometheus's own answers are read as given (values arrive as strings:
"1.5", "NaN", "+Inf", which float() reads).

    >>> prom = Prometheus("http://127.0.0.1:63100")
    >>> prom.query_range("rate(pg_stat_database_xact_commit[5s])", t0, t1, 1)
    [Series(labels={'__name__': ..., 'node': 'pg-1', ...}, points=[(t, v), ...])]
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from datakit.errors import DatakitError


class PrometheusError(DatakitError):
    """Prometheus did not answer, or refused the query: the message says which and why."""


@dataclass(frozen=True)
class Series:
    """One time series of a query's answer: its labels and its (unix time, value) points."""

    labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)

    def name(self, *keys: str) -> str:
        """A legend for the series: the values of `keys` (default: every label but the
        metric name), joined; the metric name when nothing else is there."""
        keys = keys or tuple(k for k in sorted(self.labels) if k != "__name__")
        parts = [self.labels[k] for k in keys if k in self.labels]
        return " ".join(parts) or self.labels.get("__name__", "value")


@dataclass(frozen=True)
class Target:
    job: str
    instance: str
    health: str  # "up", "down" or "unknown" (not scraped yet)
    labels: dict[str, str]
    last_error: str
    scrape_url: str


@dataclass(frozen=True)
class Alert:
    name: str
    state: str  # "pending" (condition true, `for` not yet over) or "firing"
    labels: dict[str, str]
    annotations: dict[str, str]
    active_at: str  # RFC 3339, when the condition first held
    value: float


class Prometheus:
    """The API of one Prometheus server at `url` (e.g. the stack's outputs say where)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, path: str, params: dict[str, str] | None = None):
        # POST with a form body: long expressions do not fit a URL
        body = urllib.parse.urlencode(params or {}).encode() if params else None
        request = urllib.request.Request(
            f"{self.url}/api/v1/{path}", data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"} if body else {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                answer = json.loads(reply.read())
        except urllib.error.HTTPError as exc:  # 400/422: the query itself is wrong
            try:
                answer = json.loads(exc.read())
            except ValueError:
                raise PrometheusError(f"Prometheus {self.url} answered HTTP {exc.code} to "
                                      f"{path}") from None
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"Prometheus {self.url} does not answer "
                                  f"({getattr(exc, 'reason', exc)}): is the stack up? "
                                  "(`datakit status`)") from None
        if answer.get("status") != "success":
            raise PrometheusError(f"Prometheus {self.url} refused {path} "
                                  f"{(params or {}).get('query', '')!r}: "
                                  f"{answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[Series]:
        """An instant query: each series with its one point (at `at`, default now)."""
        params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        data = self._call("query", params)
        if data["resultType"] == "scalar":
            t, v = data["result"]
            return [Series({}, [(float(t), float(v))])]
        return [Series(r["metric"], [(float(r["value"][0]), float(r["value"][1]))])
                for r in data["result"]]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """`expr` evaluated every `step` seconds from `start` to `end` (unix times)."""
        data = self._call("query_range", {"query": expr, "start": f"{start:.3f}",
                                          "end": f"{end:.3f}", "step": f"{step:g}"})
        return [Series(r["metric"], [(float(t), float(v)) for t, v in r["values"]])
                for r in data["result"]]

    def targets(self) -> list[Target]:
        """The active scrape targets and how their last scrape went."""
        data = self._call("targets?state=active")
        return [Target(job=t["labels"].get("job", ""), instance=t["labels"].get("instance", ""),
                       health=t["health"], labels=t["labels"], last_error=t.get("lastError", ""),
                       scrape_url=t.get("scrapeUrl", ""))
                for t in data["activeTargets"]]

    def alerts(self) -> list[Alert]:
        """Alerts pending or firing now (an alert that cleared is no longer listed)."""
        return [Alert(name=a["labels"].get("alertname", ""), state=a["state"],
                      labels=a["labels"], annotations=a.get("annotations", {}),
                      active_at=a.get("activeAt", ""), value=float(a.get("value", "nan")))
                for a in self._call("alerts")["alerts"]]

    def rules(self) -> list[dict]:
        """The loaded rule groups, as Prometheus reports them (name, file, rules, health)."""
        return self._call("rules")["groups"]
