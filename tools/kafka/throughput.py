"""A 3-node KRaft cluster's steady work under JVM flag variants, run in turn: after a
warm-up, acks=all produce as fast as it goes to an RF 3 / min ISR 2 topic and one consumer
reading it all back (messages per second, and the brokers' CPU seconds per 100k messages,
less swayed by a busy machine than wall time), then produce latency (p50, p99) at a steady
500 messages a second for 20 s. With the load average. A benchmark prints figures; it
asserts nothing.

    .venv/bin/python tools/kafka/throughput.py [--reps 3] [--messages 100000] [--warmup N]
        [--variant NAME=FLAG FLAG ...] ...   (default: base, and base against c1, serial)

Uses ports from --base-port (six) and /tmp; cleans up after itself.
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

from confluent_kafka import Consumer, Producer

from datakit.nodes import kafka, process

TICK = os.sysconf("SC_CLK_TCK")
TOPIC = "bench.throughput"
PACED_RATE, PACED_S = 500, 20
VARIANTS = {"base": [], "c1": ["-XX:TieredStopAtLevel=1"], "serial": ["-XX:+UseSerialGC"]}


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cluster(base: Path, first_port: int, jvm: list[str]) -> tuple[list[dict], dict]:
    creds = {"admin_user": "admin", "admin_password": secrets.token_hex(12),
             "app_user": "app", "app_password": secrets.token_hex(12)}
    ids = (1, 2, 3)
    voters = [{"id": i, "host": "127.0.0.1", "port": first_port + 2 * i - 1} for i in ids]
    cid = kafka.new_cluster_id()
    nodes = [{"node_id": i, "host": "127.0.0.1", "port": first_port + 2 * i - 2,
              "controller_port": first_port + 2 * i - 1, "voters": voters, "cluster_id": cid,
              "heap_mb": 512, "data_dir": str(base / f"kafka-{i}"), "jvm_options": jvm,
              "settings": {"broker.heartbeat.interval.ms": 1000}, **creds} for i in ids]
    props = {"brokers": [{"id": p["node_id"], "host": "127.0.0.1", "port": p["port"]}
                         for p in nodes], "controllers": voters, **creds}
    return nodes, props


def produce(props: dict, count: int, size: int, rate: float = 0.0) -> list[float]:
    """acks=all, as the load tests do, as fast as the cluster takes it (rate 0) or paced at
    `rate` messages a second; returns each message's latency in seconds."""
    producer = Producer({**kafka.client_config(props), "acks": "all", "linger.ms": 5,
                         "enable.idempotence": True})
    latencies: list[float] = []
    payload = os.urandom(size)

    def done(err, _msg, sent=0.0):
        if err is None:
            latencies.append(time.monotonic() - sent)

    began = time.monotonic()
    for i in range(count):
        if rate and (wait := began + i / rate - time.monotonic()) > 0:
            producer.poll(wait)
        sent = time.monotonic()
        while True:
            try:
                producer.produce(TOPIC, payload, key=str(i).encode(),
                                 on_delivery=lambda e, m, s=sent: done(e, m, s))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    return latencies


def consume(props: dict, count: int) -> int:
    consumer = Consumer({**kafka.client_config(props), "group.id": secrets.token_hex(4),
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 1000, "fetch.min.bytes": 65536})
    consumer.subscribe([TOPIC])
    seen, deadline = 0, time.monotonic() + 180
    while seen < count and time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=0.5):
            seen += 0 if msg.error() else 1
    consumer.close()
    return seen


def run(first_port: int, jvm: list[str], messages: int, size: int, warmup: int) -> dict:
    base = Path(tempfile.mkdtemp(prefix="datakit-kafka-tput-", dir="/tmp"))
    base.chmod(0o755)
    nodes, props = cluster(base, first_port, jvm)
    outs: list[dict] = []
    try:
        with ThreadPoolExecutor(3) as pool:
            outs = list(pool.map(kafka.create_node, nodes))
        kafka.wait_cluster_ready({**props, "nodes": outs})
        kafka.ensure_topic({**props, "name": TOPIC, "partitions": 6, "replication_factor": 3,
                            "min_insync_replicas": 2})
        produce(props, warmup, size)  # warm-up: the JIT's, the page cache's
        consume(props, warmup)
        cpu0, t0 = sum(cpu_s(o["pid"]) for o in outs), time.monotonic()
        delivered = len(produce(props, messages, size))
        produced = time.monotonic() - t0
        t1 = time.monotonic()
        seen = consume(props, messages + warmup)
        consumed = time.monotonic() - t1
        cpu = sum(cpu_s(o["pid"]) for o in outs) - cpu0
        # Latency at a steady rate, as a load test's users send: not a queue's wait.
        paced = sorted(produce(props, PACED_RATE * PACED_S, size, rate=PACED_RATE))
        return {"produce_per_s": delivered / produced, "consume_per_s": seen / consumed,
                "cpu_s_per_100k": cpu * 100000 / (delivered + seen),
                "p50_ms": 1000 * paced[len(paced) // 2],
                "p99_ms": 1000 * paced[int(len(paced) * 0.99)]}
    finally:
        for o in outs:  # one after another: process's reaping is not thread-safe
            kafka.kill_node(o)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=20000, help="messages before measuring")
    ap.add_argument("--base-port", type=int, default=62280)
    ap.add_argument("--variant", action="append", default=[],
                    help=f"a preset ({', '.join(VARIANTS)}) or NAME=FLAG FLAG")
    args = ap.parse_args()
    chosen = args.variant or ["base", "c1", "serial"]
    variants = [(v.partition("=")[0], v.partition("=")[2].split()) if "=" in v
                else (v, VARIANTS[v]) for v in chosen]
    for port in range(args.base_port, args.base_port + 6):
        process.require_free(port, "throughput bench")
    keys = ("produce_per_s", "consume_per_s", "cpu_s_per_100k", "p50_ms", "p99_ms")
    results: dict[str, list[dict]] = {name: [] for name, _ in variants}
    for rep in range(1, args.reps + 1):
        for name, jvm in variants:
            load = os.getloadavg()[0]
            r = run(args.base_port, jvm, args.messages, args.size, args.warmup)
            results[name].append(r)
            print(f"rep {rep} {name:>8}: load {load:4.1f} "
                  + " ".join(f"{k}={r[k]:.1f}" for k in keys), flush=True)
    for name, rows in results.items():
        print(f"median {name:>8}: " + " ".join(
            f"{k}={statistics.median(r[k] for r in rows):.1f}" for k in keys))


if __name__ == "__main__":
    main()
