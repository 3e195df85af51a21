"""A local node's packets leave from its own loopback address, so a fault can name it.

A daemon that connects out (a replica to its primary, Patroni to etcd, a broker to the
controllers) binds no source address, and the kernel gives every such connection
127.0.0.1: a rule could not tell pg-2's packets from a client's. So each node's processes
run in a cgroup of their own (cgroup v2, `datakit/<address>`; children inherit it:
Patroni's postmaster, a JVM's threads), and one SNAT rule per node gives what that cgroup
sends from 127.0.0.1 the node's address:

    -t nat -A DATAKIT-SOURCE -s 127.0.0.1/32 -d 127.0.0.0/8 -m cgroup --path datakit/127.10.1.2
        -m comment --comment "datakit:source 127.10.1.2" -j SNAT --to-source 127.10.1.2

The rule is made before the node's first process starts and removed when the node is
deleted. Root only: elsewhere, or without cgroup v2, nodes still listen on their own
addresses and send from 127.0.0.1, and `available()` says why a fault cannot be aimed.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

from datakit.errors import DatakitError

CHAIN = "DATAKIT-SOURCE"
JUMP = ["-m", "comment", "--comment", "datakit:source", "-j", CHAIN]
SHARED = "127.0.0.1"  # every unbound loopback connection's source
_ENTER = 'echo $$ > "$0" && exec "$@"'  # the shell joins the cgroup, then becomes argv
LOCK = Path("/run/datakit/own-address.lock")  # nodes start four at a time, drills too


class OwnAddressError(DatakitError):
    pass


@cache
def cgroup2_root() -> Path | None:
    """Where cgroup v2 is mounted (the unified tree), if it is."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return Path(fields[1])
    return None


def available() -> str | None:
    """None when nodes can send from their own addresses here, else why not."""
    if os.geteuid() != 0:
        return "datakit does not run as root (a node's source address needs a NAT rule)"
    if cgroup2_root() is None:
        return "cgroup v2 is not mounted (a node's processes are found by their cgroup)"
    if shutil.which("iptables") is None:
        return "the iptables command is not installed (`apt-get install iptables`)"
    return None


def _own(host: str | None) -> str | None:
    """`host` when it is a loopback address of a node's own, else None."""
    if not host or host == SHARED:
        return None
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        return None
    return host if address.is_loopback else None


def command(host: str | None, argv: list[str]) -> list[str]:
    """`argv`, started in the node's cgroup with its SNAT rule in place, when `host` is a
    node's own loopback address and this machine allows it; else `argv` unchanged."""
    host = _own(host)
    if host is None or available():
        return argv
    procs = ensure(host)
    return ["/bin/sh", "-c", _ENTER, str(procs), *argv]


def cgroup(host: str) -> str:
    return f"datakit/{host}"


def ensure(host: str) -> Path:
    """The node's cgroup and its SNAT rule (made once); the cgroup's procs file."""
    root = cgroup2_root()
    assert root is not None
    folder = root / cgroup(host)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked():
        if _nat("-S", CHAIN, check=False).returncode != 0:
            _nat("-N", CHAIN)
        if _nat("-C", "POSTROUTING", *JUMP, check=False).returncode != 0:
            _nat("-A", "POSTROUTING", *JUMP)
        if _nat("-C", CHAIN, *_rule(host), check=False).returncode != 0:
            _nat("-A", CHAIN, *_rule(host))
    return folder / "cgroup.procs"


def release(host: str | None) -> None:
    """Remove the node's SNAT rule and its cgroup (once its processes are gone)."""
    host = _own(host)
    if host is None or available():
        return
    with _locked():
        while _nat("-D", CHAIN, *_rule(host), check=False).returncode == 0:
            pass
        if not rules():  # the last node gone: nothing of datakit is left in the nat table
            _nat("-D", "POSTROUTING", *JUMP, check=False)
            _nat("-X", CHAIN, check=False)
    root = cgroup2_root()
    for folder in (root / cgroup(host), root / "datakit"):
        with contextlib.suppress(OSError):  # busy: a process is still in it; kept, harmless
            folder.rmdir()


def rules() -> list[str]:
    """The SNAT rules in place, as `iptables -S` prints them."""
    out = _nat("-S", CHAIN, check=False)
    return [line for line in out.stdout.splitlines() if line.startswith("-A ")]


@contextlib.contextmanager
def _locked():
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _rule(host: str) -> list[str]:
    return ["-s", f"{SHARED}/32", "-d", "127.0.0.0/8", "-m", "cgroup", "--path", cgroup(host),
            "-m", "comment", "--comment", f"datakit:source {host}",
            "-j", "SNAT", "--to-source", host]


def _nat(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["iptables", "-w", "5", "-t", "nat", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=30)
    if check and proc.returncode != 0:
        raise OwnAddressError(f"`iptables -t nat {' '.join(args)}` failed: "
                              f"{proc.stderr.strip() or proc.returncode}")
    return proc
