"""The command follows its ecosystem's conventions, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

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
