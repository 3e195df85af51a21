"""Network faults between loopback addresses, proven with real sockets and a real Redis.

A, B, C are three loopback addresses; B serves (a TCP echo server, or Redis), A and C are
clients bound to their own address. Each test owns a fresh stack name, and its fixture
sweeps that stack before and after, so no rule outlives a failing test.
"""

from __future__ import annotations

import os
import secrets
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py

from datakit.nodes import process
from datakit.nodes.faults import (
    FaultError,
    Faults,
    FaultsInUse,
    NotLoopback,
    chain_name,
    delayer,
    heal_stale,
    rules,
    state,
)
from datakit.nodes.process import RunAs
from datakit.nodes.readiness import wait_until
from datakit.nodes.redis_conf import server_binary
from tests.support.loopback_probes import (
    echo_server,
    median_rtt_ms,
    one_way_ms,
    resp_ping,
    tcp_answers,
    udp_delivered,
)

A, B, C = "127.0.77.2", "127.0.77.3", "127.0.77.4"
DELAY_MS = 100

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network faults need root")


def leftovers(stack: str) -> list[str]:
    """Everything of `stack`'s faults still on the machine: rules, chains, delay
    processes, qdiscs on lo, its state file."""
    tag, chain = rules.comment(stack), chain_name(stack)
    found = [line for line in rules.listing().splitlines() if tag in line or chain in line]
    found += [f"delay process {pid}" for pid, _ in delayer.strays(stack)]
    qdiscs = subprocess.run(["tc", "qdisc", "show", "dev", "lo"], capture_output=True,
                            text=True, check=True).stdout
    found += [f"qdisc {q}" for q in qdiscs.splitlines() if not q.startswith("qdisc noqueue")]
    if state.path(stack).exists():
        found.append(f"state file {state.path(stack)}")
    return found


@pytest.fixture
def stack() -> Iterator[str]:
    name = f"test-faults-{secrets.token_hex(3)}"
    heal_stale(name, force=True)
    yield name
    heal_stale(name, force=True)  # a failed test leaves nothing behind either
    assert leftovers(name) == []


@pytest.fixture
def server(free_port) -> Iterator[tuple[str, int]]:
    with echo_server(B, free_port()) as address:
        yield address


# -- partitions -------------------------------------------------------------------------


def test_both_way_partition_cuts_a_and_b_only(stack, server, free_port):
    faults = Faults(stack)
    assert tcp_answers(A, server) and tcp_answers(C, server)
    faults.partition({A}, {B})
    assert not tcp_answers(A, server)
    assert tcp_answers(C, server)  # another client of B is not cut
    port = free_port()
    assert udp_delivered(A, B, port) == 0
    assert udp_delivered(B, A, port) == 0
    assert udp_delivered(C, B, port) == 200
    assert udp_delivered(A, C, port) == 200  # A is cut from B, not from everyone
    faults.heal()


def test_one_way_partition_cuts_a_to_b_and_b_still_reaches_a(stack, server, free_port):
    faults = Faults(stack)
    faults.partition({A}, {B}, one_way=True)
    port = free_port()
    assert udp_delivered(A, B, port) == 0
    assert udp_delivered(B, A, port) == 200  # b -> a still delivers
    assert not tcp_answers(A, server)
    with echo_server(A, free_port()) as on_a:
        # B's SYN reaches A, but A's answer is cut: a handshake needs both ways.
        assert not tcp_answers(B, on_a)
        assert tcp_answers(C, on_a)
    assert tcp_answers(C, server)
    faults.heal()


def test_heal_restores_every_link_and_leaves_nothing(stack, server, free_port):
    faults = Faults(stack)
    faults.partition({A}, {B, C})
    faults.slow(C, B, DELAY_MS)
    faults.lossy(B, C, 50)
    assert len(faults.active) == 3
    removed = faults.heal()
    assert any(chain_name(stack) in line for line in removed)
    assert leftovers(stack) == []
    assert faults.active == []
    port = free_port()
    for src, dst in ((A, B), (B, A), (A, C), (C, A), (B, C), (C, B)):
        assert udp_delivered(src, dst, port) == 200, (src, dst)
    assert tcp_answers(A, server) and tcp_answers(C, server)
    assert median_rtt_ms(C, server) < DELAY_MS / 2


# -- latency and loss -------------------------------------------------------------------


def test_slow_adds_the_delay_on_that_link_one_way_only(stack, server, free_port):
    faults = Faults(stack)
    faults.slow(A, B, DELAY_MS)
    # The delay is a floor no scheduling can undercut; the other links stay far below it.
    assert median_rtt_ms(A, server) >= DELAY_MS
    assert median_rtt_ms(C, server) < DELAY_MS / 2
    port = free_port()
    assert one_way_ms(A, B, port) >= DELAY_MS
    assert one_way_ms(B, A, port) < DELAY_MS / 2  # the way back is not slowed
    with pytest.raises(FaultError, match="already slowed"):
        faults.slow(A, B, DELAY_MS)
    faults.heal()
    assert median_rtt_ms(A, server) < DELAY_MS / 2


