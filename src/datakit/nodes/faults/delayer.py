"""Latency on one link: a small process that holds each queued packet for the delay.

Why not `tc qdisc ... netem`: kernels built without sch_netem (this machine's: no
CONFIG_NET_SCH_NETEM, no modules to load, and no prio qdisc either) cannot delay packets
in the kernel at all, while every kernel with iptables has the packet queue. An iptables
NFQUEUE rule sends the link's packets here (metadata only, never the payload); each is
released `delay` later, plus a uniform jitter. Release order is arrival order, as on one
real path, so jitter never reorders a TCP stream into spurious retransmits.

Fail-open by construction: the rule carries `--queue-bypass`, so when this process is
gone (healed, killed, or its owner killed: it exits when its parent does) packets pass
undelayed instead of being lost. Started by `start()` as a child of the owner.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import heapq
import os
import random
import select
import signal
import subprocess
import sys
import time

from datakit.nodes import process
from datakit.nodes.faults.addresses import FaultError
from datakit.nodes.faults.nfqueue import PacketQueue, QueueError

MODULE = "datakit.nodes.faults.delay_process"  # its entry point
QUEUE_TRIES = 256
READY_TIMEOUT = 15.0
PARENT_CHECK_S = 0.2
NICE = -10
_TAKEN = (errno.EBUSY, errno.EPERM)  # how the kernel says "another process has it"
_children: list[subprocess.Popen] = []


def _bind(base: int) -> PacketQueue:
    for number in range(base, base + QUEUE_TRIES):
        try:
            return PacketQueue(number)
        except QueueError as exc:
            if exc.errno not in _TAKEN:
                raise
    raise QueueError(errno.EBUSY, f"queues {base}-{base + QUEUE_TRIES - 1} all taken")


def hold(queue: PacketQueue, delay_s: float, jitter_s: float, parent: int) -> None:
    """Release each packet `delay_s` (+- jitter) after it came, until told to stop."""
    held: list[tuple[float, int]] = []
    last_due = 0.0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the owner heals; a Ctrl-C is for it
    wake, woken = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # a signal ends the select at once
    signal.set_wakeup_fd(woken)
    try:
        while not stop and os.getppid() == parent:
            now = time.monotonic()
            wait = min(PARENT_CHECK_S, held[0][0] - now) if held else PARENT_CHECK_S
            ready, _, _ = select.select([queue, wake], [], [], max(wait, 0.0))
            now = time.monotonic()
            if queue in ready:
                for packet in queue.packets():
                    due = now + delay_s + random.uniform(-jitter_s, jitter_s)
                    last_due = max(due, last_due)  # never overtake an earlier packet
                    heapq.heappush(held, (last_due, packet))
            while held and held[0][0] <= time.monotonic():
                queue.verdict(heapq.heappop(held)[1])
    finally:
        for _due, packet in held:  # healed: what is still held goes now, not lost
            queue.verdict(packet)
        queue.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=MODULE, description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="the stack (found by the sweep)")
    parser.add_argument("--queue-base", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):
        # A held packet is released late when this process waits for a core; on a busy
        # machine a higher CFS weight keeps that tail short (as root only).
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
    try:
        queue = _bind(args.queue_base)
    except OSError as exc:
        print(f"cannot bind a packet queue: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"ready {queue.number}", flush=True)
    # Nothing more is said: the owner closes its ends of the pipes once it reads this.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    hold(queue, args.delay_ms / 1000, args.jitter_ms / 1000, args.parent)
    return 0


def start(stack: str, base: int, delay_ms: float, jitter_ms: float) -> tuple[int, int, int]:
    """Start a delayer; return (queue number, pid, start time) once its queue is bound."""
    argv = [sys.executable, "-m", MODULE, "--stack", stack, "--queue-base", str(base),
            "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
            "--parent", str(os.getpid())]
    # Its own session: a Ctrl-C in the terminal reaches the owner, which heals in order.
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True, text=True)
    _children.append(child)
    ready, _, _ = select.select([child.stdout], [], [], READY_TIMEOUT)
    line = child.stdout.readline().split() if ready else []
    if len(line) != 2 or line[0] != "ready":
        child.kill()
        said = " ".join(child.communicate(timeout=5)[1].split()) or "no answer"
        raise FaultError(
            f"the delay process for stack {stack} did not start ({said}): the kernel's "
            f"packet queue is needed for latency; load it with "
            f"`modprobe nfnetlink_queue xt_NFQUEUE`, and run datakit as root"
        )
    child.stdout.close()
    child.stderr.close()
    return int(line[1]), child.pid, process.start_time(child.pid) or 0


def stop(pid: int, started: int) -> bool:
    """Stop a delayer (it releases what it holds first); True if it was running."""
    was = process.is_running(pid, started) and _is_delayer(pid)
    if was:
        process.stop(pid, started, timeout=5)
    for child in [c for c in _children if c.pid == pid]:
        child.wait(timeout=5)
        _children.remove(child)
    return was


def _is_delayer(pid: int) -> bool:
    try:
        return MODULE.encode() in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False


def strays(stack: str) -> list[tuple[int, int]]:
    """(pid, start time) of live delayers of `stack` that no record may list."""
    found = []
    needle = b"\0".join([MODULE.encode(), b"--stack", stack.encode(), b"--queue-base"])
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if needle in handle.read():
                        started = process.start_time(int(entry))
                        if started is not None:
                            found.append((int(entry), started))
            except OSError:
                continue
    return found
