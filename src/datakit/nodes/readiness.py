"""One readiness helper for every node: retry a probe until it answers or a deadline passes.

Each node states only its own probe; the waiting logic (deadline, back-off, the last error
kept for the message) lives here once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from datakit.errors import DatakitError

T = TypeVar("T")


class NotReady(DatakitError):
    """A node did not become ready in time; the message names it and the last error seen."""


def wait_until(
    probe: Callable[[], T],
    *,
    what: str,
    timeout: float = 30.0,
    interval: float = 0.05,
    max_interval: float = 0.5,
    alive: Callable[[], str | None] | None = None,
    fatal: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `probe` until it returns a truthy value and return that value.

    Exceptions raised by the probe count as "not yet" and the last one is kept for the
    message. `alive`, if given, is asked between tries; it returns a reason string when the
    thing being waited on can no longer become ready (its process exited), which ends the
    wait at once instead of at the deadline. Exceptions of a `fatal` type (a refused
    password) are raised at once: retrying cannot help.
    """
    deadline = time.monotonic() + timeout
    last: str = "no answer yet"
    while True:
        try:
            result = probe()
            if result:
                return result
            last = f"probe returned {result!r}"
        except fatal:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the probe means "not yet"
            last = f"{type(exc).__name__}: {exc}".strip()
        if alive is not None:
            reason = alive()
            if reason:
                raise NotReady(f"{what} stopped before it was ready: {reason} (last error: {last})")
        if time.monotonic() >= deadline:
            raise NotReady(f"{what} not ready after {timeout:g}s: {last}")
        time.sleep(interval)
        interval = min(interval * 1.5, max_interval)