def test_lossy_drops_packets_on_that_link_only(stack, free_port):
    faults = Faults(stack)
    faults.lossy(A, B, 50)
    port = free_port()
    # 400 datagrams at 50%: 200 expected, sd 10; the bounds are 10 sd away.
    assert 100 <= udp_delivered(A, B, port, count=400) <= 300
    assert udp_delivered(B, A, port, count=400) == 400
    assert udp_delivered(C, B, port, count=400) == 400
    faults.heal()


def test_a_long_stack_name_gets_a_chain_iptables_accepts(server):
    stack = f"a-very-long-stack.name_for-{secrets.token_hex(8)}"
    chain = chain_name(stack)
    assert len(chain) == 28 and chain.startswith("DATAKIT-a-very-long")
    assert chain != chain_name(stack + "x")
    try:
        with Faults(stack) as faults:
            faults.partition({A}, {B})
            assert rules.chain_exists(chain)
            assert not tcp_answers(A, server)
    finally:
        heal_stale(stack, force=True)
    assert leftovers(stack) == []


# -- the loopback-only rule -------------------------------------------------------------

OUTSIDE = ["10.0.0.1", "192.168.1.10", "0.0.0.0/0", "::1", "localhost", "127.0.0.0/8", ""]


@pytest.mark.parametrize("bad", OUTSIDE)
def test_addresses_outside_loopback_are_refused_and_nothing_is_installed(stack, bad):
    faults = Faults(stack)
    attempts = [lambda: faults.partition({bad}, {B}), lambda: faults.partition({A, bad}, {B}),
                lambda: faults.partition({A}, {bad}, one_way=True),
                lambda: faults.slow(A, bad, DELAY_MS), lambda: faults.lossy(bad, B, 10)]
    for attempt in attempts:
        with pytest.raises(NotLoopback) as refused:
            attempt()
        message = str(refused.value)
        assert "\n" not in message
        assert repr(bad) in message or f" {bad} " in message
        assert "127.0.0.0/8" in message
    assert leftovers(stack) == []
    assert not rules.chain_exists(chain_name(stack))


def test_faults_that_make_no_sense_are_refused(stack):
    faults = Faults(stack)
    with pytest.raises(FaultError, match="on both sides"):
        faults.partition({A, B}, {B})
    with pytest.raises(FaultError, match="not a link"):
        faults.slow(A, A, 10)
    with pytest.raises(FaultError, match="percent"):
        faults.lossy(A, B, 0)
    with pytest.raises(FaultError, match="jitter_ms"):
        faults.slow(A, B, 10, jitter_ms=20)
    assert leftovers(stack) == []


def test_a_missing_iptables_is_named_with_its_package(stack, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FaultError, match="apt-get install iptables"):
        Faults(stack).partition({A}, {B})


# -- healing on exit, signals and kill -9 -----------------------------------------------


def test_context_manager_heals_when_the_block_raises(stack, server):
    with pytest.raises(RuntimeError), Faults(stack) as faults:
        faults.partition({A}, {B})
        faults.slow(C, B, DELAY_MS)
        assert not tcp_answers(A, server)
        raise RuntimeError("a drill failed")
    assert leftovers(stack) == []
    assert tcp_answers(A, server)


CHILD = """
import sys, time
from datakit.nodes.faults import Faults
stack, a, b, c, form = sys.argv[1:6]

def install(faults):
    faults.partition({a}, {b})
    faults.slow(c, b, 100)
    print("installed", flush=True)
    time.sleep(600)

if form == "with":
    with Faults(stack) as faults:
        install(faults)
else:
    install(Faults(stack))
"""


