"""`Faults(stack)`: partitions, latency and loss between loopback addresses, and heal.

    >>> with Faults("local") as faults:          # heals on exit, error, Ctrl-C, SIGTERM
    ...     faults.partition({"127.0.10.1"}, {"127.0.10.2", "127.0.10.3"})
    ...     faults.slow("127.0.10.1", "127.0.10.2", delay_ms=50)   # one way
    ...     faults.lossy("127.0.10.3", "127.0.10.1", percent=20)   # one way

The first fault removes what a killed run of the same stack left (`heal_stale`), makes the
stack's chain and records itself as the owner; `heal()` removes every rule, chain and
delay process of the stack and nothing else. A fault whose install fails heals the stack
before the error is raised, so nothing is left half-done.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType

from datakit.nodes import process
from datakit.nodes.faults import delayer, rules, state
from datakit.nodes.faults.addresses import FaultError, loopback, loopback_set
from datakit.nodes.faults.sweep import heal_unlocked

MAX_DELAY_MS = 60_000.0
QUEUE_FIRST = 20_000  # packet queue numbers datakit uses: 20000-52223, a block per stack
_EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Faults:
    """The network faults of one stack; see the module docstring."""

    def __init__(self, stack: str, *, state_dir: Path = state.STATE_DIR) -> None:
        if not stack:
            raise FaultError("fault: a stack name is needed (the chain is named after it)")
        self.stack = stack
        self.chain = rules.chain_name(stack)
        self._state_dir = state_dir
        self._record: state.Record | None = None
        self._saved_handlers: dict[int, object] = {}

    @property
    def active(self) -> list[str]:
        """The faults in place, one line each (for a report's fault window)."""
        return list(self._record.faults) if self._record else []

    def partition(self, a: Iterable[str], b: Iterable[str], *, one_way: bool = False) -> None:
        """Cut every link between `a` and `b`: both ways, or (one_way) only a->b, so that
        b's packets still reach a (a TCP handshake from b then fails at its SYN-ACK)."""
        left, right = loopback_set(a, "partition side a"), loopback_set(b, "partition side b")
        if left & right:
            raise FaultError(f"fault: {', '.join(sorted(left & right))} is on both sides of "
                             f"the partition; a node can be cut from others, not from itself")
        pairs = [(x, y) for x in sorted(left) for y in sorted(right)]
        if not one_way:
            pairs += [(y, x) for x, y in pairs]
        arrow = "->" if one_way else "<->"
        what = f"partition {','.join(sorted(left))} {arrow} {','.join(sorted(right))}"
        self._install(what, lambda: [rules.drop(self.stack, self.chain, s, d, what)
                                     for s, d in pairs])

    def slow(self, src: str, dst: str, delay_ms: float, jitter_ms: float = 0) -> None:
        """Delay every src->dst packet by `delay_ms` (+- `jitter_ms`, uniform); one way."""
        src, dst = self._link(src, dst)
        if not (_finite(delay_ms) and 0 < delay_ms <= MAX_DELAY_MS):
            raise FaultError(f"fault: delay_ms={delay_ms!r} for {src}->{dst}; allowed: a "
                             f"number of milliseconds above 0, at most {MAX_DELAY_MS:g}")
        if not (_finite(jitter_ms) and 0 <= jitter_ms <= delay_ms):
            raise FaultError(f"fault: jitter_ms={jitter_ms!r} for {src}->{dst}; allowed: 0 "
                             f"up to the delay ({delay_ms:g} ms)")
        if any(d.link == f"{src}->{dst}" for d in (self._record.delayers if self._record
                                                    else [])):
            raise FaultError(f"fault: {src}->{dst} is already slowed; heal() first")
        what = f"slow {src}->{dst} {delay_ms:g}ms" + (f"±{jitter_ms:g}" if jitter_ms else "")
        self._install(what, lambda: self._queue(src, dst, delay_ms, jitter_ms, what))

    def lossy(self, src: str, dst: str, percent: float) -> None:
        """Drop each src->dst packet with probability `percent`/100; one way."""
        src, dst = self._link(src, dst)
        if not (_finite(percent) and 0 < percent <= 100):
            raise FaultError(f"fault: percent={percent!r} for {src}->{dst}; allowed: above 0, "
                             f"at most 100")
        what = f"lossy {src}->{dst} {percent:g}%"
        self._install(what, lambda: rules.drop(self.stack, self.chain, src, dst, what,
                                               probability=percent / 100))

    def heal(self) -> list[str]:
        """Remove every rule, chain and delay process of this stack; return what went.

        Ours, or a dead run's; the faults of another live run of the stack (which this one
        was refused) stay: `heal_stale(stack, force=True)` removes those.
        """
        with state.locked(self._state_dir):
            ours, self._record = self._record is not None, None
            other = state.load(self.stack, self._state_dir)
            if not ours and other and other.owner_alive() and not other.mine():
                return []
            return heal_unlocked(self.stack, force=True, state_dir=self._state_dir)

    def __enter__(self) -> Faults:
        # Ctrl-C already raises KeyboardInterrupt; SIGTERM and SIGHUP would end the process
        # without unwinding, so while faults are in place they raise SystemExit instead.
        if threading.current_thread() is threading.main_thread():
            for sig in _EXIT_SIGNALS:
                if signal.getsignal(sig) is signal.SIG_DFL:
                    self._saved_handlers[sig] = signal.signal(sig, _exit_on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.heal()
        finally:
            for sig, handler in self._saved_handlers.items():
                signal.signal(sig, handler)
            self._saved_handlers.clear()

    # -- installing ---------------------------------------------------------------------

    @staticmethod
    def _link(src: str, dst: str) -> tuple[str, str]:
        src, dst = loopback(src), loopback(dst)
        if src == dst:
            raise FaultError(f"fault: {src}->{dst} is not a link; give two addresses")
        return src, dst

    def _install(self, what: str, install: Callable[[], object]) -> None:
        try:
            with state.locked(self._state_dir):
                record = self._start()
                record.faults.append(what)
                state.save(record, self._state_dir)  # recorded before it is in place
                install()
        except BaseException as failed:
            if self._record is None:
                raise  # nothing of ours is in place (another live run may own the stack)
            try:
                self.heal()
            except FaultError as also:  # keep the first error: it says what went wrong
                failed.add_note(f"healing stack {self.stack} afterwards failed too: {also}")
            raise

    def _start(self) -> state.Record:
        """The first fault of this run: sweep a killed run's leftovers, make the chain."""
        if self._record is not None:
            return self._record
        rules.binary()  # a missing command is named before anything else happens
        heal_unlocked(self.stack, force=False, state_dir=self._state_dir)
        me = os.getpid()
        self._record = state.Record(self.stack, self.chain, me, process.start_time(me) or 0)
        state.save(self._record, self._state_dir)
        rules.create_chain(self.stack, self.chain)
        return self._record

    def _queue(self, src: str, dst: str, delay_ms: float, jitter_ms: float, what: str) -> None:
        base = QUEUE_FIRST + (zlib.crc32(self.stack.encode()) % 1000) * 32
        number, pid, started = delayer.start(self.stack, base, delay_ms, jitter_ms)
        assert self._record is not None
        self._record.delayers.append(state.Delayer(number, pid, started, f"{src}->{dst}"))
        state.save(self._record, self._state_dir)
        rules.queue(self.stack, self.chain, src, dst, number, what)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
