"""The one readiness helper of the verify suite: a check retries its probe until what it
finds is what was expected, or the deadline passes, as Goss's retry does.

Every check states only its probe and its expectation; the waiting (datakit.nodes.readiness),
the record (check, node, expected, found, verdict, waited_s) and the failure message
("pg-2: streams from the primary: expected ..., found ...") live here once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from datakit.nodes.readiness import NotReady, wait_until

RECORD_KEY = "datakit.verify"
PASS, WARN, FAIL = "pass", "warn", "fail"


class Mismatch(Exception):
    """What a probe found, when it is not (yet) what was expected."""

    def __init__(self, found: Any):
        super().__init__(str(found))
        self.found = found


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def error_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class Checker:
    """Bound to one pytest item; `expect` records into the item's user_properties (which
    the results plugin reads and JUnit carries as properties)."""

    def __init__(self, item: pytest.Item, timeout: float):
        self.item = item
        self.timeout = timeout

    def _record(self, **row: Any) -> None:
        self.item.user_properties.append((RECORD_KEY, row))

    def expect(self, check: str, node: str, expected: Any, probe: Callable[[], Any], *,
               ok: Callable[[Any], bool] | None = None, warn: bool = False,
               timeout: float | None = None) -> Any:
        """Call `probe` until `ok(found)` (default: found == expected) and return found.

        A probe may raise Mismatch(found) or any error (a refused connection): both mean
        "not yet", and the last one is what the failure reports. `warn=True` looks once
        and records a warning instead of failing (thresholds that are reported, not
        enforced).
        """
        ok = ok or (lambda found: found == expected)
        last: dict[str, Any] = {"found": "no answer yet"}

        def attempt() -> bool:
            try:
                found = probe()
            except Mismatch as exc:
                last["found"] = exc.found
                raise
            except Exception as exc:
                last["found"] = error_line(exc)
                raise
            last["found"] = found
            if not ok(found):
                raise Mismatch(found)
            return True

        started = time.monotonic()
        limit = 0.0 if warn else (self.timeout if timeout is None else timeout)
        try:
            wait_until(attempt, what=f"{node}: {check}", timeout=limit, max_interval=0.5)
            verdict = PASS
        except NotReady:
            verdict = WARN if warn else FAIL
        waited = round(time.monotonic() - started, 2)
        found = _text(last["found"])
        self._record(check=check, node=node, expected=_text(expected), found=found,
                     verdict=verdict, waited_s=waited)
        if verdict == FAIL:
            pytest.fail(f"{node}: {check}: expected {_text(expected)}, found {found} "
                        f"(waited {waited:g}s)", pytrace=False)
        if verdict == WARN:
            import warnings

            warnings.warn(f"{node}: {check}: expected {_text(expected)}, found {found}",
                          stacklevel=2)
        return last["found"]
