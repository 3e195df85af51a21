"""A stack derived from a shipped one with its ports and node addresses moved: tests and
benchmarks run it beside a user's own stacks, through the real engine path, and remove it
afterwards. Its own loopback /16 keeps a network fault on its nodes off everyone else's.

>>> s = DerivedStack("e2e-1", base="local", port_shift=800, address_base="127.20.0.0")
>>> s.up(); s.outputs().endpoints; s.remove()
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import yaml

from datakit.nodes import process
from datakit.paths import PROJECT_DIR
from datakit.stack import lifecycle as stacks
from datakit.stack import outputs as stack_outputs
from datakit.stack.schema import StackOutputs


def _shift_ports(node: dict, shift: int) -> None:
    for key, value in list(node.items()):
        if isinstance(value, dict):
            _shift_ports(value, shift)
        elif key.endswith(("port_base", "port")) and isinstance(value, int):
            node[key] = value + shift


class DerivedStack:
    """A derived stack's config file (git-ignored) and the engine calls on it."""

    def __init__(self, name: str, *, base: str = "local", port_shift: int = 800,
                 address_base: str = "127.20.0.0"):
        self.name = name
        self.path = PROJECT_DIR / "stacks" / f"Pulumi.{name}.yaml"
        shipped = yaml.safe_load((PROJECT_DIR / "stacks" / f"Pulumi.{base}.yaml").read_text())
        self.config = copy.deepcopy(shipped["config"])
        for key in ("datakit:postgres", "datakit:redis", "datakit:kafka", "datakit:etcd",
                    "datakit:metrics"):
            _shift_ports(self.config.get(key) or {}, port_shift)
        self.config.setdefault("datakit:local", {})["address_base"] = address_base
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

    def outputs(self) -> StackOutputs:
        """Its outputs as the kit's clients read them (the app password in the DSNs)."""
        return stack_outputs.of_stack(self.name).with_passwords()

    def ensure_up(self) -> None:
        """Bring the stack (back) up if a test destroyed it or changed its shape."""
        if self.config != self.pristine or not self.running or self._stale():
            self.config = copy.deepcopy(self.pristine)
            self.write()
            self.up()
            self.running = True

    def _stale(self) -> bool:
        """A node died or was restarted behind the engine's back (a drill, a test): `up`
        refreshes the state so handles name the processes serving now."""
        try:
            nodes = self.outputs().nodes
        except stack_outputs.NoOutputs:
            return True
        return any(n.handle.kind == "local" and (n.handle.pid is None or not process.is_running(
            n.handle.pid, n.handle.start_time)) for n in nodes)

    def destroy(self) -> None:
        self.running = False
        stacks.down(self.name)

    def remove(self) -> None:
        try:
            stacks.down(self.name)
        finally:
            stacks.open_stack(self.name).workspace.remove_stack(self.name, force=True)
            self.path.unlink(missing_ok=True)
