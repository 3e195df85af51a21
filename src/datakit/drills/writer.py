"""The acknowledged-write recorder: every write a drill's client attempts, with its id, its
start and end times and its outcome, as Jepsen's set workload records them.

Outcomes: `ok` (the server acknowledged it durably, by the target's own standard),
`fail` (known not applied: the request never reached a server), `unknown` (an error or a
timeout after the request may have been applied). A target is any object with
`write(id)` that returns normally on acknowledgement and raises `NotSent` when the write
surely did not happen; any other exception is an unknown outcome.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol


class NotSent(Exception):
    """The write surely did not reach a server (no connection): outcome `fail`."""


class Target(Protocol):
    def write(self, op_id: int) -> None: ...
    def reset(self) -> None: ...


@dataclass
class Op:
    id: int
    start: float  # seconds since the recorder's t0 (monotonic)
    end: float
    status: str  # ok | fail | unknown
    error: str | None = None


@dataclass
class Recorder:
    """Thread-safe log of ops and of the drill's events, on one monotonic clock."""

    t0: float = field(default_factory=time.monotonic)
    wall0: float = field(default_factory=time.time)
    ops: list[Op] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def add(self, op: Op) -> None:
        with self.lock:
            self.ops.append(op)

    def event(self, what: str) -> float:
        at = self.now()
        with self.lock:
            self.events.append((at, what))
        return at

    def at(self, what: str) -> float | None:
        return next((t for t, w in self.events if w == what), None)

    def ids(self, status: str) -> set[int]:
        with self.lock:
            return {o.id for o in self.ops if o.status == status}


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


class Writer(threading.Thread):
    """Writes ids 1, 2, 3... to `target` as fast as it can (or every `interval` s),
    recording each outcome. `pause()` fences writes (returns once no write is in flight),
    `resume()` lifts the fence; a paused writer records nothing, so a planned switchover
    behind the fence shows no failed write."""

    def __init__(self, target: Target, recorder: Recorder, *, interval: float = 0.0,
                 retry_pause: float = 0.02, first_id: int = 1):
        super().__init__(daemon=True, name="drill-writer")
        self.target, self.rec = target, recorder
        self.interval, self.retry_pause = interval, retry_pause
        self.next_id = first_id
        self._halt = threading.Event()
        self._open = threading.Event()
        self._open.set()
        self._idle = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                if not self._open.is_set():
                    self._idle.set()
                    self._open.wait(0.05)
                    continue
                self._idle.clear()
                self._one()
                if self.interval:
                    time.sleep(self.interval)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc
        finally:
            self._idle.set()

    def _one(self) -> None:
        op_id, self.next_id = self.next_id, self.next_id + 1
        start = self.rec.now()
        try:
            self.target.write(op_id)
        except NotSent as exc:
            self.rec.add(Op(op_id, start, self.rec.now(), "fail", short_error(exc)))
            self._after_error()
        except Exception as exc:  # noqa: BLE001 - any other failure: outcome unknown
            self.rec.add(Op(op_id, start, self.rec.now(), "unknown", short_error(exc)))
            self._after_error()
        else:
            self.rec.add(Op(op_id, start, self.rec.now(), "ok"))

    def _after_error(self) -> None:
        with contextlib.suppress(Exception):  # the next write finds out again
            self.target.reset()
        time.sleep(self.retry_pause)

    def pause(self, timeout: float = 30.0) -> None:
        self._open.clear()
        self._idle.clear()
        self._idle.wait(timeout)
        self.target.reset()  # drop connections to the node about to go

    def resume(self) -> None:
        self._open.set()

    def stop(self) -> None:
        self._halt.set()
        self._open.set()
        self.join(60)
        if self.error:
            raise self.error


def wait_first_ack_after(rec: Recorder, t: float, timeout: float = 60.0) -> float | None:
    """Block until an op that started at or after `t` is acknowledged; its end time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rec.lock:
            ends = [o.end for o in rec.ops if o.status == "ok" and o.start >= t]
        if ends:
            return min(ends)
        time.sleep(0.02)
    return None
