"""One Kafka node's start, variant against variant in back-to-back pairs: its format run
and its JVM from spawn to listening (controller listener, then client listener), in wall
seconds and in CPU seconds of that JVM (less swayed by a busy machine than wall time).
A benchmark prints figures; it asserts nothing.

    .venv/bin/python tools/kafka/start_bench.py [--reps 3] [--base-port 62270]
        [--variant NAME=ENV=VALUE[,ENV=VALUE]|NAME=jvm:FLAG[ FLAG]] ...

Default variants: `nocds` (DATAKIT_KAFKA_CDS=off) and `cds` (the archives of
tools/kafka/cds.py). Each rep runs every variant once, in turn, with the load average
beside it. Uses two ports from --base-port and /tmp; cleans up after itself.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

from datakit.nodes import kafka, process

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def node_props(base: Path, port: int, jvm: list[str]) -> dict:
    creds = {"admin_user": "admin", "admin_password": secrets.token_hex(12),
             "app_user": "app", "app_password": secrets.token_hex(12)}
    voters = [{"id": 1, "host": "127.0.0.1", "port": port + 1}]
    return {"node_id": 1, "host": "127.0.0.1", "port": port, "controller_port": port + 1,
            "voters": voters, "cluster_id": kafka.new_cluster_id(), "heap_mb": 512,
            "data_dir": str(base / "kafka-1"), "jvm_options": jvm, **creds}


def one(port: int, env: dict[str, str], jvm: list[str]) -> dict:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    base = Path(tempfile.mkdtemp(prefix="datakit-kafka-start-", dir="/tmp"))
    base.chmod(0o755)
    outs: dict = {}
    try:
        props = node_props(base, port, jvm)
        cpu0, t0 = children_cpu_s(), time.monotonic()
        kafka.format_node(props)
        fmt_wall, fmt_cpu = time.monotonic() - t0, children_cpu_s() - cpu0
        outs = kafka.start_node(props)
        ctl_cpu = cpu_s(outs["pid"])
        t1 = time.monotonic()
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        client_cpu = cpu_s(outs["pid"])
        return {"format_s": fmt_wall, "format_cpu_s": fmt_cpu, "listen_s": outs["start_s"],
                "listen_cpu_s": ctl_cpu, "client_s": outs["start_s"] + time.monotonic() - t1,
                "client_cpu_s": client_cpu, "cds": bool(outs.get("cds"))}
    finally:
        if outs:
            kafka.kill_node(outs)
        shutil.rmtree(base, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def parse_variant(text: str) -> tuple[str, dict[str, str], list[str]]:
    name, _, spec = text.partition("=")
    if spec.startswith("jvm:"):
        return name, {}, spec[4:].split()
    env = dict(item.split("=", 1) for item in spec.split(",") if item)
    return name, env, []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--base-port", type=int, default=62270)
    ap.add_argument("--variant", action="append", default=[])
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variant] or [
        ("nocds", {"DATAKIT_KAFKA_CDS": "off"}, []), ("cds", {"DATAKIT_KAFKA_CDS": "on"}, [])]
    for port in (args.base_port, args.base_port + 1):
        process.require_free(port, "start_bench")
    results: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    keys = ("format_s", "format_cpu_s", "listen_s", "listen_cpu_s", "client_s", "client_cpu_s")
    for rep in range(1, args.reps + 1):
        for name, env, jvm in variants:
            load = os.getloadavg()[0]
            r = one(args.base_port, env, jvm)
            results[name].append(r)
            print(f"rep {rep} {name:>8}: load {load:4.1f} "
                  + " ".join(f"{k}={r[k]:.2f}" for k in keys) + f" cds={r['cds']}", flush=True)
    for name, rows in results.items():
        print(f"median {name:>8}: " + " ".join(
            f"{k}={statistics.median(r[k] for r in rows):.2f}" for k in keys))


if __name__ == "__main__":
    main()
