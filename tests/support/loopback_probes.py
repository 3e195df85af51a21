"""Real-socket probes between loopback addresses, for the network-fault tests.

Every probe binds its client to a chosen source address (`bind((src, 0))`), since the
fault rules match source and destination: an unbound client to 127.0.77.3 would leave
from 127.0.0.1. Probes answer what happened (answered or not, how many delivered, how
long a trip took); the tests state what that must be.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import socketserver
import statistics
import threading
import time
from collections.abc import Iterator

SO_RCVBUFFORCE = 33
DRAIN_S = 0.5  # silence after the last datagram that ends a count


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def echo_server(host: str, port: int) -> Iterator[tuple[str, int]]:
    """A TCP echo server on (host, port) for the length of the block."""
    server = _Server((host, port), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield host, port
    finally:
        server.shutdown()
        server.server_close()


def _client(src: str, timeout: float) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(timeout)
    sock.bind((src, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def tcp_answers(src: str, server: tuple[str, int], timeout: float = 1.0) -> bool:
    """True when a client on `src` connects to `server` and gets its bytes echoed."""
    token = secrets.token_bytes(8)
    try:
        with _client(src, timeout) as sock:
            sock.connect(server)
            sock.sendall(token)
            return sock.recv(64) == token
    except OSError:
        return False


def median_rtt_ms(src: str, server: tuple[str, int], rounds: int = 15) -> float:
    """Median round trip of one small echo over one connection from `src`."""
    with _client(src, 10.0) as sock:
        sock.connect(server)
        trips = []
        for _ in range(rounds):
            started = time.perf_counter()
            sock.sendall(b"x")
            sock.recv(8)
            trips.append((time.perf_counter() - started) * 1000)
    return statistics.median(trips)


def _receiver(dst: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)  # hold every datagram
    sock.bind((dst, port))
    return sock


def udp_delivered(src: str, dst: str, port: int, count: int = 200) -> int:
    """How many of `count` datagrams sent from `src` arrive at (dst, port)."""
    token = secrets.token_hex(4).encode()
    with _receiver(dst, port) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.bind((src, 0))
        for i in range(count):
            tx.sendto(token + b"%d" % i, (dst, port))
        rx.settimeout(DRAIN_S)
        seen = set()
        with contextlib.suppress(TimeoutError):
            while len(seen) < count:
                data = rx.recv(64)
                if data.startswith(token):
                    seen.add(data)
    return len(seen)


def one_way_ms(src: str, dst: str, port: int, rounds: int = 5) -> float:
    """Median one-way trip src -> dst of a datagram: one machine, one clock, so it is
    measured directly, and a delay on dst -> src does not enter it."""
    with _receiver(dst, port) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.bind((src, 0))
        rx.settimeout(10.0)
        trips = []
        for _ in range(rounds):
            started = time.perf_counter()
            tx.sendto(b"t", (dst, port))
            rx.recv(8)
            trips.append((time.perf_counter() - started) * 1000)
    return statistics.median(trips)


def resp_ping(src: str, server: tuple[str, int], timeout: float = 1.0) -> bool:
    """True when a Redis on `server` answers PING (RESP) to a client bound to `src`."""
    try:
        with _client(src, timeout) as sock:
            sock.connect(server)
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64) == b"+PONG\r\n"
    except OSError:
        return False
