"""What one drill run found: the set check, RTO, RPO, the error window and the client's
errors, with the writer's ops and the drill's events for the report's timeline."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from datakit.drills.checker import SetCheck
from datakit.drills.writer import Recorder


@dataclass
class DrillResult:
    drill: str
    stack: str
    durable: bool = True
    applies: bool = True
    reason: str | None = None  # why it does not apply, or why it failed
    check: SetCheck | None = None
    rto_s: float | None = None  # fault -> first acknowledged write of a new request
    rto_redundancy_s: float | None = None  # fault -> full redundancy again
    rpo_s: float | None = None  # restores: time of committed data not recovered
    error_window_s: list[float] | None = None  # [first, last] error, seconds after fault
    client_errors: dict[str, int] = field(default_factory=dict)
    events: list[tuple[float, str]] = field(default_factory=list)
    ops: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    started_unix: float | None = None  # the wall clock at the recorder's 0 (server charts)
    metrics: Any = None  # the stack's MetricsEndpoints, for the report's server charts

    @property
    def lost(self) -> int:
        return len(self.check.lost) if self.check else 0

    @property
    def passed(self) -> bool:
        if not self.applies:
            return True
        return self.reason is None and (self.check is None or self.check.valid or
                                        not self.durable)

    def as_json(self, with_ops: bool = False) -> dict:
        out = {"drill": self.drill, "stack": self.stack, "durable": self.durable,
               "applies": self.applies, "reason": self.reason, "passed": self.passed,
               "rto_s": self.rto_s, "rto_redundancy_s": self.rto_redundancy_s,
               "rpo_s": self.rpo_s, "error_window_s": self.error_window_s,
               "client_errors": self.client_errors,
               "events": [{"t": round(t, 4), "what": w} for t, w in self.events],
               "started_unix": self.started_unix,
               "notes": self.notes, **self.extra}
        check = self.check.as_json() if self.check else {}
        out.update({k: check.get(k, 0) for k in ("acked", "lost", "recovered", "unexpected")})
        out["check"] = check
        if with_ops:
            out["ops"] = [[round(o.start, 4), round(o.end, 4), o.status] for o in self.ops]
        return out


def measure(result: DrillResult, rec: Recorder, fault: str) -> None:
    """Fill RTO, the error window and the client errors from the writer's record."""
    result.events = list(rec.events)
    result.ops = sorted(rec.ops, key=lambda o: o.start)
    t_fault = rec.at(fault)
    errors = [o for o in result.ops if o.status != "ok"]
    result.client_errors = dict(Counter(o.error or o.status for o in errors).most_common(8))
    if t_fault is None:
        return
    after = [o.end for o in result.ops if o.status == "ok" and o.start >= t_fault]
    if after:
        result.rto_s = round(min(after) - t_fault, 3)
    late = [o for o in errors if o.end >= t_fault]
    if late:
        result.error_window_s = [round(min(o.start for o in late) - t_fault, 3),
                                 round(max(o.end for o in late) - t_fault, 3)]
    t_red = rec.at("redundant")
    if t_red is not None:
        result.rto_redundancy_s = round(t_red - t_fault, 3)
