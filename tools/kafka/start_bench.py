"""One Kafka node's start, variant against variant in back-to-back runs: its format run
(if a JVM of its own) and its node JVM from spawn to listening (controller listener, then
client listener), in wall seconds from the start of it all and in CPU seconds of those
JVMs (less swayed by a busy machine than wall time). A benchmark prints figures; it
asserts nothing.

    .venv/bin/python tools/kafka/start_bench.py [--reps 3] [--base-port 62270] [--home P]
        [--variant nocds|cds|one|NAME=path:one;jvm:FLAG FLAG;env:VAR=VALUE] ...

Default variants: `nocds` (DATAKIT_KAFKA_CDS=off) and `cds` (the archives of
tools/kafka/cds.py), both formatting in a JVM of their own; `one` formats in the node's
JVM (create_node with the launcher). Each rep runs every variant once, in turn, with the
load average beside it. Uses two ports from --base-port and /tmp; cleans up after itself.
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


def node_props(base: Path, port: int, jvm: list[str], home: str | None) -> dict:
    creds = {"admin_user": "admin", "admin_password": secrets.token_hex(12),
             "app_user": "app", "app_password": secrets.token_hex(12)}
    voters = [{"id": 1, "host": "127.0.0.1", "port": port + 1}]
    props = {"node_id": 1, "host": "127.0.0.1", "port": port, "controller_port": port + 1,
             "voters": voters, "cluster_id": kafka.new_cluster_id(), "heap_mb": 512,
             "data_dir": str(base / "kafka-1"), "jvm_options": jvm, **creds}
    return {**props, "home": home} if home else props


def one(port: int, variant: dict, home: str | None) -> dict:
    env = variant.get("env", {})
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    base = Path(tempfile.mkdtemp(prefix="datakit-kafka-start-", dir="/tmp"))
    base.chmod(0o755)
    outs: dict = {}
    try:
        props = node_props(base, port, variant.get("jvm", []), home)
        cpu0, t0 = children_cpu_s(), time.monotonic()
        if variant.get("path") == "one":  # create_node: the node's JVM formats, then serves
            outs = kafka.create_node(props)
            fmt_wall = fmt_cpu = 0.0
        else:  # a format JVM, then the node's
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
        return {"format_s": fmt_wall, "format_cpu_s": fmt_cpu,
                "listen_s": t1 - t0,
                "listen_cpu_s": fmt_cpu + ctl_cpu,
                "client_s": time.monotonic() - t0, "client_cpu_s": fmt_cpu + client_cpu,
                "cds": bool(outs.get("cds"))}
    finally:
        if outs:
            kafka.kill_node(outs)
        shutil.rmtree(base, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


PRESETS = {
    "nocds": {"env": {"DATAKIT_KAFKA_CDS": "off"}},  # two JVMs, the JDK's archive only
    "cds": {},  # two JVMs (format, then node), with the CDS archives
    "one": {"path": "one"},  # create_node: one JVM formats and serves
}


def parse_variant(text: str) -> tuple[str, dict]:
    """NAME (a preset) or NAME=key:value;... with keys path (one|two), jvm (flags,
    space-separated), env (VAR=VALUE,...)."""
    name, _, spec = text.partition("=")
    if not spec:
        return name, PRESETS[name]
    variant: dict = {}
    for part in filter(None, spec.split(";")):
        key, _, value = part.partition(":")
        if key == "jvm":
            variant["jvm"] = value.split()
        elif key == "env":
            variant["env"] = dict(item.split("=", 1) for item in value.split(",") if item)
        else:
            variant[key] = value
    return name, variant


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--base-port", type=int, default=62270)
    ap.add_argument("--variant", action="append", default=[],
                    help=f"a preset ({', '.join(PRESETS)}) or NAME=path:one;jvm:FLAGS;env:V=X")
    ap.add_argument("--home", help="the Kafka prefix (default: the bootstrap's)")
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variant or ["nocds", "cds"]]
    for port in (args.base_port, args.base_port + 1):
        process.require_free(port, "start_bench")
    results: dict[str, list[dict]] = {name: [] for name, _ in variants}
    keys = ("format_s", "format_cpu_s", "listen_s", "listen_cpu_s", "client_s", "client_cpu_s")
    for rep in range(1, args.reps + 1):
        for name, variant in variants:
            load = os.getloadavg()[0]
            r = one(args.base_port, variant, args.home)
            results[name].append(r)
            print(f"rep {rep} {name:>8}: load {load:4.1f} "
                  + " ".join(f"{k}={r[k]:.2f}" for k in keys) + f" cds={r['cds']}", flush=True)
    for name, rows in results.items():
        print(f"median {name:>8}: " + " ".join(
            f"{k}={statistics.median(r[k] for r in rows):.2f}" for k in keys))


if __name__ == "__main__":
    main()
