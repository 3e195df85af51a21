"""Drills run on the shared e2e stack; each test leaves it healthy (roles may stay
failed over). Ports: set DATAKIT_E2E_PORT_SHIFT so they do not meet other suites."""

from __future__ import annotations

import pytest

from datakit import status
from datakit.drills import postgres_ops
from datakit.stack.schema import StackOutputs


def assert_healthy(outputs: StackOutputs) -> None:
    rows = status.live(outputs)
    down = [r for r in rows if r["health"] != "up" or r.get("disagrees")]
    assert not down, down
    assert not status.clusters(outputs)["problems"]
    primary, others = postgres_ops.roles(outputs)
    assert set(postgres_ops.wait_redundant(primary, outputs, others)) == \
        {o.name for o in others}


@pytest.fixture
def outputs(e2e_stack) -> StackOutputs:
    return e2e_stack.outputs()
