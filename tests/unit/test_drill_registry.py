"""The drills are named once (datakit.choices: the `Drill` literal) and everything else follows that
list: the registry finds one Drill per name, the RTO baselines are keyed by the names, the
CLI refuses any other name in one line; and the skeleton (harness.py) runs a drill's hooks
in order and checks every acknowledged write back."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datakit import drills
from datakit.cli import app
from datakit.drills.context import DrillContext
from datakit.drills.harness import Drill
from datakit.errors import DatakitError
from datakit.stack.schema import StackOutputs
from datakit.topology.baselines import DRILLS, Baselines

DRILLS_DIR = Path(drills.__file__).parent


def test_every_named_drill_has_one_drill_class_with_its_own_fault():
    assert set(drills.MODULES) == set(DRILLS)
    for name in DRILLS:
        cls = drills.drill_class(name)
        assert issubclass(cls, Drill) and cls.fault is not Drill.fault, name


def test_the_rto_baselines_are_keyed_by_the_drill_names():
    timed = {name for name in DRILLS if drills.drill_class(name).measures_rto}
    assert set(Baselines().rto_s) == timed
    assert "replica-slow-link" not in timed  # nothing is down: latency, not recovery


def test_an_unknown_drill_is_refused_in_one_line_naming_the_drills():
    with pytest.raises(DatakitError) as err:
        drills.drill_class("postgres-explode")
    assert "\n" not in str(err.value) and all(n in str(err.value) for n in DRILLS)
    refused = CliRunner().invoke(app, ["drill", "postgres-explode"])
    assert refused.exit_code == 2  # a usage error, before anything runs
    assert all(n in " ".join(refused.output.split()) for n in DRILLS)


def test_no_drill_module_imports_another_drill():
    modules = {m.rsplit(".", 1)[1] for m in drills.MODULES.values()}
    for name in modules:
        tree = ast.parse((DRILLS_DIR / f"{name}.py").read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    and n.module in ("datakit.drills", None) for a in n.names}
        imported |= {n.module.rsplit(".", 1)[1] for n in ast.walk(tree)
                     if isinstance(n, ast.ImportFrom) and (n.module or "").startswith(
                         "datakit.drills.")}
        assert not imported & (modules - {name}), f"{name} imports {imported & modules}"


class _Memory:
    """A target that keeps what it was told; `lose` drops ids as a failed node would."""

    def __init__(self):
        self.kept: set[int] = set()
        self.lock = threading.Lock()

    def write(self, op_id: int) -> None:
        with self.lock:
            self.kept.add(op_id)

    def reset(self) -> None:
        pass

    def read_ids(self) -> set[int]:
        with self.lock:
            return set(self.kept)

    def lose(self, ids: set[int]) -> None:
        with self.lock:
            self.kept -= ids


class _Drill(Drill):
    def setup(self):
        self.calls = ["setup"]
        self.memory = _Memory()
        return self.memory

    def fault(self):
        self.calls.append("fault")
        self.event("kill")
        self.memory.lose({1, 2})

    def watch(self):
        self.calls.append("watch")
        self.event("redundant")


def _outputs() -> StackOutputs:
    return StackOutputs.model_validate({"stack": "unit", "nodes": [], "endpoints": {
        "postgres": {"write_dsn": "", "read_dsn": "", "database": "", "app_user": ""},
        "redis": {}, "kafka": {"bootstrap_servers": "", "security_protocol": "",
                               "sasl_mechanism": "", "username": ""}}})


def test_the_skeleton_runs_the_hooks_in_order_and_finds_each_lost_write():
    drill = _Drill("unit-drill", DrillContext("unit", _outputs(), warmup_s=0.05, tail_s=0.05))
    result = drill.run()
    assert drill.calls == ["setup", "fault", "watch"]
    assert result.drill == "unit-drill" and result.check.acked >= 2
    assert result.check.lost == [1, 2] and result.reason == "2 acknowledged writes lost"
    assert result.rto_s is not None and result.rto_redundancy_s is not None
    assert [w for _, w in result.events] == ["kill", "redundant"]
