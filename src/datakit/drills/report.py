"""Drill results as a table (Rich), JSON for CI, and an HTML page per run with an inline
SVG timeline: acknowledged writes per 100 ms (bars), write latency (dots, red for
errors), the drill's events, and the outage window (fault to first write) shaded."""

from __future__ import annotations

import html
import json
from pathlib import Path

from rich.table import Table

from datakit.drills.result import DrillResult

BIN_S = 0.1


def table(results: list[DrillResult]) -> Table:
    t = Table("drill", "run", "passed", "acked", "lost", "recovered", "unexpected",
              "rto_s", "redundancy_s", "rpo_s", "error window", "client errors",
              title="drills")
    for i, r in enumerate(results, 1):
        j = r.as_json()
        if not r.applies:
            t.add_row(r.drill, str(i), "n/a", "", "", "", "", "", "", "", "", r.reason or "")
            continue
        window = "" if not r.error_window_s else f"{r.error_window_s[0]}..{r.error_window_s[1]}"
        t.add_row(r.drill, str(i), "[green]yes[/]" if r.passed else "[red]NO[/]",
                  str(j["acked"]), str(j["lost"]), str(j["recovered"]), str(j["unexpected"]),
                  _f(r.rto_s), _f(r.rto_redundancy_s), _f(r.rpo_s), window,
                  str(sum(r.client_errors.values())))
    return t


def _f(v) -> str:
    return "" if v is None else f"{v:.3f}"


def as_json(results: list[DrillResult], summary: dict | None = None) -> dict:
    """The runs and their summary, as `--json` prints them and the JSON report holds them."""
    return {"runs": [r.as_json() for r in results], "summary": summary or {}}


def write_json(results: list[DrillResult], path: Path, summary: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(as_json(results, summary), indent=2, default=str))


def timeline_svg(r: DrillResult, width: int = 900, height: int = 260) -> str:
    if not r.ops:
        return "<p>(no writes recorded)</p>"
    t_end = max(max(o.end for o in r.ops), max((t for t, _ in r.events), default=0)) + 0.2
    bins = [0] * (int(t_end / BIN_S) + 1)
    for o in r.ops:
        if o.status == "ok":
            bins[int(o.end / BIN_S)] += 1
    top = max(bins) or 1
    lat_max = max(o.end - o.start for o in r.ops) or 0.001
    x = lambda t: 40 + (width - 60) * t / t_end  # noqa: E731
    half = (height - 40) / 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="10">']
    fault = next((t for t, w in r.events if w.startswith(("kill", "fence"))), None)
    if fault is not None and r.rto_s is not None:
        w = x(fault + r.rto_s) - x(fault)
        parts.append(f'<rect x="{x(fault):.1f}" y="10" width="{w:.1f}" '
                     f'height="{height - 30}" fill="#fdd" />')
    for i, n in enumerate(bins):
        h = half * n / top
        bar = max(x(BIN_S) - x(0) - 0.5, 0.5)
        parts.append(f'<rect x="{x(i * BIN_S):.1f}" y="{10 + half - h:.1f}" '
                     f'width="{bar:.1f}" height="{h:.1f}" fill="#69c"/>')
    for o in r.ops[:: max(1, len(r.ops) // 3000)]:
        lat = o.end - o.start
        y = height - 20 - half * lat / lat_max
        color = "#2a2" if o.status == "ok" else "#d22"
        parts.append(f'<circle cx="{x(o.start):.1f}" cy="{y:.1f}" r="1.5" fill="{color}"/>')
    for t, what in r.events:
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="10" y2="{height - 20}" '
                     'stroke="#444" stroke-dasharray="3,3"/>'
                     f'<text x="{x(t) + 2:.1f}" y="20" transform="rotate(90 {x(t) + 2:.1f} 20)">'
                     f'{html.escape(what)}</text>')
    parts.append(f'<text x="2" y="18">{top}/{BIN_S:g}s</text>'
                 f'<text x="2" y="{height - 22}">latency ≤{lat_max * 1000:.0f} ms</text>'
                 f'<text x="{width - 60}" y="{height - 5}">{t_end:.1f} s</text></svg>')
    return "".join(parts)


def write_html(results: list[DrillResult], path: Path) -> None:
    body = []
    for i, r in enumerate(results, 1):
        j = r.as_json()
        j.pop("check", None)
        body.append(f"<h2>{html.escape(r.drill)} — run {i}</h2>"
                    "<p>blue: acknowledged writes per 100 ms; dots: latency per write "
                    "(red: error or unknown outcome); shaded: outage window (fault to the "
                    "first acknowledged new write)</p>"
                    f"{timeline_svg(r)}<pre>{html.escape(json.dumps(j, indent=1))}</pre>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<!doctype html><meta charset='utf-8'><title>datakit drills</title>"
                    "<body style='font-family:sans-serif'><h1>datakit drills</h1>"
                    + "".join(body) + "</body>")
