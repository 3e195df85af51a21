"""Durations are read by Locust's own parser (`1h30m` works), loaded without the locust
package, whose import would monkey-patch the CLI's process for gevent."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from datakit.cli import app
from datakit.load import durations, runner


@pytest.mark.parametrize(("text", "seconds"), [("1h30m", 5400), ("90s", 90), ("5m", 300),
                                               ("2h", 7200), ("20", 20), ("2.5", 2.5),
                                               ("1h20m5s", 4805)])
def test_locust_forms_and_plain_seconds_are_read(text, seconds):
    assert durations.seconds(text) == seconds


@pytest.mark.parametrize("text", ["5x", "", "1.5s", "m5"])
def test_anything_else_is_refused_naming_the_forms(text):
    with pytest.raises(ValueError, match="1h30m"):
        durations.seconds(text)


def test_the_parser_comes_without_the_locust_package():
    probe = ("import sys; from datakit.load import durations; durations.seconds('1h'); "
             "print('locust' in sys.modules, 'gevent' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert run.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("option", ["--duration", "--warmup"])
def test_a_bad_duration_is_a_usage_error_naming_the_option(option):
    result = CliRunner().invoke(app, ["load", "--stack", "no-such-stack", option, "90 min"])
    assert result.exit_code == 2
    text = " ".join(result.stderr.replace("│", " ").split())  # Rich's error box unwrapped
    assert f"Invalid value for '{option}'" in text and "'90 min' is not a duration" in text


def test_a_good_duration_passes_on_to_the_stack():
    result = CliRunner().invoke(app, ["load", "--stack", "no-such-stack", "--duration",
                                      "1h30m", "--warmup", "1m"])
    assert result.exit_code == 1 and "no such stack file" in result.stderr


def test_the_library_names_the_option_too():
    with pytest.raises(runner.LoadError, match="^--warmup: '5x' is not a duration"):
        runner.run(runner.LoadOptions(stack="no-such-stack", warmup_s="5x"))
