"""`datakit load --fault NAME@AT[+FOR]`: what it accepts, and a bad value named."""

from __future__ import annotations

import pytest

from datakit.errors import DatakitError
from datakit.load import faults, runner


def _parse(text: str) -> faults.FaultPlan:
    return faults.parse(text, runner._parse_duration)


def test_a_fault_names_what_when_and_for_how_long():
    assert _parse("postgres-partition-primary@60s") == faults.FaultPlan(
        "postgres-partition-primary", 60.0, faults.DEFAULT_FOR_S)
    assert _parse("redis-partition-master@1m+15s") == faults.FaultPlan(
        "redis-partition-master", 60.0, 15.0)
    assert _parse("kafka-partition-leader@0s+5").for_s == 5.0


@pytest.mark.parametrize("text", ["postgres-partition-primary", "nothing@10s",
                                  "redis-partition-master@soon", "@10s",
                                  "kafka-partition-leader@10s+0s"])
def test_a_bad_fault_is_refused_naming_the_option(text):
    with pytest.raises(DatakitError) as err:
        _parse(text)
    assert "--fault" in str(err.value) and err.value.exit_code == runner.LoadError.exit_code


def test_a_fault_with_the_stress_profile_is_refused_before_anything_runs():
    with pytest.raises(runner.LoadError, match="--fault runs with the baseline or soak"):
        runner.run(runner.LoadOptions(stack="local", profile="stress",
                                      faults=["postgres-partition-primary@5s"]))
