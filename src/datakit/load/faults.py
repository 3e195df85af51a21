"""`datakit load --fault NAME@AT[+FOR]`: a network partition in the middle of a load run.

    --fault postgres-partition-primary@60s        # at 60 s into the run, for 30 s
    --fault redis-partition-master@40s+15s         # at 40 s, for 15 s

NAME is one of FAULTS: whom it cuts off is asked of the stack when the fault starts
(drills/partitions.py). AT counts from Locust's launch, warm-up included; FOR defaults to
30 s. The fault heals after FOR, at the end of the run, and on any error or Ctrl-C; the
report shades each fault's window on every chart.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from datakit.errors import DatakitError
from datakit.stack.schema import StackOutputs

DEFAULT_FOR_S = 30.0
# name -> the services whose nodes the cut involves
FAULTS = {
    "postgres-partition-primary": ("postgres", "etcd"),
    "redis-partition-master": ("redis", "sentinel"),
    "kafka-partition-leader": ("kafka",),
}
_SPEC = re.compile(r"^(?P<name>[a-z-]+)@(?P<at>[^+]+)(?:\+(?P<for>.+))?$")


class FaultOptionError(DatakitError):
    exit_code = 4


@dataclass(frozen=True)
class FaultPlan:
    name: str
    at_s: float
    for_s: float = DEFAULT_FOR_S

    @property
    def label(self) -> str:
        return f"fault: {self.name}"


def parse(text: str, duration_of) -> FaultPlan:
    """A `--fault` value; `duration_of` reads "60s" (the runner's duration parser)."""
    found = _SPEC.match(text.strip())
    if not found or found["name"] not in FAULTS:
        raise FaultOptionError(f"--fault {text!r}: write NAME@AT[+FOR], NAME one of "
                               f"{', '.join(FAULTS)} (e.g. postgres-partition-primary@60s)")
    at = duration_of(found["at"], "--fault's AT")
    length = duration_of(found["for"], "--fault's FOR") if found["for"] else DEFAULT_FOR_S
    if at is None or at < 0 or not length or length <= 0:
        raise FaultOptionError(f"--fault {text!r}: AT must be 0 or more and FOR above 0")
    return FaultPlan(found["name"], at, length)


def refusal(plans: list[FaultPlan], outputs: StackOutputs, run_s: float) -> str | None:
    """Why these faults cannot run on this stack in a run of `run_s`, or None."""
    from datakit.drills import partitions

    for plan in plans:
        if plan.at_s >= run_s:
            return f"--fault {plan.name}@{plan.at_s:g}s starts after the run ({run_s:g} s)"
        if why := partitions.applies(outputs, FAULTS[plan.name]):
            return f"--fault {plan.name}: {why}"
    return None


class FaultSchedule(threading.Thread):
    """Applies each plan at its time after `start()`, heals it after its length; the
    windows it made are in `windows` as (unix start, unix end, label)."""

    def __init__(self, stack: str, outputs: StackOutputs, plans: list[FaultPlan]):
        super().__init__(daemon=True, name="load-faults")
        self.stack, self.outputs = stack, outputs
        self.plans = sorted(plans, key=lambda p: p.at_s)
        self.windows: list[tuple[float, float, str]] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._t0 = time.time()

    def start(self) -> None:
        self._t0 = time.time()
        super().start()

    def stop(self) -> None:
        """Heal now (the run ended or failed) and wait for the thread."""
        self._halt.set()
        if self.is_alive():
            self.join(30)

    def run(self) -> None:
        from datakit.nodes.faults import Faults

        try:
            with Faults(self.stack) as faults:
                for plan in self.plans:
                    if self._halt.wait(max(0.0, self._t0 + plan.at_s - time.time())):
                        return
                    cut = _aim(plan.name, self.stack, self.outputs)
                    faults.partition({cut.node.host}, cut.peers)
                    began = time.time()
                    self._halt.wait(plan.for_s)
                    faults.heal()
                    self.windows.append((began, time.time(), f"{plan.label} ({cut.what})"))
        except BaseException as exc:  # noqa: BLE001 - reported by the runner after the run
            self.error = exc


def _aim(name: str, stack: str, outputs: StackOutputs):
    from datakit import topology
    from datakit.drills import partitions

    if name == "postgres-partition-primary":
        return partitions.primary(outputs)
    if name == "redis-partition-master":
        return partitions.master(outputs)
    # the leader of the first partition of the stack's first topic (the workloads' own)
    return partitions.leader(outputs, topic=topology.load(stack).kafka.topics[0].name)
