"""datakit's own HTML report of a load run: the baseline table, figures per request type,
and latency-over-time and throughput-over-time plots per request type (inline SVG, no
dependencies, one self-contained file)."""

from __future__ import annotations

import html
import os
from typing import Any

from datakit.load.progress import saturation_text

W, H, PAD = 560, 180, 40
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    return html.escape(str(v))


def svg_chart(title: str, xs: list[float], lines: dict[str, list[float | None]],
              unit: str) -> str:
    """A small line chart: one polyline per series, axes with min/max labels."""
    values = [v for series in lines.values() for v in series if v is not None]
    if not xs or not values:
        return f"<p>{html.escape(title)}: no samples</p>"
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y1 = max(values) * 1.1 or 1.0
    sx = lambda x: PAD + (x - x0) / (x1 - x0) * (W - 2 * PAD)  # noqa: E731
    sy = lambda y: H - PAD + 10 - y / y1 * (H - PAD - 20)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'class="chart"><text x="{PAD}" y="14" font-size="12">{html.escape(title)}'
             f'</text>',
             f'<line x1="{PAD}" y1="{sy(0)}" x2="{W - PAD}" y2="{sy(0)}" stroke="#999"/>',
             f'<line x1="{PAD}" y1="{sy(0)}" x2="{PAD}" y2="{sy(y1)}" stroke="#999"/>',
             f'<text x="2" y="{sy(y1) + 10}" font-size="10">{y1:.3g}</text>',
             f'<text x="2" y="{sy(0)}" font-size="10">0 {html.escape(unit)}</text>',
             f'<text x="{PAD}" y="{H - 8}" font-size="10">{x0:.0f} s</text>',
             f'<text x="{W - PAD - 20}" y="{H - 8}" font-size="10">{x1:.0f} s</text>']
    for i, (label, series) in enumerate(lines.items()):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, series, strict=False)
                          if y is not None)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                     f'points="{points}"/>')
        parts.append(f'<text x="{W - PAD - 110 + i * 55}" y="14" font-size="11" '
                     f'fill="{color}">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


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


def _plots(timeline: dict[str, list[dict[str, Any]]]) -> str:
    out = []
    for key, points in timeline.items():
        xs = [p["t"] for p in points]
        out.append(f"<h3>{html.escape(key)}</h3><div class=row>")
        out.append(svg_chart("latency", xs, {"p50": [p["p50_ms"] for p in points],
                                              "p99": [p["p99_ms"] for p in points]}, "ms"))
        out.append(svg_chart("throughput", xs, {"req/s": [p["rps"] for p in points],
                                                 "fail/s": [p["fails"] for p in points]},
                             "/s"))
        out.append("</div>")
    return "".join(out)


def _soak(soak: dict[str, Any] | None) -> str:
    if not soak or not soak.get("samples"):
        return ""
    samples = soak["samples"]
    xs = [s["t"] for s in samples]
    rss = {name: [s["rss_mb"].get(name) for s in samples] for name in samples[0]["rss_mb"]}
    drift = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v['start'])}</td>"
                    f"<td>{_fmt(v['end'])}</td><td>{_fmt(v['growth_pct'])} %</td></tr>"
                    for k, v in soak["drift"].items())
    charts = "".join(svg_chart(f"RSS {name}", xs, {"MB": series}, "MB")
                     for name, series in rss.items())
    conns = svg_chart("connections", xs, {
        "postgres": [s["pg_connections"] for s in samples],
        "redis": [s["redis_clients"] for s in samples]}, "")
    return (f"<h2>Soak: drift</h2><table><tr><th>series</th><th>start</th><th>end</th>"
            f"<th>growth</th></tr>{drift}</table><div class=row>{conns}{charts}</div>")


def _saturation(outcome) -> str:
    if not outcome.final.saturated:
        return ""
    return f"<p class=err style='font-size:14px'>{html.escape(saturation_text(outcome.final))}</p>"


def _beside(outcome, path: str) -> str:
    """A link that works wherever the report folder is opened or moved: relative to it."""
    return html.escape(os.path.relpath(path, outcome.out_dir))


def html_report(outcome, data: dict[str, Any]) -> str:
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
color:#a00}}.row{{display:flex;flex-wrap:wrap;gap:1em}}</style></head><body>
<h1>Load run on stack {html.escape(data['stack'])}: {verdict}</h1>
<p>profile {data['profile']}, workload {data['workload']}, {data['users']} users,
{data['processes']} process(es), {data['duration_s']} s;
{data['totals']['requests']} requests, {data['totals']['failures']} failures,
{data['totals']['rps']} operations/s.</p>
<h2>Baselines</h2>{_saturation(outcome)}{_checks_table(data['checks'])}{stress}
<h2>Request types (µs-resolution histograms)</h2>{_types_table(data['types'])}
<h2>Counters</h2><table>{counters}</table>
{_soak(data.get('soak'))}
<h2>Over time</h2>{_plots(outcome.final.timeline)}
<p>Locust's own report:
<a href="{_beside(outcome, data['files']['locust_html'])}">locust.html</a></p>
</body></html>"""
