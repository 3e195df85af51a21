"""A throwaway stack, `e2e-<pid>`, built from the shipped local stack with its ports moved.

It runs beside a user's `local` stack without touching it, goes through the real engine
path (`datakit.infra.stack.up` on the project directory), and is destroyed, its stack file
and Pulumi stack removed, even when a test fails.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import pytest
import yaml

from datakit.infra import stack as stacks
from datakit.paths import PROJECT_DIR

# 64xxx -> 65xxx by default; engineers running suites side by side pick other shifts.
PORT_SHIFT = int(os.environ.get("DATAKIT_E2E_PORT_SHIFT", "1000"))


def _shift_ports(node: dict) -> None:
    for key, value in list(node.items()):
        if isinstance(value, dict):
            _shift_ports(value)
        elif key.endswith("port_base") and isinstance(value, int):
            node[key] = value + PORT_SHIFT


class TestStack:
    """The e2e stack's config file and the engine calls on it."""

    def __init__(self, name: str):
        self.name = name
        self.path = PROJECT_DIR / "stacks" / f"Pulumi.{name}.yaml"
        local = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.local.yaml").read_text())
        self.config = copy.deepcopy(local["config"])
        for key in ("datakit:postgres", "datakit:redis", "datakit:kafka"):
            _shift_ports(self.config[key])
        self.pristine = copy.deepcopy(self.config)
        self.running = False
        self.write()

    def write(self) -> None:
        current = yaml.safe_load(self.path.read_text()) if self.path.exists() else {}
        current = current or {}
        current["config"] = self.config
        self.path.write_text(yaml.safe_dump(current, sort_keys=False))

    def edit(self, change: Callable[[dict], None]) -> None:
        change(self.config)
        self.write()

    def up(self):
        result = stacks.up(self.name)
        self.running = True
        return result

    def outputs(self) -> dict:
        from datakit.stack_outputs import with_passwords

        return with_passwords(stacks.outputs(self.name))

    def ensure_up(self) -> None:
        """Bring the stack (back) up if a test destroyed it or changed its shape."""
        if self.config != self.pristine or not self.running:
            self.config = copy.deepcopy(self.pristine)
            self.write()
            self.up()
            self.running = True

    def destroy(self) -> None:
        self.running = False
        stacks.down(self.name)

    def remove(self) -> None:
        try:
            stacks.down(self.name)
        finally:
            stacks.open_stack(self.name).workspace.remove_stack(self.name, force=True)
            self.path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def e2e_stack_session():
    stack = TestStack(f"e2e-{os.getpid()}")
    try:
        yield stack
    finally:
        stack.remove()


@pytest.fixture
def e2e_stack(e2e_stack_session):
    """The shared e2e stack, up and in its shipped shape when the test starts."""
    e2e_stack_session.ensure_up()
    return e2e_stack_session
