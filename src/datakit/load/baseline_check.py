"""The baseline check: each baseline of the stack (or of the run) against what was measured.

A baseline with no samples (e.g. Kafka latency on a PostgreSQL-only workload) is `n/a`,
not a failure; error ratio and throughput are always measured. Two more checks judge the
load generator rather than the stack (`side="client"`): when one fails the run is
saturated, and its latency figures include time spent queueing in the client.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from datakit.errors import DatakitError
from datakit.load import client_health
from datakit.load.histogram import Histogram
from datakit.load.summary import is_derived, matching
from datakit.topology.baselines import Baselines


class BadOverride(DatakitError):
    exit_code = 4  # the run could not go as asked (not 2, Click's usage error)


@dataclass
class Check:
    name: str
    measured: float | None
    limit: float
    op: str  # "<=" or ">="
    unit: str
    side: str = "server"  # "client": a limit of the load generator, not of the stack

    @property
    def status(self) -> str:
        if self.measured is None:
            return "n/a"
        held = self.measured <= self.limit if self.op == "<=" else self.measured >= self.limit
        return "pass" if held else "FAIL"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def apply_overrides(baselines: Baselines, overrides: dict[str, str]) -> Baselines:
    """`{"queries.read.p95_ms": "2", "min_rps": "500"}` onto the stack's baselines."""
    data = baselines.model_dump()
    for dotted, value in overrides.items():
        node = data
        *path, last = dotted.split(".")
        for part in path:
            if isinstance(node.get(part), dict) or path[0] == "queries":
                node = node.setdefault(part, {})
            else:
                raise BadOverride(f"baseline override {dotted!r}: no such baseline "
                                  f"(e.g. min_rps=200, queries.read.p95_ms=10)")
        if path[:1] != ["queries"] and last not in node:
            raise BadOverride(f"baseline override {dotted!r}: no such baseline "
                              f"(known: {', '.join(sorted(Baselines.model_fields))})")
        node[last] = value
    from pydantic import ValidationError

    try:
        return Baselines.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadOverride(f"baseline override {where}: {first['msg']} (got "
                          f"{first.get('input')!r}); a new query type needs both "
                          f"p95_ms and p99_ms") from None


def client_checks(figures: dict[str, Any], baselines: Baselines) -> list[Check]:
    """The load generator's own limits, from `summary.summarize(...)["client"]`."""
    return [Check("client CPU p50", figures.get("cpu_percent_p50"),
                  baselines.client_cpu_p50_max_percent, "<=", "%", side="client"),
            Check("client loop lag p99", figures.get("loop_lag_p99_ms"),
                  baselines.client_loop_lag_p99_max_ms, "<=", "ms", side="client")]


def check(result: dict[str, Any], baselines: Baselines, seconds: float) -> list[Check]:
    hists = {k: Histogram.from_wire(w) for k, w in result["hists"].items()}

    def pct(h: Histogram, p: float) -> float | None:
        v = h.percentile_ms(p)
        return None if v is None else round(v, 3)

    checks = [Check("postgres pool wait p95", pct(matching(hists, "postgres", "pool_wait"), 95),
                    baselines.pool_wait_p95_ms, "<=", "ms")]
    for qtype, limits in baselines.queries.items():
        h = matching(hists, "postgres", qtype)
        checks.append(Check(f"postgres {qtype} p95", pct(h, 95), limits.p95_ms, "<=", "ms"))
        checks.append(Check(f"postgres {qtype} p99", pct(h, 99), limits.p99_ms, "<=", "ms"))
    checks.append(Check("redis p99", pct(matching(hists, "redis", None), 99),
                        baselines.redis_p99_ms, "<=", "ms"))
    checks.append(Check("kafka produce p95", pct(matching(hists, "kafka", "produce"), 95),
                        baselines.kafka_produce_p95_ms, "<=", "ms"))
    checks.append(Check("kafka end-to-end p95", pct(matching(hists, "kafka", "e2e"), 95),
                        baselines.kafka_e2e_p95_ms, "<=", "ms"))
    requests = sum(h.total for h in hists.values())
    fails = sum(result["failures"].values())
    checks.append(Check("error ratio", round(fails / requests, 6) if requests else 1.0,
                        baselines.error_ratio_max, "<=", ""))
    ops = sum(h.total for k, h in hists.items() if not is_derived(k))
    checks.append(Check("throughput", round(ops / seconds, 1) if seconds > 0 else 0.0,
                        baselines.min_rps, ">=", "req/s"))
    return checks + client_checks(
        client_health.summarize(result.get("client_health") or {}), baselines)
