"""The drill skeleton, written once. A writer records every write while the drill's fault
hits the stack and the drill watches it recover; then every acknowledged write is read
back (checker.py) and RTO, redundancy and the client's errors are measured (result.py).

A drill is a `Drill` subclass that states only its fault and what it watches:

    setup()     before any write: see the stack whole, choose the victim; returns what
                the writer writes to (a target with `write`, `reset`, `read_ids`)
    fault()     inject the fault, and record its event (`fault_event`: RTO starts there)
    watch()     until the stack has recovered; records "redundant" when it is whole again

and, where it needs them, `prepared()` (a mode's settings, undone afterwards), `check()`,
`measure()` and `verdict()`. `run()` is the skeleton:

    setup -> prepared -> writer starts -> warm-up (ctx.warmup_s) -> fault -> watch
    -> writes go on for ctx.tail_s -> writer stops -> check -> measure -> verdict

The stack's alerts are watched throughout (alerts.py): the run records which fired and
cleared, and fails if one still fires once the stack is whole again.

A drill that must stop the writes itself (the restore drills: nothing may be written
while they restore) calls `stop_writes()`; the tail is then skipped.
"""

from __future__ import annotations

import contextlib
import time
from contextlib import AbstractContextManager
from typing import ClassVar, Protocol

from datakit.drills import checker
from datakit.drills.alerts import AlertWatch
from datakit.drills.checker import SetCheck
from datakit.drills.context import DrillContext
from datakit.drills.result import DrillResult, measure
from datakit.drills.writer import Recorder, Writer
from datakit.nodes.control import NodeControl, control_for
from datakit.stack.schema import Node, StackOutputs


class Target(Protocol):
    def write(self, op_id: int) -> None: ...
    def reset(self) -> None: ...
    def read_ids(self) -> set[int]: ...


class Writes(Protocol):
    """A writer thread: `Writer`, or one of the drill's own (Kafka's producer)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


class Drill:
    """One run of a drill: the skeleton in `run()`, the drill's own acts in its hooks."""

    fault_event: ClassVar[str] = "kill"  # the event RTO and the error window count from
    recreates_stack: ClassVar[bool] = False  # the runner reads the outputs anew between runs
    writer_class: ClassVar[type] = Writer  # called as writer_class(target, recorder)
    measures_rto: ClassVar[bool] = True  # False: nothing goes down (a slowed link)

    def __init__(self, name: str, ctx: DrillContext):
        self.ctx, self.out, self.say = ctx, ctx.outputs, ctx.say
        self.rec = Recorder()
        self.result = DrillResult(name, ctx.stack, durable=ctx.durable,
                                  started_unix=self.rec.wall0,
                                  metrics=ctx.outputs.endpoints.metrics,
                                  extra={"fault_event": self.fault_event})
        self.target: Target | None = None
        self.writer: Writes | None = None
        self._writing = False

    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        """Why the drill cannot run on this stack, or None when it can."""
        return None

    # ------------------------------------------------------------- what a drill states
    def setup(self) -> Target:
        raise NotImplementedError

    def prepared(self) -> AbstractContextManager:
        """Settings the drill's mode needs while it runs, undone afterwards."""
        return contextlib.nullcontext()

    def fault(self) -> None:
        raise NotImplementedError

    def watch(self) -> None:
        """Until the stack has recovered from the fault (some drills watch in `fault`)."""

    def check(self) -> SetCheck:
        """Every write against an independent read of what the stack holds."""
        return checker.check(self.rec, self.target.read_ids())

    def measure(self) -> None:
        measure(self.result, self.rec, self.fault_event)

    def verdict(self) -> str | None:
        """Why the run failed, or None."""
        lost = self.result.check.lost
        if lost and self.ctx.durable:
            return f"{len(lost)} acknowledged writes lost"
        still = self.result.extra.get("alerts_still_firing") or []
        if still:
            named = "; ".join(f"{a['alert']} on {a['node']}" for a in still)
            return f"alerts still firing once the stack was whole again: {named}"
        return None

    # ------------------------------------------------------------- for the hooks
    def event(self, what: str) -> float:
        return self.rec.event(what)

    def control(self, node: Node) -> NodeControl:
        return control_for(node, self.out)

    def stop_writes(self) -> None:
        if self._writing:
            self._writing = False
            self.writer.stop()

    # ------------------------------------------------------------- the skeleton
    def run(self) -> DrillResult:
        self.target = self.setup()
        alerts = AlertWatch(self.out, self.rec)
        alerts.start()
        try:
            with self.prepared():
                self.writer = self.writer_class(self.target, self.rec)
                try:
                    self.writer.start()
                    self._writing = True
                    time.sleep(self.ctx.warmup_s)
                    self.fault()
                    self.watch()
                    if self._writing:
                        time.sleep(self.ctx.tail_s)
                finally:
                    self.stop_writes()
            still = alerts.settle() if self.rec.at("redundant") is not None else []
        finally:
            alerts.stop()
        self.result.extra.update(
            alerts=[s.as_json() for s in alerts.spans()],
            alerts_still_firing=[s.as_json() for s in still])
        self.result.check = self.check()
        self.measure()
        self.result.reason = self.result.reason or self.verdict()
        return self.result
