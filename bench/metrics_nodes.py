"""What the metrics nodes cost: memory and CPU of each exporter and of Prometheus, and what
one scrape takes, measured on real servers (a PostgreSQL primary and replica, a Redis
server and a Sentinel) scraped every --interval seconds for --seconds.

    .venv/bin/python bench/metrics_nodes.py [--seconds 30] [--interval 1]

Prints, per daemon, its RSS and CPU share over the window; per job, Prometheus's own
scrape_duration_seconds (mean, max) and samples per scrape; and the report side: the CPU
time of importing matplotlib and of drawing one chart. Ends with one line:
METRICS pg_exporter_rss_mb=.. redis_exporter_rss_mb=.. prometheus_rss_mb=..
pg_scrape_ms=.. redis_scrape_ms=.. exporters_cpu_pct=.. prometheus_cpu_pct=.. mpl_import_cpu_s=..
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datakit.nodes import postgres as pg
from datakit.nodes import process
from datakit.nodes import redis as rd
from datakit.nodes import redis_sentinel as rs
from datakit.nodes.metrics import exporters as ex
from datakit.nodes.metrics import prometheus as prom
from datakit.nodes.metrics import rules
from datakit.nodes.metrics.daemon import rss_bytes
from datakit.nodes.metrics.query import Prometheus
from datakit.nodes.postgres_client import connect
from datakit.nodes.readiness import wait_until
from datakit.topology.baselines import Baselines

PORTS = iter(p for p in range(62700, 62800) if process.port_free(p))  # apart from tests
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def servers(base: Path, pw: str, undo: list) -> dict:
    settings = {"max_connections": 40, "shared_buffers": "16MB", "wal_level": "replica",
                "max_wal_senders": 8, "max_replication_slots": 8}
    common = {"superuser_password": pw, "replication_password": pw, "settings": settings}
    primary = {"name": "primary", "port": next(PORTS), "data_dir": str(base / "primary"),
               **common}
    undo.append(lambda: pg.delete(primary, None))
    pg.create_primary(primary)
    replica = {"name": "replica", "port": next(PORTS), "data_dir": str(base / "replica"),
               "peers": [{"name": "primary", "port": primary["port"]}], **common}
    undo.append(lambda: pg.delete(replica, None))
    pg.create_replica(replica)
    with connect({"port": primary["port"]}, user="postgres", password=pw) as conn:
        ex.ensure_monitor_role(conn, "datakit_monitor", pw)
    redis = {"name": "redis", "port": next(PORTS), "data_dir": str(base / "redis"),
             "password": pw, "settings": {}, "replica": False, "peers": []}
    undo.append(lambda: rd.delete(redis, None))
    rd.create_server(redis)
    sentinel = {"name": "sentinel", "port": next(PORTS), "data_dir": str(base / "sentinel"),
                "password": pw, "master_name": "bench", "master_password": pw, "quorum": 1,
                "settings": {"down-after-milliseconds": 1000},
                "peers": [{"name": "redis", "port": redis["port"]}]}
    undo.append(lambda: rs.delete(sentinel, None))
    rs.create_sentinel(sentinel)
    return {"primary": primary, "replica": replica, "redis": redis, "sentinel": sentinel}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--interval", type=float, default=1)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="datakit-bench-metrics-", dir="/tmp"))
    base.chmod(0o755)
    pw, undo = secrets.token_hex(12), []
    try:
        nodes = servers(base, pw, undo)
        exporters, pids = {}, {}
        for name, node in nodes.items():
            kind = "postgres" if name in ("primary", "replica") else "redis"
            auth = {"user": "datakit_monitor"} if kind == "postgres" else {}
            exporters[name] = {"kind": kind, "name": name, "port": next(PORTS),
                               "dir": str(base / f"exp-{name}"), "target": {"port": node["port"]},
                               "password": pw, **auth}
            undo.append(lambda p=exporters[name]: ex.delete(p, None))
            pids[f"{kind}_exporter {name}"] = ex.start(exporters[name])["pid"]
        jobs = {"postgres": ["primary", "replica"], "redis": ["redis", "sentinel"]}
        server = {"name": "bench", "port": next(PORTS), "dir": str(base / "prometheus"),
                  "scrape_interval_s": args.interval, "retention": "1h",
                  "rules": rules.render(Baselines()),
                  "targets": {job: [{"address": f"127.0.0.1:{exporters[n]['port']}",
                                     "labels": {"node": n}} for n in names]
                              for job, names in jobs.items()}}
        undo.append(lambda: prom.delete(server, None))
        pids["prometheus"] = prom.start(server)["pid"]
        api = Prometheus(prom.url(server))
        wait_until(lambda: len([t for t in api.targets() if t.health == "up"]) == 4,
                   what="every target up", timeout=60)
        before = {name: cpu_s(pid) for name, pid in pids.items()}
        time.sleep(args.seconds)
        share = {name: (cpu_s(pid) - before[name]) / args.seconds * 100
                 for name, pid in pids.items()}
        window = f"{int(args.seconds)}s"
        for name, pid in pids.items():
            print(f"{name:28} rss {rss_bytes(pid) / 2**20:6.1f} MB  cpu {share[name]:5.2f} %")
        scrape = {}
        for job in jobs:
            mean = api.query(f'avg(avg_over_time(scrape_duration_seconds{{job="{job}"}}'
                             f'[{window}]))')[0].points[0][1]
            top = api.query(f'max(max_over_time(scrape_duration_seconds{{job="{job}"}}'
                            f'[{window}]))')[0].points[0][1]
            samples = api.query(f'avg(scrape_samples_scraped{{job="{job}"}})')[0].points[0][1]
            scrape[job] = mean * 1000
            print(f"scrape {job:10} mean {mean * 1000:6.1f} ms  max {top * 1000:6.1f} ms  "
                  f"{samples:.0f} samples")
        code = ("import time; t=time.process_time(); from datakit.load import charts; "
                "a=time.process_time(); charts.line_chart('x', {'a': [(i, i) for i in "
                "range(120)]}, windows=[(3, 5, 'w')]); print(a-t, time.process_time()-a)")
        mpl = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.split()
        print(f"matplotlib import {float(mpl[0]):.3f} s CPU, one chart {float(mpl[1]):.3f} s")
        rss = {name: (rss_bytes(pid) or 0) / 2**20 for name, pid in pids.items()}
        print(f"METRICS pg_exporter_rss_mb={rss['postgres_exporter primary']:.1f} "
              f"redis_exporter_rss_mb={rss['redis_exporter redis']:.1f} "
              f"prometheus_rss_mb={rss['prometheus']:.1f} "
              f"pg_scrape_ms={scrape['postgres']:.1f} redis_scrape_ms={scrape['redis']:.1f} "
              f"exporters_cpu_pct={sum(v for k, v in share.items() if 'exporter' in k):.2f} "
              f"prometheus_cpu_pct={share['prometheus']:.2f} mpl_import_cpu_s={float(mpl[0]):.3f}")
    finally:
        for step in reversed(undo):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - clean up the rest
                print(f"cleanup: {exc}", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
