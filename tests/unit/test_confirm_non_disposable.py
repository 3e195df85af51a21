"""`up` and `down` on a stack that is not disposable ask first on a terminal and, without
one, go ahead only with --yes; refused, they have not called the engine. The stack file is
a real one (local's, marked not disposable); the engine's entry is replaced by a recorder
that fails, so a broken guard fails the test instead of bringing a stack up."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from typer.testing import CliRunner

from datakit import cli
from datakit.paths import PROJECT_DIR
from datakit.toolchain import automation


@pytest.fixture
def kept_stack():
    """A stack file like local's but not disposable; removed afterwards."""
    name = f"unit-kept-{os.getpid()}"
    config = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.local.yaml").read_text())
    config["config"]["datakit:disposable"] = "false"
    path = PROJECT_DIR / "stacks" / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    yield name
    path.unlink()


@pytest.fixture
def engine_calls(monkeypatch):
    calls: list[str] = []

    def engine(stack, work_dir):
        calls.append(stack)
        raise AssertionError(f"the engine was called for {stack}")

    monkeypatch.setattr(automation, "project_stack", engine)
    monkeypatch.delenv("DATAKIT_YES", raising=False)
    return calls


def _state_of(name: str) -> list:
    state = PROJECT_DIR / ".datakit" / "state" / ".pulumi" / "stacks" / "datakit"
    return list(state.glob(f"{name}.json*"))


@pytest.mark.parametrize("command", ["up", "down"])
def test_without_a_terminal_a_kept_stack_needs_yes(kept_stack, engine_calls, command):
    result = CliRunner().invoke(cli.app, [command, "--stack", kept_stack])
    assert result.exit_code == 1
    assert "not disposable" in result.stderr and "--yes" in result.stderr
    assert engine_calls == [] and _state_of(kept_stack) == []


def test_the_refusal_is_json_under_json(kept_stack, engine_calls):
    result = CliRunner().invoke(cli.app, ["down", "--stack", kept_stack, "--json"])
    assert "--yes" in json.loads(result.stdout)["error"] and engine_calls == []


@pytest.mark.parametrize("command", ["up", "down"])
def test_on_a_terminal_a_kept_stack_is_asked_about_and_no_leaves_it(
        kept_stack, engine_calls, monkeypatch, command):
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: True)
    result = CliRunner().invoke(cli.app, [command, "--stack", kept_stack], input="n\n")
    assert result.exit_code == 1
    assert "which is not disposable? [y/N]" in result.stderr
    assert "not confirmed; nothing was changed" in result.stderr
    assert engine_calls == [] and _state_of(kept_stack) == []


def test_yes_or_a_disposable_stack_goes_ahead_without_asking(kept_stack, engine_calls):
    cli._confirm(kept_stack, "update", yes=True)
    cli._confirm("local", "destroy", yes=False)  # local is disposable: README's lines run
    assert engine_calls == []
