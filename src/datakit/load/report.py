"""datakit's own HTML report of a load run: the baseline table, figures per request type,
latency-over-time and throughput-over-time charts per request type, and, when given,
server-side series (e.g. from Prometheus) beside them, with fault or outage windows shaded
on every chart. One self-contained file: the charts are inline SVG (load/charts.py)."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datakit.load.charts import Points, Window, line_chart
from datakit.load.progress import saturation_text


@dataclass(frozen=True)
class ServerChart:
    """One chart of server-side series: `{series name: [(t, value), ...]}`, `t` in seconds
    since the run's start (charts.relative converts Prometheus's unix times)."""

    title: str
    series: dict[str, Points]
    unit: str = ""
    group: str = "server"  # the heading it goes under, e.g. "PostgreSQL", "Kafka"


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    return html.escape(str(v))


def _checks_table(checks: list[dict[str, Any]]) -> str:
    rows = "".join(
        f'<tr class="{c["status"].lower().replace("/", "")}"><td>{html.escape(c["name"])}</td>'
        f'<td>{_fmt(c["measured"])} {html.escape(c["unit"])}</td>'
        f'<td>{html.escape(c["op"])} {_fmt(c["limit"])} {html.escape(c["unit"])}</td>'
        f'<td>{c["status"]}</td></tr>' for c in checks)
    return ("<table><tr><th>baseline</th><th>measured</th><th>limit</th><th>result</th></tr>"
            f"{rows}</table>")


def _types_table(types: dict[str, dict[str, Any]]) -> str:
    cols = ["count", "failures", "rps", "p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms"]
    head = "".join(f"<th>{c}</th>" for c in cols)
    rows = []
    for key, t in types.items():
        cells = "".join(f"<td>{_fmt(t[c])}</td>" for c in cols)
        errors = "<br>".join(f"{n}× {html.escape(text)}" for text, n in t["errors"].items())
        rows.append(f"<tr><td>{html.escape(key)}</td>{cells}<td class=err>{errors}</td></tr>")
    return (f"<table><tr><th>request type</th>{head}<th>errors</th></tr>{''.join(rows)}"
            "</table>")


def _plots(timeline: dict[str, list[dict[str, Any]]], windows: Sequence[Window],
           span: tuple[float, float]) -> str:
    out = []
    for key, points in timeline.items():
        def series(field: str, points=points) -> list[tuple[float, float | None]]:
            return [(p["t"], p[field]) for p in points]

        out.append(f"<h3>{html.escape(key)}</h3><div class=row>")
        out.append(line_chart(f"{key}: latency", {"p50": series("p50_ms"),
                                                   "p99": series("p99_ms")},
                              unit="ms", windows=windows, x_range=span))
        out.append(line_chart(f"{key}: throughput", {"requests/s": series("rps"),
                                                      "failures/s": series("fails")},
                              unit="per second", windows=windows, x_range=span))
        out.append("</div>")
    return "".join(out)


def server_charts(charts: Sequence[ServerChart], windows: Sequence[Window] = (),
                  span: tuple[float, float] | None = None) -> str:
    """The server side, one heading per group, charts beside each other."""
    groups: dict[str, list[ServerChart]] = {}
    for chart in charts:
        groups.setdefault(chart.group, []).append(chart)
    return "".join(
        f"<h3>{html.escape(group)}</h3><div class=row>"
        + "".join(line_chart(c.title, c.series, unit=c.unit, windows=windows, x_range=span)
                  for c in members)
        + "</div>" for group, members in groups.items())


def _soak(soak: dict[str, Any] | None, windows: Sequence[Window]) -> str:
    if not soak or not soak.get("samples"):
        return ""
    samples = soak["samples"]
    drift = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v['start'])}</td>"
                    f"<td>{_fmt(v['end'])}</td><td>{_fmt(v['growth_pct'])} %</td></tr>"
                    for k, v in soak["drift"].items())
    rss = {name: [(s["t"], s["rss_mb"].get(name)) for s in samples]
           for name in samples[0]["rss_mb"]}
    charts = line_chart("resident memory", rss, unit="MB", windows=windows)
    conns = line_chart("connections", {
        "postgres": [(s["t"], s["pg_connections"]) for s in samples],
        "redis": [(s["t"], s["redis_clients"]) for s in samples]}, unit="open",
        windows=windows)
    return (f"<h2>Soak: drift</h2><table><tr><th>series</th><th>start</th><th>end</th>"
            f"<th>growth</th></tr>{drift}</table><div class=row>{conns}{charts}</div>")


def _saturation(outcome) -> str:
    if not outcome.final.saturated:
        return ""
    return f"<p class=err style='font-size:14px'>{html.escape(saturation_text(outcome.final))}</p>"


def error_windows(timeline: dict[str, list[dict[str, Any]]], window_s: float = 1.0,
                  label: str = "client errors") -> list[Window]:
    """The stretches of the run where clients saw errors, as windows to shade: each run of
    contiguous timeline windows (`window_s` wide) in which any request type failed, from
    the first such window's start to the last one's end."""
    failing = sorted({p["t"] for points in timeline.values() for p in points
                      if (p.get("fails") or 0) > 0})
    out: list[Window] = []
    for t in failing:
        # A point's `t` is rounded to 0.1 s: neighbours are `window_s` apart, give or take.
        if out and t - out[-1][1] < window_s / 2:
            out[-1] = (out[-1][0], t + window_s, label)
        else:
            out.append((t, t + window_s, label))
    return out


def _span(timeline: dict[str, list[dict[str, Any]]], data: dict[str, Any]
          ) -> tuple[float, float]:
    """One time axis for every chart: from the start to the last window or the run's end."""
    last = max((p["t"] for points in timeline.values() for p in points), default=0.0)
    run_s = float(data.get("duration_s") or 0) + float(data.get("warmup_s") or 0)
    return 0.0, max(run_s, last) or 1.0


