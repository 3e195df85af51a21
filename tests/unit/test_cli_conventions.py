"""The command follows its ecosystem's conventions, run as a user runs it."""

from __future__ import annotations

import shlex
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import yaml

from datakit.paths import PROJECT_DIR

DATAKIT = str(Path(sys.executable).parent / "datakit")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DATAKIT, *args], capture_output=True, text=True, timeout=60)


def test_version_prints_the_installed_version():
    run = _run("--version")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"datakit {version('datakit')}"


def test_shell_completion_is_offered():
    run = _run("--help")
    assert run.returncode == 0
    assert "--install-completion" in run.stdout and "--show-completion" in run.stdout


def test_the_ci_example_uses_only_options_that_exist():
    # Click refuses an unknown option before it reaches --help, so each command line of
    # the example, with --help added, exits 0 only while every option it names exists.
    workflow = yaml.safe_load((PROJECT_DIR / "docs" / "ci" / "github-actions.yml").read_text())
    lines = [step["run"] for step in workflow["jobs"]["data-layer"]["steps"] if "run" in step]
    commands = [part.split(".venv/bin/datakit ", 1)[1].rstrip("'")
                for line in lines for part in line.split("&&") if ".venv/bin/datakit " in part]
    assert len(commands) == 5
    for command in commands:
        run = _run(*shlex.split(command), "--help")
        assert run.returncode == 0, f"datakit {command}: {run.stderr}"
