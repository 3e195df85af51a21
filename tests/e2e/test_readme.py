"""The README's commands, run exactly as a new user runs them: from the repository root,
with default options and relative paths, on the `local` stack.

The lines come from the README itself (its first command and the block under "A first
session"), so the test and the README cannot drift apart. Only the load test's duration
is shortened, through its own option. Each command must exit 0, and the reports must be
where the README says.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from datakit.nodes import process
from datakit.paths import PROJECT_DIR
from datakit.topology import load as load_topology

README = PROJECT_DIR / "README.md"
pytestmark = [pytest.mark.engine, pytest.mark.slow]


def _readme_commands() -> list[str]:
    text = README.read_text()
    first = re.search(r"^    (tools/bootstrap && \.venv/bin/datakit up --stack local)$",
                      text, re.M)
    block = re.search(r"^## A first session\n.*?^```\n(.*?)^```", text, re.M | re.S)
    assert first and block, "README lost its first command or its 'A first session' block"
    lines = [line.strip() for line in block.group(1).splitlines() if line.strip()]
    return [first.group(1), *lines]


def _local_in_use() -> str | None:
    ports = [n.port for n in load_topology("local").nodes()]
    taken = [p for p in ports if not process.port_free(p)]
    return f"ports {taken} of the local stack are taken" if taken else None


def _shorter(command: str) -> str:
    return command.replace("--duration 30s", "--duration 10s")


def _reports(folder: str, pattern: str) -> set[Path]:
    return set((PROJECT_DIR / folder).glob(pattern))


@pytest.mark.timeout(900)
def test_readme_commands_work_as_written():
    if reason := _local_in_use():
        pytest.skip(f"{reason}: this test brings `local` up and down; stop it first with "
                    "`.venv/bin/datakit down --stack local`")
    commands = _readme_commands()
    assert commands[-1] == ".venv/bin/datakit down --stack local"
    loads_before = _reports("load-reports", "local-*")
    drills_before = _reports("drill-reports", "local-redis-failover-*")
    git_before = _git_status()
    # A user's environment: nothing that points the kit at other infrastructure.
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATAKIT_OUTPUTS_FILE", "DATAKIT_DSN")}
    try:
        for command in commands:
            run = subprocess.run(_shorter(command), shell=True, cwd=PROJECT_DIR, env=env,
                                 capture_output=True, text=True, timeout=600)
            assert run.returncode == 0, (
                f"`{command}` exited {run.returncode}:\n{run.stdout[-3000:]}\n"
                f"{run.stderr[-3000:]}")
            assert "Traceback" not in run.stderr, f"`{command}` printed a traceback:\n" \
                f"{run.stderr[-3000:]}"
    finally:
        subprocess.run(shlex.split(".venv/bin/datakit down --stack local"), cwd=PROJECT_DIR,
                       env=env, capture_output=True, timeout=300)

    # The commands leave the checkout as they found it (the engine's salt line included).
    assert _git_status() == git_before, _git_status()
    new = (_reports("load-reports", "local-*") - loads_before) | (
        _reports("drill-reports", "local-redis-failover-*") - drills_before)
    try:
        _check_reports(loads_before, drills_before)
    finally:
        for folder in new:
            shutil.rmtree(folder, ignore_errors=True)


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_DIR,
                          capture_output=True, text=True, check=True).stdout


def _check_reports(loads_before: set[Path], drills_before: set[Path]) -> None:
    [load_dir] = _reports("load-reports", "local-*") - loads_before
    for name in ("report.html", "summary.json", "locust.html", "locust_stats.csv"):
        assert (load_dir / name).is_file(), f"{load_dir / name} is missing"
    report = (load_dir / "report.html").read_text()
    assert 'href="locust.html"' in report  # the link works from the report's own folder
    [drill_dir] = _reports("drill-reports", "local-redis-failover-*") - drills_before
    for name in ("redis-failover.html", "redis-failover.json"):
        assert (drill_dir / name).is_file(), f"{drill_dir / name} is missing"
    assert not (PROJECT_DIR / "loadtests" / "load-reports").exists()