def _beside(outcome, path: str) -> str:
    """A link that works wherever the report folder is opened or moved: relative to it."""
    return html.escape(os.path.relpath(path, outcome.out_dir))


def html_report(outcome, data: dict[str, Any], *, windows: Sequence[Window] = (),
                server: Sequence[ServerChart] = (), server_note: str | None = None) -> str:
    """The page. `windows` ([(t0, t1, label)], seconds since the start) are shaded on
    every chart; `server` charts go in a section of their own after the client's."""
    span = _span(outcome.final.timeline, data)
    warmup = float(data.get("warmup_s") or 0)
    if warmup:
        windows = [(0.0, warmup, "warm-up (not judged)"), *windows]
    note = f"<p class=nodata>{html.escape(server_note)}</p>" if server_note else ""
    section = (f"<h2>Server side (Prometheus)</h2>{note}{server_charts(server, windows, span)}"
               if server or server_note else "")
    verdict = "PASSED" if data["passed"] else "FAILED"
    stress = ""
    if data.get("steps"):
        rows = "".join(f"<tr><td>{s['users']}</td><td>{s['rps']}</td>"
                       f"<td>{'held' if s['passed'] else 'broke'}</td></tr>"
                       for s in data["steps"])
        stress = (f"<h2>Stress steps (knee: {data['knee_users']} users)</h2><table><tr>"
                  f"<th>users</th><th>req/s</th><th>baselines</th></tr>{rows}</table>")
    counters = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>"
                       for k, v in data["counters"].items())
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>datakit load: {html.escape(data['stack'])} {verdict}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
tr.fail td{{background:#fdd}}tr.pass td{{background:#dfd}}.err{{font-size:11px;text-align:left;
color:#a00}}.row{{display:flex;flex-wrap:wrap;gap:1em}}svg.chart{{max-width:100%;height:auto}}
h3{{margin:1.2em 0 .3em}}.nodata{{color:#777}}</style></head><body>
<h1>Load run on stack {html.escape(data['stack'])}: {verdict}</h1>
<p>profile {data['profile']}, workload {data['workload']}, {data['users']} users,
{data['processes']} process(es), {data['duration_s']} s judged after a
{warmup:g} s warm-up;
{data['totals']['requests']} requests, {data['totals']['failures']} failures,
{data['totals']['rps']} operations/s.</p>
<h2>Baselines</h2>{_saturation(outcome)}{_checks_table(data['checks'])}{stress}
<h2>Request types (µs-resolution histograms)</h2>{_types_table(data['types'])}
<h2>Counters</h2><table>{counters}</table>
{_soak(data.get('soak'), windows)}
<h2>Over time</h2>{_plots(outcome.final.timeline, windows, span)}
{section}
<p>Locust's own report:
<a href="{_beside(outcome, data['files']['locust_html'])}">locust.html</a></p>
</body></html>"""
