"""The iptables side of network faults: one chain per stack, its jump, its rules, its sweep.

Layout, for stack `local`:

    -A INPUT -i lo -m comment --comment datakit:local -j DATAKIT-local   (first rule)
    -N DATAKIT-local
    -A DATAKIT-local -s 127.0.10.1/32 -d 127.0.10.2/32 ... -j DROP       (partition)
    -A DATAKIT-local -s ... -m statistic --mode random --probability 0.2 -j DROP  (loss)
    -A DATAKIT-local -s ... -j NFQUEUE --queue-num N --queue-bypass      (latency)

The jump is from INPUT, not OUTPUT: a loopback packet crosses both, and a DROP in OUTPUT
fails the sender's own send() with EPERM (a UDP sender sees the error at once), which no
real network does. Dropped in INPUT, the packet leaves its sender and vanishes, like on a
cut wire. INPUT is also where the delayer holds packets: by then loopback has released
them from the sender's socket accounting, so a held packet does not throttle its sender
the way TCP small queues would in OUTPUT. The jump is the first rule of INPUT so that a
firewall's usual `-i lo -j ACCEPT` cannot pass the traffic before the fault sees it.

iptables is run as a command (`-w` waits for the xtables lock that other tools hold): it
is the interface every distribution keeps working, over nf_tables or the legacy tables.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess

from datakit.nodes.faults.addresses import FaultError

PREFIX = "DATAKIT-"
CHAIN_MAX = 28  # the kernel's limit for a chain name (XT_EXTENSION_MAXNAMELEN - 1)
HOOKS = ("INPUT", "OUTPUT")  # swept; only INPUT is used today
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")
INSTALL = "apt-get install iptables iproute2"
# Kernel pieces a rule needs, by the words iptables uses when one is missing.
_MODULES = {
    "statistic": "modprobe xt_statistic",
    "NFQUEUE": "modprobe xt_NFQUEUE nfnetlink_queue",
    "comment": "modprobe xt_comment",
    "conntrack": "modprobe xt_conntrack",
}


def chain_name(stack: str) -> str:
    """`DATAKIT-<stack>` when it fits iptables' 28 characters, else a prefix and a hash.

    The name is a pure function of the stack, so a later process finds the chain of one
    that was killed without reading anything.
    """
    if _SAFE.match(stack) and len(PREFIX) + len(stack) <= CHAIN_MAX:
        return PREFIX + stack
    digest = hashlib.sha1(stack.encode()).hexdigest()[:8]
    head = re.sub(r"[^A-Za-z0-9_.-]", "_", stack)[: CHAIN_MAX - len(PREFIX) - 9]
    return f"{PREFIX}{head}-{digest}"


def comment(stack: str) -> str:
    """The tag on every datakit rule of `stack`, found by the sweep whatever the chain."""
    return f"datakit:{stack}"


def binary() -> str:
    found = shutil.which("iptables")
    if not found:
        raise FaultError(f"network faults need the iptables command, not found on PATH: "
                         f"install it with `{INSTALL}`")
    return found


def _hint(stderr: str) -> str:
    lowered = stderr.lower()
    if "permission denied" in lowered or "you must be root" in lowered:
        return "network faults change the firewall: run datakit as root"
    for word, fix in _MODULES.items():
        if word.lower() in lowered and ("load" in lowered or "not supported" in lowered
                                         or "no such file" in lowered):
            return f"the kernel lacks the {word} extension: load it with `{fix}`"
    return ""


def iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `iptables -w 5 <args>`; a failure (when `check`) names the command and the fix."""
    argv = [binary(), "-w", "5", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=30)
    if check and proc.returncode != 0:
        said = " | ".join(proc.stderr.strip().splitlines()[-2:]) or f"exit {proc.returncode}"
        hint = _hint(proc.stderr)
        raise FaultError(f"`iptables {shlex.join(args)}` failed: {said}"
                         + (f"; {hint}" if hint else ""))
    return proc


def chain_exists(chain: str) -> bool:
    return iptables("-S", chain, check=False).returncode == 0


def create_chain(stack: str, chain: str) -> None:
    """An empty chain and one jump to it from the top of INPUT (made once)."""
    if not chain_exists(chain):
        iptables("-N", chain)
    if iptables("-C", "INPUT", *_jump(stack, chain), check=False).returncode != 0:
        iptables("-I", "INPUT", "1", *_jump(stack, chain))


def _jump(stack: str, chain: str) -> list[str]:
    return ["-i", "lo", "-m", "comment", "--comment", comment(stack), "-j", chain]


def links(src: str, dst: str) -> list[list[str]]:
    """The matches of one direction of one link (both are checked loopback addresses).

    A packet src->dst carries src's and dst's addresses when src dialled dst. When dst
    dialled src, a stack node's connection left from 127.0.0.1 and was given dst's address
    on the way (nodes/own_address.py); src's answers are turned back to 127.0.0.1 before
    INPUT, so conntrack's record of that rewrite is what names dst."""
    return [["-s", f"{src}/32", "-d", f"{dst}/32"],
            ["-s", f"{src}/32", "-m", "conntrack", "--ctdir", "REPLY", "--ctrepldst",
             f"{dst}/32"]]


def drop(stack: str, chain: str, src: str, dst: str, what: str,
         probability: float | None = None) -> None:
    """Drop src->dst in INPUT: every packet, or each with `probability` (loss)."""
    odds = [] if probability is None or probability >= 1.0 else [
        "-m", "statistic", "--mode", "random", "--probability", f"{probability:.6f}"]
    # Drops go first, so a link both lossy and slowed loses packets before the queue.
    for spec in links(src, dst):
        iptables("-I", chain, "1", *spec, *odds, *_tag(stack, what), "-j", "DROP")


def queue(stack: str, chain: str, src: str, dst: str, number: int, what: str) -> None:
    """Hand src->dst packets to queue `number`; with no reader bound, they pass (bypass)."""
    for spec in links(src, dst):
        iptables("-A", chain, *spec, *_tag(stack, what),
                 "-j", "NFQUEUE", "--queue-num", str(number), "--queue-bypass")


def _tag(stack: str, what: str) -> list[str]:
    return ["-m", "comment", "--comment", f"{comment(stack)} {what}"]


def remove(stack: str, chains: set[str]) -> list[str]:
    """Remove the jumps to `chains` (or tagged for `stack`) and the chains; say what went."""
    removed = []
    tag = comment(stack)
    for hook in HOOKS:
        listing = iptables("-S", hook, check=False).stdout.splitlines()
        for line in listing:
            words = shlex.split(line)
            target = words[words.index("-j") + 1] if "-j" in words[:-1] else None
            ours = words[:2] == ["-A", hook] and (target in chains or _tagged(words, tag))
            if ours and iptables("-D", *words[1:], check=False).returncode == 0:
                removed.append(f"iptables: {line}")
    for chain in sorted(chains):
        if chain_exists(chain):
            iptables("-F", chain)
            iptables("-X", chain)
            removed.append(f"iptables: chain {chain}")
    return removed


def _tagged(words: list[str], tag: str) -> bool:
    return "--comment" in words[:-1] and words[words.index("--comment") + 1] == tag


def listing() -> str:
    """`iptables -S` of the filter table: everything a person would look at."""
    return iptables("-S", check=False).stdout
