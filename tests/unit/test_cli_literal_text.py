"""Text from stack files and servers prints as it is: every table cell, title and line that
carries such a value is given one that Rich would otherwise read as markup (a closing tag
with nothing open raises MarkupError) and as an emoji code (":key:" became a key glyph),
and must come out literally, once per place it is shown. No stack is brought up: the
commands' sources of outputs and live answers are replaced."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from datakit.cli import app, console, err
from tests.support.stack_outputs import raw

VALUE = "[/red] :key: [bold]x"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def shown(text: str) -> str:
    """`text` as a reader sees it (colours dropped), checked for what must not be in it."""
    plain = ANSI.sub("", text)
    assert "\N{KEY}" not in plain and "[bold]x" in plain, plain
    return plain


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    """The CLI's own consoles (emoji off, as the commands print), wide enough that no cell
    wraps a value; a console made per call (migrate's) reads $COLUMNS."""
    for c in (console, err):
        monkeypatch.setattr(c, "_width", 1000)
    monkeypatch.setenv("COLUMNS", "1000")


def _run(args: list[str]):
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def test_status_table_lines_and_problems(monkeypatch):
    rows = [{key: VALUE for key in ("service", "name", "address", "role", "initial_role",
                                    "health", "patroni", "disagrees")}]
    whole = {"patroni": {"cluster": VALUE, "leader": VALUE, "quorum_standbys": [VALUE],
                         "timeline": 3},
             "etcd": {"leader": VALUE, "members": {VALUE: "healthy"}},
             "problems": [VALUE]}
    monkeypatch.setattr("datakit.stack.outputs.read", lambda stack: object())
    monkeypatch.setattr("datakit.status.live", lambda outputs: rows)
    monkeypatch.setattr("datakit.status.clusters", lambda outputs: whole)
    result = _run(["status", "--stack", "any"])
    assert result.exit_code == 1  # unhealthy and a problem: as before
    assert shown(result.stdout).count(VALUE) == 8 + 3 + 2  # the cells, Patroni's, etcd's
    assert shown(result.stderr).count(VALUE) == 1


def test_up_and_outputs_tables(monkeypatch):
    node = {"service": VALUE, "role": VALUE, "name": VALUE, "host": VALUE, "port": 5432,
            "testinfra": VALUE, "handle": {"kind": "local", "pid": 7}}
    doc = raw({"stack": VALUE, "nodes": [node],
               "secrets": {"postgres": {"app": VALUE}},
               "endpoints": {"postgres": {"write_dsn": VALUE, "read_dsn": VALUE},
                             "redis": {"master_name": VALUE, "sentinels": [VALUE]},
                             "kafka": {"bootstrap_servers": VALUE, "security_protocol": VALUE,
                                       "sasl_mechanism": VALUE}}})
    monkeypatch.setattr("datakit.stack.lifecycle.outputs", lambda stack: doc)
    result = _run(["outputs", "--stack", "any", "--show-secrets"])
    assert result.exit_code == 0
    # the title, 2 DSNs, the master's name and its sentinels, Kafka's 3; 5 node cells; 1 secret
    assert shown(result.stdout).count(VALUE) == 1 + 2 + 2 + 3 + 5 + 1


def test_verify_table_problems_and_summary():
    from datakit.verify import report
    from datakit.verify.results import Row
    from datakit.verify.runner import VerifyResult

    result = VerifyResult(stack=VALUE, rows=[Row(VALUE, VALUE, VALUE, VALUE, VALUE, 0.5, "t")],
                          problems=[VALUE])
    with console.capture() as out:
        report.show(result, console)
    assert shown(out.get()).count(VALUE) == 1 + 5 + 1 + 1  # title, cells, problem, summary


def test_drill_table():
    from datakit.drills import report
    from datakit.drills.result import DrillResult

    runs = [DrillResult(drill=VALUE, stack=VALUE, applies=False, reason=VALUE),
            DrillResult(drill=VALUE, stack=VALUE)]
    with console.capture() as out:
        console.print(report.table(runs))
    assert shown(out.get()).count(VALUE) == 3  # both drills' names and the reason


def test_migrate_status_table(capsys):
    from datakit.migrate.cli import _print_status
    from datakit.migrate.status import Row, StatusReport

    _print_status(StatusReport(rows=[Row(1, VALUE, VALUE, VALUE, 12, VALUE)],
                               current_version=1))
    assert shown(capsys.readouterr().out).count(VALUE) == 4  # file, state, applied at, detail


def test_load_tables_and_lines():
    from datakit.load.baseline_check import Check
    from datakit.load.progress import print_outcome

    final = SimpleNamespace(
        summary={"types": {VALUE: {"count": 1, "failures": 0, "p50_ms": 1.0, "p95_ms": 2.0,
                                   "p99_ms": 3.0, "p999_ms": None}}},
        checks=[Check(name=VALUE, measured=1.0, limit=2.0, op="<=", unit=VALUE)],
        saturated=False, faults=[{"fault": VALUE, "start_s": 1.0, "end_s": 2.0}])
    outcome = SimpleNamespace(
        options=SimpleNamespace(profile="baseline", stack=VALUE), final=final, passed=True,
        soak={"drift": {VALUE: {"start": 1, "end": 2, "growth_pct": 100}}},
        out_dir=Path(VALUE), summary_path=Path(VALUE, "summary.json"))
    with console.capture() as out:
        print_outcome(console, outcome)
    # the request type; the title, baseline, measured and limit; the fault; the drift;
    # both paths
    assert shown(out.get()).count(VALUE) == 1 + 4 + 1 + 1 + 2


def test_stack_progress_rows():
    from datakit.stack.progress import RunView

    view = RunView()
    view.rows[VALUE] = ["create…", 0.0, None]
    with err.capture() as out:
        err.print(view.render())
    assert shown(out.get()).count(VALUE) == 1
