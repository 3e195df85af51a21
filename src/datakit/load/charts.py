"""Line charts for datakit's HTML reports: axes with ticks and units, a grid, a legend, and
shaded windows (a fault, an outage), drawn by matplotlib and inlined as SVG, so a report
stays one self-contained file that opens offline and runs no JavaScript.

A chart takes series as `{name: [(t, value), ...]}` with `t` in seconds since the run's
start, whatever drew them: the load generator's own timeline, or server-side series from
Prometheus (`relative` turns their unix times into offsets). A value of None is a gap.

matplotlib costs about a second of CPU to import (see the report's note), so only the
report code imports this module, and the load runner imports the report only to write it.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Iterable, Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

Points = Sequence[tuple[float, float | None]]
Window = tuple[float, float, str]  # (start s, end s, label), e.g. (12.0, 14.3, "outage")

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf",
          "#7f7f7f"]
WINDOW_COLORS = ["#d62728", "#ff7f0e", "#9467bd"]
STYLE = {
    "svg.fonttype": "none",  # text stays text: small files, crisp in any browser
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "legend.fontsize": 8,
}


def relative(series: dict[str, Iterable[tuple[float, float]]], t0: float
             ) -> dict[str, list[tuple[float, float]]]:
    """Series with unix times (Prometheus's) as offsets from `t0` (the run's start)."""
    return {name: [(t - t0, v) for t, v in points] for name, points in series.items()}


def _values(points: Points) -> tuple[list[float], list[float]]:
    xs = [float(t) for t, _ in points]
    ys = [math.nan if v is None else float(v) for _, v in points]
    return _break_gaps(xs, ys)


def _break_gaps(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """A gap where samples are missing: Prometheus leaves out the steps a series had no
    value (a node down), and a line drawn across them would invent a slope. Missing means
    more than twice the series' usual step (its median) since the last sample."""
    steps = sorted(b - a for a, b in zip(xs, xs[1:], strict=False))
    if not steps:
        return xs, ys
    usual = steps[len(steps) // 2]
    out_x, out_y = xs[:1], ys[:1]
    for x, y in zip(xs[1:], ys[1:], strict=True):
        if usual > 0 and x - out_x[-1] > 2 * usual:
            out_x.append((x + out_x[-1]) / 2)
            out_y.append(math.nan)
        out_x.append(x)
        out_y.append(y)
    return out_x, out_y


def _finite(ys: list[float]) -> list[float]:
    return [y for y in ys if math.isfinite(y)]


def line_chart(title: str, series: dict[str, Points], *, unit: str = "",
               windows: Sequence[Window] = (), x_range: tuple[float, float] | None = None,
               x_label: str = "seconds since start", size: tuple[float, float] = (6.2, 2.5),
               marks: Sequence[tuple[float, str]] = ()) -> str:
    """One chart, as an `<svg>` element for an HTML page; `<p>` when nothing was sampled.

    Each series is a line in its own colour, named in the legend; each window a shaded
    band with its start marked, named in the legend too; each mark (t, label) a dashed
    line labelled at the top (a drill's events). `x_range` (e.g. 0 to the run's
    length) gives every chart of a report the same time axis, so they line up. The y
    axis starts at 0 when every value is positive.
    """
    drawn = {name: _values(points) for name, points in series.items() if points}
    values = [y for _, ys in drawn.values() for y in _finite(ys)]
    if not values:
        return f"<p class=nodata>{html.escape(title)}: no samples</p>"
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=size, layout="constrained")
        ax = fig.add_subplot()
        for i, (name, (xs, ys)) in enumerate(drawn.items()):
            ax.plot(xs, ys, color=COLORS[i % len(COLORS)], linewidth=1.4, label=name,
                    marker="o" if len(xs) == 1 else None, markersize=3)
        _shade(ax, windows)
        for t, label in marks:
            ax.axvline(float(t), color="#444444", linestyle="--", linewidth=0.7)
            ax.annotate(label, (float(t), 1.0), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=7, color="#444444")
        ax.set_title(title)
        ax.set_xlabel(x_label)
        if unit:
            ax.set_ylabel(unit)
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        if min(values) >= 0:
            ax.set_ylim(bottom=0, top=max(values) * 1.08 or 1.0)
        ax.margins(x=0.01)
        if x_range:
            ax.set_xlim(*x_range)
        # A chart of every node has a score of lines: a column per 8 keeps the legend
        # within the chart's height instead of running below it.
        entries = len(ax.get_legend_handles_labels()[0])
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False,
                  borderaxespad=0.2, handlelength=1.5, ncols=max(1, math.ceil(entries / 8)))
        return _svg(fig, title)


def _shade(ax, windows: Sequence[Window]) -> None:
    """A band per window; windows of one label share a colour and one legend entry."""
    colors: dict[str, str] = {}
    for t0, t1, label in windows:
        new = label not in colors
        color = colors.setdefault(label, WINDOW_COLORS[len(colors) % len(WINDOW_COLORS)])
        ax.axvspan(float(t0), float(t1), color=color, alpha=0.15, linewidth=0,
                   label=label if new else None)
        ax.axvline(float(t0), color=color, alpha=0.7, linewidth=0.9)  # a short one shows too


def _svg(fig: Figure, title: str) -> str:
    """The figure as an inline `<svg>`: without the XML prolog and DOCTYPE, with a name
    for screen readers."""
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    text = out.getvalue()
    svg = text[text.index("<svg"):]
    return svg.replace("<svg ", f'<svg class="chart" role="img" aria-label="'
                                f'{html.escape(title)}" ', 1)