@pytest.fixture
def spawn_child() -> Iterator:
    """Start a process that installs a partition A<->B and a slow C->B and sleeps; any
    left alive by a failing test is killed before the stack fixture sweeps."""
    children: list[subprocess.Popen] = []

    def spawn(stack: str, *, use_with: bool) -> subprocess.Popen:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, stack, A, B, C, "with" if use_with else "bare"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        children.append(child)
        ready, _, _ = select.select([child.stdout], [], [], 30)
        if not ready or child.stdout.readline().strip() != "installed":
            child.kill()
            pytest.fail(f"the fault child did not start: {child.communicate()[1]}")
        return child

    yield spawn
    for child in children:
        child.kill()
        child.communicate(timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_heals_before_the_process_ends(stack, server, sig, spawn_child):
    child = spawn_child(stack, use_with=True)
    assert not tcp_answers(A, server)
    child.send_signal(sig)
    child.wait(timeout=30)
    # SIGTERM: the SystemExit(128 + 15) that Faults raises; SIGINT: Python's own exit.
    assert child.returncode == (143 if sig == signal.SIGTERM else -signal.SIGINT)
    assert leftovers(stack) == []
    assert tcp_answers(A, server)


@pytest.mark.parametrize("record", ["kept", "lost"])
def test_kill_9_leaves_rules_that_heal_stale_removes(stack, server, record, spawn_child):
    child = spawn_child(stack, use_with=False)
    with pytest.raises(FaultsInUse, match=str(child.pid)):
        heal_stale(stack)  # a live owner is a running drill, not a stale one
    with pytest.raises(FaultsInUse), Faults(stack) as second:
        second.partition({C}, {B})  # nor does a second run take its stack over
    assert not tcp_answers(A, server)  # and the refusals left its partition in place
    child.kill()
    child.wait(timeout=30)
    assert rules.chain_exists(chain_name(stack))
    assert not tcp_answers(A, server)  # the partition outlived its owner
    # The delay process notices its owner is gone and exits; its rule bypasses then.
    wait_until(lambda: not delayer.strays(stack), what="the orphaned delay process")
    if record == "lost":
        state.forget(stack)  # found by chain name and tag alone
    removed = heal_stale(stack)
    assert any(chain_name(stack) in line for line in removed)
    assert leftovers(stack) == []
    assert tcp_answers(A, server)


def test_the_next_fault_run_removes_a_killed_runs_rules(stack, server, spawn_child):
    child = spawn_child(stack, use_with=False)
    child.kill()
    child.wait(timeout=30)
    with Faults(stack) as faults:
        faults.partition({C}, {B})
        assert tcp_answers(A, server)  # the killed run's partition is gone
        assert not tcp_answers(C, server)
        assert faults.active == [f"partition {C} <-> {B}"]
    assert leftovers(stack) == []


def test_heal_stale_follows_the_record_to_a_chain_of_another_name(stack, server):
    old = f"DATAKIT-old-{secrets.token_hex(4)}"
    state.save(state.Record(stack, old, owner_pid=1, owner_start_time=-1))
    rules.iptables("-N", old)
    rules.iptables("-I", "INPUT", "1", "-j", old)
    rules.iptables("-A", old, *rules.links(A, B)[0], "-j", "DROP")
    assert not tcp_answers(A, server)
    removed = heal_stale(stack)
    assert any(old in line for line in removed)
    assert old not in rules.listing()
    assert tcp_answers(A, server)


# -- a real server ----------------------------------------------------------------------


def _redis(account: RunAs, node_dir: Path, host: str, port: int, *extra: str) -> int:
    account.own(node_dir, 0o755)
    argv = [server_binary(), "--bind", host, "--port", str(port), "--save", "",
            "--appendonly", "no", "--dir", str(node_dir),
            # with no password, protected mode admits 127.0.0.1 only, not 127.0.77.x
            "--protected-mode", "no", *extra]
    return account.spawn(argv, log=node_dir / "redis.log")


@pytest.fixture
def redis_pair(workdir, free_port) -> Iterator[tuple[tuple[str, int], tuple[str, int]]]:
    """A Redis master on B and its replica on C, whose link to the master leaves from C
    (`bind-source-addr`), so a fault between B and C cuts replication."""
    account = RunAs.service("redis")
    master, replica = (B, free_port()), (C, free_port())
    pids = []
    try:
        pids.append(_redis(account, workdir / f"faults-redis-{master[1]}", *master))
        pids.append(_redis(account, workdir / f"faults-redis-{replica[1]}", *replica,
                           "--replicaof", B, str(master[1]), "--bind-source-addr", C))
        link = redis_py.Redis(*replica)
        wait_until(lambda: link.info("replication").get("master_link_status") == "up",
                   what="the replica's link to its master")
        yield master, replica
    finally:
        for pid in pids:
            process.stop(pid)


def test_a_partition_cuts_a_real_redis_off_its_client_and_its_replica(stack, redis_pair):
    master, replica = redis_pair
    writer, reader = redis_py.Redis(*master), redis_py.Redis(*replica)
    with Faults(stack) as faults:
        faults.partition({B}, {A, C})
        assert not resp_ping(A, master)
        assert not resp_ping(C, master)
        assert resp_ping("127.0.77.5", master)  # a client outside the partition is not cut
        writer.set("during", "1")  # clients on 127.0.0.1 still reach it, as in the drill
        # WAIT: how many replicas acknowledged the write within 1 s. Cut off: none.
        assert writer.execute_command("WAIT", 1, 1000) == 0
        assert reader.get("during") is None
    # Healed, TCP retransmits what was dropped and the replica catches up by itself.
    wait_until(lambda: writer.execute_command("WAIT", 1, 1000) == 1,
               what="the replica acknowledging again")
    assert reader.get("during") == b"1"
    assert resp_ping(A, master)
