"""Kafka KRaft figures on this machine: one node start-to-ready, a 3-node cluster's ready
time, RSS per broker, stop times. A benchmark prints figures; it asserts nothing.

    .venv/bin/python tools/kafka/bench.py [--heap-mb 512] [--runs 1] [--base-port 62250]

Uses ports base..base+11 on loopback and /tmp for data; cleans up after itself.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from datakit.nodes import kafka, process


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cluster(n: int, base: Path, first_port: int, heap_mb: int) -> tuple[list[dict], dict]:
    creds = {"admin_user": "admin", "admin_password": secrets.token_hex(12),
             "app_user": "app", "app_password": secrets.token_hex(12)}
    voters = [{"id": i, "host": "127.0.0.1", "port": first_port + 2 * i + 1}
              for i in range(1, n + 1)]
    cid = kafka.new_cluster_id()
    nodes = [{"node_id": i, "port": first_port + 2 * i, "controller_port": first_port + 2 * i + 1,
              "host": "127.0.0.1", "voters": voters, "cluster_id": cid, "heap_mb": heap_mb,
              "data_dir": str(base / f"kafka-{i}"), **creds} for i in range(1, n + 1)]
    props = {"brokers": [{"id": p["node_id"], "port": p["port"]} for p in nodes],
             "controllers": voters, **creds}
    for p in nodes:
        for port in (p["port"], p["controller_port"]):
            process.require_free(port, f"bench node {p['node_id']}")
    return nodes, props


def run(n: int, first_port: int, heap_mb: int) -> dict:
    base = Path(tempfile.mkdtemp(prefix="datakit-kafka-bench-", dir="/tmp"))
    base.chmod(0o755)
    nodes, props = cluster(n, base, first_port, heap_mb)
    outs: list[dict] = []
    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(kafka.create_node, nodes))
        created = time.monotonic() - t0
        ready = kafka.wait_cluster_ready({**props, "nodes": outs})
        total = time.monotonic() - t0
        time.sleep(5)
        rss = [rss_mb(o["pid"]) for o in outs]
        t1 = time.monotonic()
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(kafka.stop_node, [{**p, **o} for p, o in zip(nodes, outs, strict=True)]))
        stop = time.monotonic() - t1
        return {"create_s": created, "ready_s": total, "quorum_and_brokers_s": ready["ready_s"],
                "start_s": max(o["start_s"] for o in outs), "rss_mb": rss, "stop_all_s": stop}
    finally:
        for o in outs:
            kafka.kill_node(o)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heap-mb", type=int, default=512)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--base-port", type=int, default=62250)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"heap {args.heap_mb} MB")
    results = {1: [], 3: []}
    for _ in range(args.runs):
        for n in (1, 3):
            r = run(n, args.base_port, args.heap_mb)
            results[n].append(r)
            print(f"{n} node(s): create {r['create_s']:.1f}s, all ready {r['ready_s']:.1f}s, "
                  f"rss {' '.join(f'{m:.0f}' for m in r['rss_mb'])} MB, "
                  f"graceful stop of all {r['stop_all_s']:.1f}s")
    one = statistics.median(r["ready_s"] for r in results[1])
    three = statistics.median(r["ready_s"] for r in results[3])
    rss = statistics.median(m for r in results[3] for m in r["rss_mb"])
    print(f"kafka_node_ready_s={one:.1f} kafka_3node_ready_s={three:.1f} "
          f"kafka_broker_rss_mb={rss:.0f}")


if __name__ == "__main__":
    main()
