"""Drill results as a table (Rich), JSON for CI, and an HTML page per run: writes and
errors per second and write latency over time (matplotlib, load/charts.py), the outage and
each alert shaded, the drill's events marked, the servers' side from Prometheus, and the
alerts that fired and cleared."""

from __future__ import annotations

import html
import json
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from datakit.drills.result import DrillResult

BIN_S = 0.1


def table(results: list[DrillResult]) -> Table:
    """One row per run; the reason a drill does not apply is escaped (it may quote a server)."""
    t = Table("drill", "run", "passed", "acked", "lost", "recovered", "unexpected",
              "rto_s", "redundancy_s", "rpo_s", "error window", "client errors",
              title="drills")
    for i, r in enumerate(results, 1):
        j = r.as_json()
        if not r.applies:
            t.add_row(escape(r.drill), str(i), "n/a", "", "", "", "", "", "", "", "",
                      escape(r.reason or ""))
            continue
        window = "" if not r.error_window_s else f"{r.error_window_s[0]}..{r.error_window_s[1]}"
        t.add_row(escape(r.drill), str(i), "[green]yes[/]" if r.passed else "[red]NO[/]",
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


def _per_second(r: DrillResult) -> dict[str, list[tuple[float, float]]]:
    """Acknowledged writes and errors per second, in BIN_S bins, by the op's end."""
    t_end = max(o.end for o in r.ops)
    bins = int(t_end / BIN_S) + 1
    ok, bad = [0] * bins, [0] * bins
    for o in r.ops:
        (ok if o.status == "ok" else bad)[int(o.end / BIN_S)] += 1
    t = [round(i * BIN_S, 3) for i in range(bins)]
    return {"acknowledged": [(x, n / BIN_S) for x, n in zip(t, ok, strict=True)],
            "errors or unknown outcome": [(x, n / BIN_S) for x, n in zip(t, bad, strict=True)]}


def _latency(r: DrillResult, bin_s: float = 0.5) -> dict[str, list[tuple[float, float]]]:
    """The slowest write per `bin_s`, by its start (an op spanning the outage shows it)."""
    worst: dict[int, float] = {}
    for o in r.ops:
        i = int(o.start / bin_s)
        worst[i] = max(worst.get(i, 0.0), (o.end - o.start) * 1000)
    return {"slowest write": [(i * bin_s, v) for i, v in sorted(worst.items())]}


def windows(r: DrillResult) -> list[tuple[float, float, str]]:
    """The outage (fault to the first acknowledged new write) and each alert's span."""
    out = []
    fault = next((t for t, w in r.events if w == r.extra.get("fault_event")), None)
    if fault is not None and r.rto_s is not None:
        out.append((fault, fault + r.rto_s, "outage"))
    end = max((o.end for o in r.ops), default=0.0)
    for a in r.extra.get("alerts") or []:
        cleared = a["cleared_s"] if a["cleared_s"] is not None else end
        out.append((a["fired_s"], cleared, f"alert {a['alert']}"))
    return out


def _charts(r: DrillResult) -> str:
    from datakit.load.charts import line_chart
    from datakit.load.report import server_charts
    from datakit.load.server_series import charts as server_series

    if not r.ops:
        return "<p>(no writes recorded)</p>"
    shaded, marks = windows(r), [(t, what) for t, what in r.events]
    span = (0.0, max(max(o.end for o in r.ops), max((t for t, _ in r.events), default=0)))
    client = (line_chart("writes per second", _per_second(r), unit="writes/s",
                         windows=shaded, marks=marks, x_range=span)
              + line_chart("write latency", _latency(r), unit="ms", windows=shaded,
                           marks=marks, x_range=span))
    server, note = server_series(r.metrics, r.started_unix, r.started_unix + span[1],
                                 started=r.started_unix) if r.started_unix else ([], None)
    note_html = f"<p class=nodata>{html.escape(note)}</p>" if note else ""
    return (f"<div class=row>{client}</div><h3>Server side (Prometheus)</h3>{note_html}"
            f"{server_charts(server, shaded, span)}")


def _alerts(r: DrillResult) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(a['alert'])}</td><td>{html.escape(a['node'])}</td>"
        f"<td>{a['fired_s']}</td><td>{'still firing' if a['cleared_s'] is None else a['cleared_s']}"
        f"</td><td>{html.escape(a['summary'])}</td></tr>"
        for a in r.extra.get("alerts") or [])
    if not rows:
        watched = r.metrics is not None
        return f"<p>{'no alert fired' if watched else 'alerts not watched (no Prometheus)'}</p>"
    return ("<table><tr><th>alert</th><th>node</th><th>fired (s)</th><th>cleared (s)</th>"
            f"<th>summary</th></tr>{rows}</table>")


STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:3px 8px}.row{display:flex;flex-wrap:wrap;"
         "gap:1em}svg.chart{max-width:100%;height:auto}.nodata{color:#777}")


def write_html(results: list[DrillResult], path: Path) -> None:
    body = []
    for i, r in enumerate(results, 1):
        j = r.as_json()
        j.pop("check", None)
        verdict = "passed" if r.passed else f"FAILED: {r.reason}"
        body.append(f"<h2>{html.escape(r.drill)}, run {i}: {html.escape(verdict)}</h2>"
                    "<p>Shaded: the outage (the fault to the first acknowledged new write) "
                    "and each alert from firing to clearing; dashed lines: the drill's "
                    f"events. Seconds since the writer started.</p>{_charts(r)}"
                    f"<h3>Alerts</h3>{_alerts(r)}"
                    f"<h3>Figures</h3><pre>{html.escape(json.dumps(j, indent=1))}</pre>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<!doctype html><meta charset='utf-8'><title>datakit drills</title>"
                    f"<style>{STYLE}</style><body><h1>datakit drills</h1>"
                    + "".join(body) + "</body>")
