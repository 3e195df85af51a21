"""What a network fault costs and adds, measured over real loopback sockets (root only).

    .venv/bin/python bench/faults.py [--delay-ms 50] [--loss 20] [--rounds 200]

Prints the echo round trip (median, p99) of a plain link and of a link slowed one way by
--delay-ms (the delay process holds each packet), the one-way trip both ways, the share of
datagrams a --loss link drops, the bulk TCP throughput through the slowed link, and the
time to install and heal a partition. Ends with one line:
FAULTS added_rtt_ms=.. slow_p99_ms=.. way_back_ms=.. loss_seen_pct=.. slowed_mbit_s=..
install_ms=.. heal_ms=..
"""

from __future__ import annotations

import argparse
import secrets
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from datakit.nodes import process  # noqa: E402
from datakit.nodes.faults import Faults  # noqa: E402
from tests.support.loopback_probes import echo_server, one_way_ms, udp_delivered  # noqa: E402

A, B, C = "127.0.77.12", "127.0.77.13", "127.0.77.14"
PORTS = range(62600, 62700)  # apart from the node tests' 63000-63499 and other benches


def free_port() -> int:
    return next(p for p in PORTS if process.port_free(p) and process.port_free(p, B))


def trips_ms(src: str, server: tuple[str, int], rounds: int) -> list[float]:
    with socket.socket() as sock:
        sock.bind((src, 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(server)
        out = []
        for _ in range(rounds):
            started = time.perf_counter()
            sock.sendall(b"x")
            sock.recv(8)
            out.append((time.perf_counter() - started) * 1000)
    return out


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def bulk_mbit_s(src: str, port: int, megabytes: int = 32) -> float:
    """Send `megabytes` from src to B:port and time it until the receiver has it all."""
    with socket.socket() as listener:
        listener.bind((B, port))
        listener.listen()
        with socket.socket() as tx:
            tx.bind((src, 0))
            tx.connect((B, port))
            rx, _ = listener.accept()
            chunk, total = b"\0" * 65536, megabytes << 20
            started = time.perf_counter()
            sender = threading.Thread(  # the sender runs beside the receiver
                target=lambda: [tx.sendall(chunk) for _ in range(total // len(chunk))])
            sender.start()
            got = 0
            while got < total:
                got += len(rx.recv(1 << 20))
            sender.join()
            rx.close()
    return total * 8 / 1e6 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay-ms", type=float, default=50)
    parser.add_argument("--loss", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    stack = f"bench-faults-{secrets.token_hex(3)}"
    with echo_server(B, free_port()) as server, Faults(stack) as faults:
        plain = trips_ms(C, server, args.rounds)
        plain_mbit = bulk_mbit_s(C, free_port())
        faults.slow(A, B, args.delay_ms)
        slowed = trips_ms(A, server, args.rounds)
        there, back = one_way_ms(A, B, free_port(), 20), one_way_ms(B, A, free_port(), 20)
        slowed_mbit = bulk_mbit_s(A, free_port())
        faults.lossy(C, A, args.loss)
        delivered = udp_delivered(C, A, free_port(), count=2000)
        started = time.perf_counter()
        faults.partition({A, C}, {B})
        install_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        faults.heal()
        heal_ms = (time.perf_counter() - started) * 1000
    print(f"plain link:  rtt median {statistics.median(plain):.3f} ms, p99 {p99(plain):.3f} "
          f"ms, bulk {plain_mbit:.0f} Mbit/s")
    print(f"slowed link: rtt median {statistics.median(slowed):.3f} ms, p99 {p99(slowed):.3f}"
          f" ms (delay {args.delay_ms:g} ms one way), one way {there:.3f} ms, way back "
          f"{back:.3f} ms, bulk {slowed_mbit:.0f} Mbit/s")
    print(f"lossy link:  {args.loss:g}% asked, {100 - delivered / 20:.1f}% of 2000 dropped")
    print(f"partition {A},{C} <-> {B} (4 rules): install {install_ms:.0f} ms, heal (all) "
          f"{heal_ms:.0f} ms")
    added = statistics.median(slowed) - statistics.median(plain)
    print(f"FAULTS added_rtt_ms={added:.2f} slow_p99_ms={p99(slowed):.2f} way_back_ms="
          f"{back:.3f} loss_seen_pct={100 - delivered / 20:.1f} slowed_mbit_s={slowed_mbit:.0f}"
          f" install_ms={install_ms:.0f} heal_ms={heal_ms:.0f}")


if __name__ == "__main__":
    main()
