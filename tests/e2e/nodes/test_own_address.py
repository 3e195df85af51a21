"""A node's own loopback address: the connections its daemon dials leave from it, and a
fault aimed at the node reaches them both ways. A real daemon (started as every local node
is, by RunAs.spawn), a real TCP server, the real firewall."""

from __future__ import annotations

import secrets
import socketserver
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from datakit.nodes import own_address, process
from datakit.nodes.faults import Faults, heal_stale
from datakit.nodes.process import RunAs
from datakit.nodes.readiness import wait_until

NODE, SERVER = "127.0.79.2", "127.0.79.3"

# The node's daemon: dials the server unbound (as a replica or a broker does), then once a
# tenth of a second sends a byte and says whether the echo came back.
DIALLER = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.settimeout(0.5)
while True:
    s.sendall(b"x")
    try:
        print("echo" if s.recv(1) else "closed", flush=True)
    except TimeoutError:
        print("silence", flush=True)
    time.sleep(0.1)
"""

pytestmark = pytest.mark.skipif(bool(own_address.available()),
                                reason=f"{own_address.available()}")


class _Recording(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    peers: list[str]
    received = 0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.server.peers.append(self.client_address[0])
        while data := self.request.recv(4096):
            self.server.received += len(data)
            self.request.sendall(data)


@pytest.fixture
def server(free_port) -> Iterator[_Recording]:
    srv = _Recording((SERVER, free_port()), _Echo)
    srv.peers = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def dialler(server, tmp_path) -> Iterator[tuple[int, Path]]:
    """The node's daemon, dialling the server; killed and its address released after."""
    log = tmp_path / "dialler.log"
    pid = RunAs.service("root").spawn(
        [sys.executable, "-c", DIALLER, SERVER, str(server.server_address[1])],
        log=log, address=NODE)
    wait_until(lambda: server.peers, what="the node's daemon to connect", timeout=10)
    yield pid, log
    process.kill(pid)
    own_address.release(NODE)


def _said(log: Path) -> list[str]:
    return log.read_text().split()


def test_the_daemon_dials_from_its_node_address_in_its_own_cgroup(server, dialler):
    pid, _ = dialler
    assert server.peers == [NODE]  # not 127.0.0.1, which every unbound dial leaves from
    procs = own_address.cgroup2_root() / own_address.cgroup(NODE) / "cgroup.procs"
    assert str(pid) in procs.read_text().split()
    assert sum(f"--to-source {NODE}" in rule for rule in own_address.rules()) == 1


def test_a_cut_from_the_server_to_the_node_silences_what_the_node_dialled(server, dialler):
    _, log = dialler
    stack = f"test-own-{secrets.token_hex(3)}"
    wait_until(lambda: "echo" in _said(log), what="a first echo", timeout=10)
    faults = Faults(stack)
    try:
        # Only the server's answers are cut: they go to the connection the node dialled,
        # addressed to 127.0.0.1 by then; conntrack's record names the node.
        faults.partition({SERVER}, {NODE}, one_way=True)
        before, sent = len(_said(log)), server.received
        wait_until(lambda: _said(log)[before:].count("silence") >= 3,
                   what="the node's echoes to stop", timeout=10)
        assert "echo" not in _said(log)[before + 1:]
        assert server.received > sent  # the node's own bytes still arrive
    finally:
        faults.heal()
        heal_stale(stack, force=True)
    after = len(_said(log))
    wait_until(lambda: "echo" in _said(log)[after:], what="echoes after the heal",
               timeout=20)


def test_release_removes_the_rule_and_the_cgroup(server, tmp_path):
    pid = RunAs.service("root").spawn(
        [sys.executable, "-c", DIALLER, SERVER, str(server.server_address[1])],
        log=tmp_path / "dialler.log", address=NODE)
    wait_until(lambda: server.peers, what="the node's daemon to connect", timeout=10)
    process.kill(pid)
    wait_until(lambda: not process.is_running(pid), what="the daemon gone", timeout=10)
    own_address.release(NODE)
    assert not any(f"--to-source {NODE}" in rule for rule in own_address.rules())
    assert not (own_address.cgroup2_root() / own_address.cgroup(NODE)).exists()
