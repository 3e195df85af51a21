"""One exit-code table for every command (datakit.errors.EXIT_CODES): each error class's code
is in it, none takes 2 (Click's usage error), and docs/cli.md shows the same table."""

from __future__ import annotations

import ast
import json
import re

from datakit.errors import EXIT_CODES, DatakitError
from datakit.paths import PROJECT_DIR

SRC = PROJECT_DIR / "src" / "datakit"


def exit_codes_declared() -> dict[str, int]:
    """`file:Class` -> N for every class body in src/ that says `exit_code = N`."""
    found = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
                        and any(getattr(t, "id", None) == "exit_code" for t in stmt.targets)):
                    found[f"{path.relative_to(SRC)}:{node.name}"] = stmt.value.value
    return found


def test_every_error_class_exits_with_a_code_of_the_table_and_none_with_2():
    declared = exit_codes_declared()
    assert "errors.py:DatakitError" in declared and len(declared) >= 4
    for where, code in declared.items():
        assert code in EXIT_CODES and code not in (0, 2), f"{where}: exit_code = {code}"


def test_click_usage_errors_keep_2():
    from typer.testing import CliRunner

    from datakit.cli import app

    assert CliRunner().invoke(app, ["status", "--no-such-option"]).exit_code == 2
    assert DatakitError.exit_code != 2


def test_docs_show_the_table():
    text = (PROJECT_DIR / "docs" / "cli.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.M))
    assert {int(k): v for k, v in rows.items()} == EXIT_CODES


def test_an_error_ends_in_one_line_unless_its_lines_are_separate_problems(capsys):
    from datakit.errors import report
    from datakit.topology.problems import TopologyError

    assert report(DatakitError("relation \"t\" does not exist\nLINE 1: SELECT")) == 1
    assert capsys.readouterr().err == 'error: relation "t" does not exist LINE 1: SELECT\n'
    report(TopologyError(["stack s: datakit:a: bad", "stack s: datakit:b: bad"]), as_json=True)
    out = capsys.readouterr()
    assert out.err.splitlines() == ["error: stack s: datakit:a: bad", "stack s: datakit:b: bad"]
    assert json.loads(out.out) == {"error": "stack s: datakit:a: bad\nstack s: datakit:b: bad",
                                   "exit_code": 1}
