"""A live view of a Pulumi run: one line per resource, as the engine reports it."""

from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

_DONE = {"create": "created", "update": "updated", "delete": "deleted", "replace": "replaced",
         "same": "unchanged", "refresh": "refreshed", "read": "read",
         "create-replacement": "created", "delete-replaced": "deleted"}


class RunView:
    """Collects engine events and renders them; pass `on_event` to the Automation API."""

    def __init__(self) -> None:
        self.rows: dict[str, list] = {}
        self.started = time.monotonic()
        self.errors: list[str] = []
        self.warnings: list[str] = []  # the program's own (TLS off, migrations skipped)

    @staticmethod
    def _name(urn: str) -> str:
        kind, name = urn.split("::")[-2:]
        return name if "Stack" not in kind else ""

    def on_event(self, event) -> None:
        if event.resource_pre_event:
            meta = event.resource_pre_event.metadata
            name = self._name(meta.urn)
            if name and meta.op.value != "same":
                self.rows[name] = [meta.op.value + "…", time.monotonic(), None]
        elif event.res_outputs_event:
            meta = event.res_outputs_event.metadata
            name = self._name(meta.urn)
            if name in self.rows:
                row = self.rows[name]
                row[0], row[2] = _DONE.get(meta.op.value, meta.op.value), time.monotonic()
        elif event.res_op_failed_event:
            pass
        elif event.diagnostic_event and event.diagnostic_event.severity == "error":
            self.errors.append(event.diagnostic_event.message.strip())
        elif event.diagnostic_event and event.diagnostic_event.severity == "warning":
            self.warnings.append(event.diagnostic_event.message.strip())

    def render(self) -> Table:
        table = Table("resource", "status", "seconds", box=None, pad_edge=False)
        now = time.monotonic()
        for name, (status, began, ended) in self.rows.items():  # names: the stack file's
            style = "green" if ended else "yellow"
            table.add_row(escape(name), f"[{style}]{escape(status)}[/]",
                          f"{(ended or now) - began:5.1f}")
        table.caption = f"{now - self.started:.1f}s"
        return table


@contextmanager
def live_run(console: Console, enabled: bool = True):
    view = RunView()
    if not enabled:
        yield view
        return
    with Live(view.render(), console=console, refresh_per_second=4, transient=False) as live:
        original = view.on_event

        def on_event(event):
            original(event)
            live.update(view.render())

        view.on_event = on_event  # type: ignore[method-assign]
        yield view
