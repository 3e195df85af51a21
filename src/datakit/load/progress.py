"""The live progress line of a load run and the closing baseline table (Rich). Names from
the stack file (baselines, queries) and paths are escaped: they print as they are."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def progress_text(p: dict[str, Any]) -> str:
    return (f"load: {p.get('elapsed_s', 0):5.1f}/{p.get('duration_s', 0):.0f} s  "
            f"{p.get('users', 0)}/{p.get('target_users', 0)} users  "
            f"{p.get('rps', 0):7.1f} req/s  {p.get('requests', 0)} requests  "
            f"{p.get('failures', 0)} failures")


@contextmanager
def live_progress(console: Console, enabled: bool = True) -> Iterator:
    if not enabled:
        yield None
        return
    with console.status("load: starting Locust…") as status:
        yield lambda p: status.update(progress_text(p))


def checks_table(checks, title: str) -> Table:
    table = Table("baseline", "measured", "limit", "result", title=title)
    for c in checks:
        style = {"pass": "green", "FAIL": "red"}.get(c.status, "dim")
        measured = "–" if c.measured is None else f"{c.measured:g} {c.unit}".strip()
        table.add_row(escape(c.name), escape(measured),
                      escape(f"{c.op} {c.limit:g} {c.unit}".strip()),
                      f"[{style}]{c.status}[/]")
    return table


def saturation_text(step) -> str:
    """Why a saturated run judges the client, not the stack, with the figures that show it:
    a busy generator process (CPU) or a process that waited for a core (a busy machine)."""
    c = step.summary["client"]
    pool = next((k.measured for k in step.checks if k.name == "postgres pool wait p95"), None)
    cpu_bound = next(k.status == "FAIL" for k in step.checks if k.name == "client CPU p50")
    cause = ("its process was CPU-bound" if cpu_bound else
             f"its process waited for a core: the machine's load average was "
             f"{c['load_average_p50']} on {c['cores']} cores")
    return (f"SATURATED: the load generator could not keep up ({cause}; CPU p50 "
            f"{c['cpu_percent_p50']} % of a core, gevent loop lag p99 {c['loop_lag_p99_ms']} "
            f"ms, PostgreSQL pool wait p95 {pool} ms). Latencies include time queued in the "
            "client, so they do not judge the stack: use fewer --users, more --processes, "
            "or a quieter machine.")


def print_outcome(console: Console, outcome) -> None:
    o = outcome.options
    if o.profile == "stress":
        steps = Table("users", "req/s", "baselines", title="stress steps")
        for s in outcome.steps:
            steps.add_row(str(s.users), f"{s.summary['totals']['rps']:g}",
                          "[green]held[/]" if s.passed else "[red]broke[/]")
        console.print(steps)
        console.print(f"knee: {outcome.knee_users or 'none (the first step already broke)'}"
                      " users")
    final = outcome.final
    types = Table("request type", "count", "fail", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms",
                  title="request types (µs histograms)")
    for key, t in final.summary["types"].items():
        types.add_row(escape(key), str(t["count"]), str(t["failures"]),
                      *(f"{t[k]:g}" if t[k] is not None else "–"
                        for k in ("p50_ms", "p95_ms", "p99_ms", "p999_ms")))
    console.print(types)
    verdict = "[green]PASSED[/]" if outcome.passed else "[red]FAILED[/]"
    console.print(checks_table(final.checks, f"baselines of stack {escape(o.stack)}"))
    if outcome.soak:
        for label, d in outcome.soak["drift"].items():
            console.print(f"drift {label}: {d['start']} -> {d['end']} ({d['growth_pct']} %)",
                          markup=False)
    for f in final.faults:
        console.print(f"{f['fault']}: from {f['start_s']:g} s to {f['end_s']:g} s of the run, "
                      "shaded on the report's charts", markup=False, highlight=False)
    if final.saturated:
        console.print(saturation_text(final), markup=False, highlight=False)
    console.print(f"{verdict}  report: {escape(str(outcome.out_dir / 'report.html'))}  "
                  f"summary: {escape(str(outcome.summary_path))}")
