"""The pytest plugin that collects the suite's results as rows: one per expectation a check
recorded (see expect.py), or one for a check that ended before recording (an error in a
fixture, an unexpected exception), so nothing that failed is missing from the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import pytest

from datakit.verify.expect import FAIL, RECORD_KEY


@dataclass
class Row:
    check: str
    node: str
    expected: str
    found: str
    verdict: str  # pass | warn | fail | skip
    waited_s: float
    test: str  # the pytest node id, for -k

    def as_dict(self) -> dict:
        return asdict(self)


def _param(nodeid: str) -> str:
    return nodeid.rsplit("[", 1)[1].rstrip("]") if nodeid.endswith("]") else "-"


def _check_name(nodeid: str) -> str:
    name = nodeid.split("::")[-1].split("[")[0]
    return name.removeprefix("test_").replace("_", " ")


def _one_line(report: pytest.TestReport) -> str:
    text = str(report.longrepr) if report.longrepr else "failed"
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        text = str(report.longrepr[2])
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("E ")]
    return (errors[-1][1:].strip() if errors else lines[-1]) if lines else "failed"


class Collector:
    """Registered with pytest.main(plugins=[...]); `rows` after the run."""

    def __init__(self, on_row: Callable[[Row], None] | None = None) -> None:
        self.on_row = on_row
        self.rows: list[Row] = []
        self.collect_errors: list[str] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(f"{report.nodeid or 'suite'}: {_one_line(report)}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            records = [v for k, v in report.user_properties if k == RECORD_KEY]
            for r in records:
                self._add(Row(test=report.nodeid, **r))
            if report.failed and not any(r["verdict"] == FAIL for r in records):
                self._row(report, FAIL)
            elif report.skipped and not records:
                self._row(report, "skip")
        elif report.failed or (report.when == "setup" and report.skipped):
            self._row(report, FAIL if report.failed else "skip")

    def _add(self, row: Row) -> None:
        self.rows.append(row)
        if self.on_row:
            self.on_row(row)

    def _row(self, report: pytest.TestReport, verdict: str) -> None:
        self._add(Row(_check_name(report.nodeid), _param(report.nodeid), "-",
                             _one_line(report), verdict, 0.0, report.nodeid))
