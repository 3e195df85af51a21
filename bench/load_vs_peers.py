"""Benchmark: datakit's Locust users against the reference clients, on one stack's servers.

PostgreSQL (the current primary, asked of the servers): pgbench with `SELECT 1` and with
its built-in select-only script (`-S`, scale 1 in a scratch `datakit_bench` database), at
8 clients, prepared protocol; Locust's own contrib `PostgresUser` (locust.contrib.postgres:
one connection per user, times truncated to whole ms by the contrib client); datakit's
pooled `PostgresSelectOneUser` with one and with two worker processes, same concurrency and
duration, no think time. At 1 client: pgbench against datakit's user, for latency.
Redis (the current master, asked of Sentinel): redis-benchmark GET at 8 clients against
datakit's `RedisGetUser` with one and two worker processes, and at 1 client against one
user, for latency. Latencies of the Locust runs come from datakit's microsecond
histograms (query time on the connection; pool wait is reported beside it).

On a TLS stack every client speaks TLS, the reference ones too (pgbench with verify-full
and the stack's CA, redis-benchmark --tls --cacert), so the ratios compare like with like.

Prints one line per tool, `NAME rps=X p50_ms=Y p99_ms=Z`, then the ratios.
Run: .venv/bin/python bench/load_vs_peers.py [--stack local] [--duration 10] [--clients 8]

`--metrics` measures instead what the stack's metrics cost the servers: pgbench -S and
redis-benchmark GET at `--clients`, with the exporters and Prometheus running and with them
paused (SIGSTOP: nothing scrapes, so Kafka's JMX agents idle too), in alternating rounds so
drift of the machine falls on both; prints `metrics_on`/`metrics_off` lines and the cost.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from datakit.load import runner
from datakit.load.histogram import Histogram
from datakit.nodes import tls
from datakit.stack import outputs as stack_outputs
from datakit.stack.schema import Node, StackOutputs

CONTRIB_LOCUSTFILE = '''
from locust import constant, task
from locust.contrib.postgres import PostgresUser

from datakit.load import listeners  # noqa: F401  (the same microsecond histograms)
from datakit.load.settings import current


class ContribSelectOne(PostgresUser):
    wait_time = constant(0)
    conn_string = current().postgres.write_dsn

    @task
    def select_one(self):
        self.client.execute_query("SELECT 1")
'''


def line(name: str, rps: float, p50: float | None, p99: float | None, note: str = "") -> dict:
    fmt = lambda v: "nan" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"{name} rps={rps:.0f} p50_ms={fmt(p50)} p99_ms={fmt(p99)}{note}", flush=True)
    return {"rps": rps, "p50": p50, "p99": p99}


def libpq_env(outputs: StackOutputs) -> dict[str, str]:
    """PGSSLMODE and PGSSLROOTCERT for the libpq tools on a TLS stack."""
    return {f"PG{k.upper()}": v for k, v in tls.libpq(outputs.tls_for("postgres")).items()}


def primary(outputs: StackOutputs) -> tuple[Node, str]:
    pw = outputs.need_secrets().postgres.superuser
    ssl = "".join(f" {k}={v}" for k, v in tls.libpq(outputs.tls_for("postgres")).items())
    for node in outputs.of("postgres"):
        dsn = (f"host={node.host} port={node.port} user=postgres password={pw} "
               f"connect_timeout=3{ssl}")
        try:
            with psycopg.connect(f"{dsn} dbname=postgres", autocommit=True) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return node, dsn
        except psycopg.Error:
            continue
    sys.exit("no PostgreSQL primary answers: run `datakit up`")


def pgbench(node: Node, password: str, clients: int, duration: int, script: list[str],
            tmp: Path, tag: str, env: dict[str, str]) -> dict:
    prefix = tmp / f"pgb-{tag}"
    cmd = ["pgbench", "-n", "-h", node.host, "-p", str(node.port), "-U", "postgres",
           "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
           "-T", str(duration), "-l", f"--log-prefix={prefix}", *script, "datakit_bench"]
    out = subprocess.run(cmd, env={"PGPASSWORD": password, "PATH": "/usr/bin:/bin", **env},
                         capture_output=True, text=True, check=True, cwd=tmp).stdout
    tps = next(float(w.split("=")[1].split()[0]) for w in out.splitlines()
               if w.startswith("tps ="))
    hist = Histogram()
    for path in glob.glob(f"{prefix}*"):
        with open(path) as log:
            for row in log:
                hist.record(int(row.split()[2]))
    return {"rps": tps, "p50": hist.percentile_ms(50), "p99": hist.percentile_ms(99)}


def locust_run(stack: str, outputs: StackOutputs, out: Path, users: int, duration: int,
               processes: int = 1, **kw) -> tuple[float, dict]:
    options = runner.LoadOptions(stack=stack, outputs=outputs, users=users, duration_s=duration,
                                 processes=processes, out_dir=out, think_ms=(0.0, 0.0),
                                 spawn_rate=users, **kw)
    outcome = runner.run(options)
    types = outcome.final.summary["types"]
    ops = {k: t for k, t in types.items() if not t["derived"]}
    key = max(ops, key=lambda k: ops[k]["count"])
    return outcome.final.summary["totals"]["rps"], {**ops[key], "all": types}


def metrics_daemons(outputs: StackOutputs) -> list[int]:
    pids = [n.handle.pid for n in outputs.nodes
            if n.service in ("exporter", "prometheus") and n.handle.pid]
    if not pids:
        sys.exit("the stack runs no exporters or Prometheus (metrics.enabled)")
    return pids


def metrics_cost(outputs: StackOutputs, node: Node, pw: str, clients: int, duration: int,
                 rounds: int = 3) -> None:
    import os
    import signal
    import statistics

    from redis.sentinel import Sentinel

    rd, secrets = outputs.endpoints.redis, outputs.need_secrets()
    sentinels = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in rd.sentinels)]
    host, port = Sentinel(sentinels, sentinel_kwargs={
        "password": secrets.redis.sentinel}).discover_master(rd.master_name)
    pids, got = metrics_daemons(outputs), {True: {"pg": [], "redis": []},
                                           False: {"pg": [], "redis": []}}
    with tempfile.TemporaryDirectory(prefix="datakit-bench-") as tmpdir:
        for i in range(rounds * 2):
            on = i % 2 == 0
            for pid in pids:
                os.kill(pid, signal.SIGCONT if on else signal.SIGSTOP)
            try:
                got[on]["pg"].append(pgbench(node, pw, clients, duration, ["-S"],
                                             Path(tmpdir), f"m{i}")["rps"])
                out = subprocess.run(["redis-benchmark", "-h", host, "-p", str(port), "-a",
                                      secrets.redis.default, "-c", str(clients), "-n",
                                      "200000", "-t", "get", "--csv"], capture_output=True,
                                     text=True, check=True).stdout
                row = next(r for r in csv.DictReader(io.StringIO(out)) if r["test"] == "GET")
                got[on]["redis"].append(float(row["rps"]))
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
    for service in ("pg", "redis"):
        on, off = (statistics.median(got[x][service]) for x in (True, False))
        print(f"metrics_on {service} rps={on:.0f}  (median of {rounds})", flush=True)
        print(f"metrics_off {service} rps={off:.0f}  (exporters and Prometheus paused)")
        print(f"metrics_cost {service} {100 * (off - on) / off:.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stack", default="local")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--metrics", action="store_true",
                    help="what the exporters and Prometheus cost the servers' throughput")
    args = ap.parse_args()
    outputs = stack_outputs.read(args.stack)
    secrets = outputs.need_secrets()
    node, dsn = primary(outputs)
    pw = secrets.postgres.superuser
    with psycopg.connect(f"{dsn} dbname=postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'datakit_bench'"
                            ).fetchone():
            conn.execute("CREATE DATABASE datakit_bench")
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", node.host, "-p",
                    str(node.port), "-U", "postgres", "datakit_bench"],
                   env={"PGPASSWORD": pw, "PATH": "/usr/bin:/bin", **libpq_env(outputs)},
                   check=True, capture_output=True)
    if args.metrics:
        metrics_cost(outputs, node, pw, args.clients, args.duration)
        return
    d, c, env = args.duration, args.clients, libpq_env(outputs)
    res: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="datakit-bench-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "select1.sql").write_text("SELECT 1;\n")
        r = pgbench(node, pw, c, d, ["-f", "select1.sql"], tmp, "s1", env)
        # Several clients per thread: pgbench times them with a clock it refreshes only
        # when it waits, so most of its logged latencies read 0 us. Compare latency at 1
        # client (pgbench_c1), where every transaction waits.
        res["pgbench"] = line("pgbench", r["rps"], r["p50"], r["p99"],
                              "  (SELECT 1; latencies coarse, see pgbench_c1)")
        r = pgbench(node, pw, c, d, ["-S"], tmp, "S", env)
        res["pgbench_S"] = line("pgbench_S", r["rps"], r["p50"], r["p99"], "  (-S)")

        contrib = tmp / "contrib_locustfile.py"
        contrib.write_text(CONTRIB_LOCUSTFILE)
        rps, t = locust_run(args.stack, outputs, tmp / "contrib", c, d, locustfile=contrib,
                            user_classes=["ContribSelectOne"])
        res["locust_contrib"] = line("locust_contrib", rps, t["p50_ms"], t["p99_ms"],
                                     "  (whole-ms times from the contrib client)")
        for procs in (1, 2):
            rps, t = locust_run(args.stack, outputs, tmp / f"dk{procs}", c, d, procs,
                                workload="pg-select1")
            wait = t["all"].get("postgres pool_wait/write", {})
            name = "datakit_pg" if procs == 1 else "datakit_pg_2proc"
            res[name] = line(name, rps, t["p50_ms"], t["p99_ms"],
                             f"  (processes={procs}; pool wait p50={wait.get('p50_ms')} ms)")

        r = pgbench(node, pw, 1, d, ["-f", "select1.sql"], tmp, "c1", env)
        res["pgbench_c1"] = line("pgbench_c1", r["rps"], r["p50"], r["p99"], "  (1 client)")
        rps, t = locust_run(args.stack, outputs, tmp / "dk-c1", 1, d, workload="pg-select1")
        res["datakit_pg_c1"] = line("datakit_pg_c1", rps, t["p50_ms"], t["p99_ms"],
                                    "  (1 user)")

        rd = outputs.endpoints.redis
        from redis.sentinel import Sentinel

        sentinels = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in rd.sentinels)]
        files = outputs.tls_for("redis")
        host, port = Sentinel(sentinels, sentinel_kwargs={
            "password": secrets.redis.sentinel, **tls.redis(files)}).discover_master(
                rd.master_name)
        secure = ["--tls", "--cacert", files["ca"]] if files else []

        def redis_benchmark(clients: int, requests: int) -> dict:
            out = subprocess.run(["redis-benchmark", *secure, "-h", host, "-p", str(port), "-a",
                                  secrets.redis.default, "-c", str(clients),
                                  "-n", str(requests), "-t", "get", "--csv"],
                                 capture_output=True, text=True, check=True).stdout
            row = next(r for r in csv.DictReader(io.StringIO(out)) if r["test"] == "GET")
            return {"rps": float(row["rps"]), "p50": float(row["p50_latency_ms"]),
                    "p99": float(row["p99_latency_ms"])}

        r = redis_benchmark(c, 200000)
        res["redis_benchmark"] = line("redis_benchmark", r["rps"], r["p50"], r["p99"])
        for procs in (1, 2):
            rps, t = locust_run(args.stack, outputs, tmp / f"rd{procs}", c, d, procs,
                                workload="redis-get")
            name = "datakit_redis" if procs == 1 else "datakit_redis_2proc"
            res[name] = line(name, rps, t["p50_ms"], t["p99_ms"], f"  (processes={procs})")
        r = redis_benchmark(1, 50000)
        res["redis_benchmark_c1"] = line("redis_benchmark_c1", r["rps"], r["p50"], r["p99"],
                                         "  (1 client)")
        rps, t = locust_run(args.stack, outputs, tmp / "rd-c1", 1, d, workload="redis-get")
        res["datakit_redis_c1"] = line("datakit_redis_c1", rps, t["p50_ms"], t["p99_ms"],
                                       "  (1 user)")

    base, rbase = res["pgbench"]["rps"], res["redis_benchmark"]["rps"]
    print()
    for name in ("locust_contrib", "datakit_pg", "datakit_pg_2proc"):
        print(f"ratio {name}/pgbench rps={res[name]['rps'] / base:.2f}")
    print(f"ratio datakit_pg/locust_contrib rps="
          f"{res['datakit_pg']['rps'] / res['locust_contrib']['rps']:.2f}")
    p1, d1 = res["pgbench_c1"], res["datakit_pg_c1"]
    print(f"ratio datakit_pg_c1/pgbench_c1 p50={d1['p50'] / p1['p50']:.2f} "
          f"p99={d1['p99'] / p1['p99']:.2f}")
    for name in ("datakit_redis", "datakit_redis_2proc"):
        print(f"ratio {name}/redis_benchmark rps={res[name]['rps'] / rbase:.2f}")
    r1, d1 = res["redis_benchmark_c1"], res["datakit_redis_c1"]
    print(f"ratio datakit_redis_c1/redis_benchmark_c1 p50={d1['p50'] / r1['p50']:.2f} "
          f"p99={d1['p99'] / r1['p99']:.2f}")


if __name__ == "__main__":
    main()
