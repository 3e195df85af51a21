"""The command line's choices (datakit.choices, read at every start without pydantic or the
load runner) are the names the code knows: each list equals its source."""

from __future__ import annotations

import subprocess
import sys

from datakit import choices
from datakit.load import runner
from datakit.topology.baselines import DRILLS


def test_the_choices_are_the_drills_profiles_and_workloads_the_code_runs():
    assert choices.DRILLS == DRILLS
    assert set(choices.PROFILES) == set(runner.PROFILES)
    assert set(choices.WORKLOADS) == set(runner.WORKLOADS)


def test_building_the_cli_loads_neither_pydantic_nor_the_load_runner():
    probe = ("import sys, datakit.cli, typer; typer.main.get_command(datakit.cli.app); "
             "print(sorted(m for m in ('pydantic', 'datakit.topology', 'datakit.load.runner')"
             " if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert run.stdout.strip() == "[]"
