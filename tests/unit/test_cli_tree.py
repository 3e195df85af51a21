"""Every command of the Click tree follows the same rules: walked, not listed by hand, so a
new command is held to them the day it is added. No stack is brought up: a command that
needs one is run on a stack that does not exist, and must say so in the same shape."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from datakit.cli import app

MISSING = "no-such-stack"


def leaves(group, path: tuple[str, ...] = ()):
    """(path, command) for every command under `group`, subgroups walked. (Typer carries
    its own copy of Click, so a group is known by its commands, not by click's class.)"""
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            yield from leaves(cmd, (*path, name))
        else:
            yield (*path, name), cmd


TREE = typer.main.get_command(app)
COMMANDS = dict(leaves(TREE))


def options(cmd) -> dict:
    """Each option flag of `cmd` (`--stack`, `-s`) -> its parameter."""
    return {opt: p for p in cmd.params if p.param_type_name == "option" for opt in p.opts}


def _args(path: tuple[str, ...], cmd, tmp_path) -> list[str]:
    """A command line for `path` that needs no running stack: its arguments, and the
    missing stack where it takes one."""
    given = {("drill",): ["postgres-failover"], ("logs",): ["pg-1"],
             ("migrate", "baseline"): ["1"],
             ("migrate", "create"): ["add_thing", "--migrations-dir", str(tmp_path)]}
    args = [*path, *given.get(path, [])]
    if "--stack" in options(cmd):
        args += ["--stack", MISSING]
    return [*args, "--json"]


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("DATAKIT_DSN", "DATAKIT_OUTPUTS_FILE", "DATAKIT_STACK"):
        monkeypatch.delenv(name, raising=False)


def test_every_command_has_json():
    missing = [" ".join(p) for p, cmd in COMMANDS.items() if "--json" not in options(cmd)]
    assert not missing, f"commands without --json: {missing}"


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_json_on_stdout_is_parseable_even_on_failure(path, tmp_path, clean_env):
    args = _args(path, COMMANDS[path], tmp_path)
    result = CliRunner().invoke(app, args)
    try:
        doc = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"datakit {' '.join(args)}: stdout is not JSON:\n{result.stdout}"
                    f"\nstderr:\n{result.stderr}")
    if isinstance(doc, dict) and "error" in doc:  # a failure, in the same shape everywhere
        assert doc["exit_code"] == result.exit_code != 0
        assert result.stderr.startswith("error: ")
        if "--stack" in options(COMMANDS[path]):
            assert MISSING in doc["error"]


def test_outputs_show_secrets_alone_prints_no_json(clean_env):
    # --show-secrets says what to show, not how: without --json it stays the tables.
    result = CliRunner().invoke(app, ["outputs", "--stack", MISSING, "--show-secrets"])
    assert result.exit_code == 1 and result.stdout == ""
    assert "no such stack file" in result.stderr


def test_every_stack_option_is_s_stack_defaulting_to_local():
    for path, cmd in COMMANDS.items():
        opts = options(cmd)
        if "--stack" not in opts:
            continue
        stack = opts["--stack"]
        assert "-s" in stack.opts, f"datakit {' '.join(path)}: --stack has no -s"
        # migrate's default is taken only when no DSN is given, so it is shown, not set
        assert "local" in (stack.default, stack.show_default), " ".join(path)


def test_migrate_takes_the_dsn_then_the_stack_then_datakit_dsn_then_local(monkeypatch):
    from datakit.errors import DatakitError
    from datakit.migrate.connection import stack_for

    monkeypatch.delenv("DATAKIT_DSN", raising=False)
    assert stack_for() == "local"
    assert stack_for(stack="dev") == "dev"
    assert stack_for(dsn="host=x") is None
    monkeypatch.setenv("DATAKIT_DSN", "host=y")
    assert stack_for() is None
    assert stack_for(stack="dev") == "dev"
    with pytest.raises(DatakitError, match="either --dsn or --stack"):
        stack_for(dsn="host=x", stack="dev")


EXEMPT_FROM_ENV = {"--help", "--version", "--install-completion", "--show-completion"}


def test_every_option_is_settable_from_its_datakit_variable_shown_in_help():
    for path, cmd in [((), TREE), *COMMANDS.items()]:
        for flag, param in options(cmd).items():
            if not flag.startswith("--") or flag in EXEMPT_FROM_ENV:
                continue
            expected = "DATAKIT_" + flag[2:].upper().replace("-", "_")
            assert param.envvar == expected and param.show_envvar, \
                f"datakit {' '.join(path)} {flag}: envvar {param.envvar!r}, not {expected}"


def test_a_datakit_variable_sets_the_option(clean_env, monkeypatch):
    monkeypatch.setenv("DATAKIT_STACK", MISSING)
    monkeypatch.setenv("DATAKIT_JSON", "1")
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 1
    assert MISSING in json.loads(result.stdout)["error"]
    # the command line wins over the variable
    result = CliRunner().invoke(app, ["status", "--stack", "other-missing-stack"])
    assert "other-missing-stack" in json.loads(result.stdout)["error"]


def test_migrate_reads_the_command_line_before_datakit_dsn_and_datakit_stack(
        clean_env, monkeypatch):
    # --stack on the command line beats $DATAKIT_DSN; $DATAKIT_DSN beats $DATAKIT_STACK.
    monkeypatch.setenv("DATAKIT_DSN", "host=/nonexistent-socket-dir port=1 connect_timeout=1")
    monkeypatch.setenv("DATAKIT_STACK", "stack-from-env")
    by_stack = CliRunner().invoke(app, ["migrate", "status", "--stack", MISSING, "--json"])
    assert MISSING in json.loads(by_stack.stdout)["error"]
    by_dsn = CliRunner().invoke(app, ["migrate", "status", "--json"])
    assert "cannot connect to PostgreSQL" in json.loads(by_dsn.stdout)["error"]


def test_lean_apply_leaves_options_set_by_variables_to_click(clean_env, monkeypatch):
    from datakit.migrate.fastpath import main_apply

    monkeypatch.setenv("DATAKIT_DRY_RUN", "1")
    assert main_apply(["apply"]) is None  # Click reads the variable as the CLI declares it


def test_every_command_option_and_argument_has_help_text():
    missing = []
    groups = [((), TREE), (("migrate",), TREE.commands["migrate"])]
    for path, cmd in [*groups, *COMMANDS.items()]:
        where = " ".join(("datakit", *path))
        if not (cmd.help or "").strip():
            missing.append(f"{where}: no help")
        for param in cmd.params:
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"{where} {param.opts[0] if param.opts else param.name}")
    assert not missing, "no help text:\n" + "\n".join(missing)


def test_lean_apply_reads_s_as_stack():
    from datakit.migrate.fastpath import parse_apply

    assert parse_apply(["-s", "dev", "--json"])["--stack"] == "dev"
    assert parse_apply(["-s=dev"]) is None  # Click reads it as "=dev": left to Click


def test_every_yes_option_is_y_yes():
    with_yes = [path for path, cmd in COMMANDS.items() if "--yes" in options(cmd)]
    assert {("up",), ("down",), ("migrate", "reset")} <= set(with_yes)
    for path in with_yes:
        assert "-y" in options(COMMANDS[path])["--yes"].opts, f"datakit {' '.join(path)}"
