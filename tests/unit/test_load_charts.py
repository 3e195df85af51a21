"""The load report's charts: matplotlib's SVG inlined in the page, with axes, ticks, grid,
legend and shaded windows, server-side series beside the client's, and matplotlib loaded
only on the report's own path."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

from datakit.load import charts, report

SVG = "{http://www.w3.org/2000/svg}"


def _texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_a_chart_is_an_inline_svg_with_ticks_units_and_a_legend():
    svg = charts.line_chart("write: latency", {
        "p50": [(0, 1.0), (1, 1.5), (2, None), (3, 2.0)],
        "p99": [(0, 4.0), (1, 6.0), (2, 5.0), (3, 7.5)]}, unit="ms")
    assert svg.startswith("<svg ") and "<?xml" not in svg and "DOCTYPE" not in svg
    words = _texts(svg)
    assert {"write: latency", "ms", "seconds since start", "p50", "p99"} <= set(words)
    assert {"0", "2", "4", "6"} <= set(words)  # y ticks from 0 (every value is positive)
    assert svg.count('id="xtick_') >= 4 and svg.count('id="ytick_') >= 4


def test_windows_are_shaded_and_named_once_per_label():
    svg = charts.line_chart("x", {"req/s": [(t, 10.0) for t in range(30)]}, unit="/s",
                            windows=[(5, 8, "outage"), (12, 13, "outage"), (20, 25, "fault")])
    words = _texts(svg)
    assert words.count("outage") == 1 and words.count("fault") == 1
    assert svg.count('id="patch_') >= 3 + 1  # three bands beside the axes' background


def test_nothing_sampled_is_a_line_of_text_not_an_empty_chart():
    assert charts.line_chart("lag", {"r1": []}).startswith("<p")
    assert charts.line_chart("lag", {"r1": [(0, None)]}).startswith("<p")


def test_server_series_arrive_in_unix_time_and_are_drawn_from_the_run_start():
    started = 1_800_000_000.0
    series = charts.relative({"pg-1": [(started + 1, 5.0), (started + 2, 6.0)]}, started)
    assert series == {"pg-1": [(1.0, 5.0), (2.0, 6.0)]}
    page = report.server_charts([
        report.ServerChart("TPS", series, unit="per second", group="PostgreSQL"),
        report.ServerChart("ops/s", {"redis-1": [(1, 3.0)]}, group="Redis")],
        windows=[(1.2, 1.6, "outage")])
    assert page.count("<svg") == 2 and "<h3>PostgreSQL</h3>" in page


def test_the_report_has_charts_per_request_type_windows_and_a_server_section(tmp_path):
    points = [{"t": float(t), "rps": 100.0, "fails": 0.0, "p50_ms": 1.0, "p99_ms": 3.0}
              for t in range(10)]
    outcome = SimpleNamespace(out_dir=tmp_path, final=SimpleNamespace(
        saturated=False, timeline={"read": points, "write": points}))
    data = {"passed": True, "stack": "local", "profile": "baseline", "workload": "mixed",
            "users": 8, "processes": 1, "duration_s": 10, "steps": None, "counters": {},
            "totals": {"requests": 2000, "failures": 0, "rps": 200.0}, "checks": [],
            "types": {}, "soak": None,
            "files": {"locust_html": str(tmp_path / "locust.html")}}
    plain = report.html_report(outcome, data)
    assert plain.count("<svg") == 4 and "Server side" not in plain
    page = report.html_report(outcome, data, windows=[(3, 5, "outage")], server=[
        report.ServerChart("connections", {"pg-1": [(t, 5.0) for t in range(10)]})])
    assert page.count("<svg") == 5 and page.count(">outage<") == 5
    assert 'href="locust.html"' in page


def test_matplotlib_loads_with_the_report_only():
    code = ("import sys, datakit.load.runner, datakit.load.summary; "
            "assert 'matplotlib' not in sys.modules; import datakit.load.report; "
            "assert 'matplotlib' in sys.modules")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parent)
    assert ran.returncode == 0, ran.stderr


def test_a_series_that_stops_ends_and_starts_again_instead_of_sloping_across_the_gap():
    # Prometheus leaves the steps out where a node was down: 0-4 s, then 12-15 s.
    stopped = [(float(t), 1.0) for t in range(5)] + [(float(t), 9.0) for t in range(12, 16)]
    xs, ys = charts._values(stopped)
    assert [x for x, y in zip(xs, ys, strict=True) if y != y] == [8.0]  # one NaN, mid-gap
    svg = charts.line_chart("leader", {"pg-1": stopped, "pg-2": [(float(t), 2.0)
                                                                 for t in range(16)]})
    lines = [p.get("d") for p in ET.fromstring(svg).iter(f"{SVG}path")
             if (p.get("style") or "").find("stroke: #1f77b4") >= 0]
    assert lines and lines[0].count("M") == 2, lines  # two pieces, not one line
    # an evenly sampled series is left whole
    even = [(float(t), 1.0) for t in range(10)]
    assert charts._values(even) == ([float(t) for t in range(10)], [1.0] * 10)
