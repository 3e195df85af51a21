"""The load report shades where the clients saw errors: contiguous failing windows of the
run's timeline, over every request type, become one shaded window each."""

from __future__ import annotations

from datakit.load.report import error_windows


def _points(fails_at: set[float], n: int = 12, offset: float = 0.0) -> list[dict]:
    return [{"t": round(t + offset, 1), "rps": 100.0, "fails": 3.0 if t in fails_at else 0.0,
             "p50_ms": 1.0, "p99_ms": 3.0} for t in range(n)]


def test_no_failure_no_window():
    assert error_windows({"read": _points(set())}) == []
    assert error_windows({}) == []


def test_contiguous_failing_seconds_are_one_window_each_run():
    timeline = {"write": _points({2, 3, 4, 8})}
    assert error_windows(timeline) == [(2, 5, "client errors"), (8, 9, "client errors")]


def test_request_types_are_merged_and_rounded_times_still_touch():
    # The timeline's times are offsets rounded to 0.1 s: 2.4, 3.5 are neighbours.
    timeline = {"read": [{"t": 2.4, "fails": 1.0}, {"t": 3.5, "fails": 0.0}],
                "write": [{"t": 3.5, "fails": 2.0}, {"t": 6.4, "fails": 1.0}]}
    assert error_windows(timeline) == [(2.4, 4.5, "client errors"),
                                       (6.4, 7.4, "client errors")]


def test_wider_windows_and_a_label():
    timeline = {"x": [{"t": 0.0, "fails": 1}, {"t": 10.0, "fails": 1}, {"t": 20.0, "fails": 0},
                      {"t": 30.0, "fails": 1}]}
    assert error_windows(timeline, 10, label="errors") == [(0.0, 20.0, "errors"),
                                                            (30.0, 40.0, "errors")]
