"""Time a 3-member etcd and a 3-member Patroni cluster at the local stack's settings, as
nodes (no Pulumi): bootstrap, a leader node killed (RTO to the first acknowledged write
through the multi-host DSN, lost writes, the old leader's rejoin), a switchover through the
REST API, and the RSS of each Patroni and etcd process. Medians of --runs.

    .venv/bin/python bench/patroni_failover.py [--runs 3]

rto_s: from the moment the killed node's processes are gone to the first write the new
leader acknowledges; switchover_s: from the REST request to the first write the new leader
acknowledges (switchover_ready_s: until the cluster is ready again, every member streaming).
Ends with one line of medians: etcd_up_s=.. patroni_up_s=.. rto_s=.. rejoin_s=..
switchover_s=.. switchover_ready_s=.. patroni_rss_mb=.. etcd_rss_mb=.. lost=N of M
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from datakit.nodes import etcd, patroni, patroni_cluster, process
from datakit.topology import load

PORTS = range(62000, 62500)  # apart from the node tests' 63000-63499 and the stacks' 64xxx


def free_ports():
    for port in PORTS:
        if process.port_free(port):
            yield port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Writer(threading.Thread):
    """Inserts every 10 ms through the DSN; keeps each acknowledged id, its time and the
    port of the server that acknowledged it."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.acked, self.stopping = dsn, [], threading.Event()

    def run(self) -> None:
        conn = None
        while not self.stopping.is_set():
            try:
                conn = conn or psycopg.connect(self.dsn, autocommit=True)
                row = conn.execute("insert into acks default values returning id").fetchone()
                self.acked.append((time.monotonic(), row[0], conn.info.port))
            except psycopg.Error:
                conn = None
            time.sleep(0.01)

    def first_ack(self, after: float, port: int) -> float | None:
        """When the first write after `after` was acknowledged by the server on `port`."""
        return next((at for at, _, on in list(self.acked) if at > after and on == port), None)

    def wait_ack(self, after: float, port: int, timeout: float = 120) -> float:
        while (at := self.first_ack(after, port)) is None and time.monotonic() - after < timeout:
            time.sleep(0.02)
        return (at or float("nan")) - after


def one_run(base: Path, settings: dict) -> dict:
    ports = free_ports()
    specs = [{"name": f"etcd-{i}", "port": next(ports), "peer_port": next(ports)}
             for i in (1, 2, 3)]
    eprops = [{**s, "data_dir": str(base / s["name"]), "cluster": specs,
               "cluster_token": base.name} for s in specs]
    pw = {k: secrets.token_urlsafe(12) for k in ("su", "repl", "app", "rest")}
    members = [{"name": f"pg-{i}", "port": next(ports), "rest_port": next(ports),
                "data_dir": str(base / f"pg-{i}"), "scope": "bench",
                "etcd": [{"name": s["name"], "port": s["port"]} for s in specs],
                "superuser_password": pw["su"], "replication_password": pw["repl"],
                "rest_password": pw["rest"], "app_user": "app", "app_password": pw["app"],
                "app_database": "appdb", **settings} for i in (1, 2, 3)]
    out: dict = {}
    try:
        began = time.monotonic()
        for e in eprops:
            etcd.create(e)
        etcd.wait_cluster(eprops)
        out["etcd_up_s"] = time.monotonic() - began
        began = time.monotonic()
        for m in members:
            patroni.create(m, wait=False)
        patroni_cluster.wait_cluster(members, synchronous_standbys=settings["synchronous_standbys"])
        out["patroni_up_s"] = time.monotonic() - began
        out["patroni_rss_mb"] = max(rss_mb(patroni.patroni_process(m)[0]) for m in members)
        out["etcd_rss_mb"] = max(rss_mb(etcd._live(e)[0]) for e in eprops)
        dsn = (f"host={','.join('127.0.0.1' for _ in members)} "
               f"port={','.join(str(m['port']) for m in members)} user=app "
               f"password={pw['app']} dbname=appdb target_session_attrs=read-write "
               "connect_timeout=1")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("create table acks (id bigserial primary key)")
        writer = Writer(dsn)
        writer.start()
        time.sleep(1)
        old = next(m for m in members
                   if m["name"] == patroni_cluster.leader_of(patroni_cluster.cluster_view(members)))
        patroni.kill(old)
        fault = time.monotonic()  # Patroni and postmaster are gone now
        while (leader := patroni_cluster.leader_of(
                patroni_cluster.cluster_view(members))) in (None, old["name"]):
            time.sleep(0.05)
        new = next(m for m in members if m["name"] == leader)
        out["rto_s"] = writer.wait_ack(fault, new["port"])
        began = time.monotonic()
        patroni.start(old)
        out["rejoin_s"] = time.monotonic() - began
        log = patroni.paths(old)["log"].read_text(errors="replace")
        out["rewound"] = "pg_rewind exit code=0" in log
        patroni_cluster.wait_cluster(members, synchronous_standbys=settings["synchronous_standbys"])
        began = time.monotonic()
        moved = patroni_cluster.switchover(
            members, synchronous_standbys=settings["synchronous_standbys"])
        out["switchover_ready_s"] = time.monotonic() - began
        target = next(m for m in members if m["name"] == moved["new"])
        out["switchover_s"] = writer.wait_ack(began, target["port"])
        time.sleep(0.5)
        writer.stopping.set()
        writer.join()
        with psycopg.connect(dsn, autocommit=True) as conn:
            have = {r[0] for r in conn.execute("select id from acks")}
        out["acked"] = len(writer.acked)
        out["lost"] = len({i for _, i, _ in writer.acked} - have)
    finally:
        for m in members:
            patroni.kill(m)
        for e in eprops:
            etcd.kill(e)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    t = load("local")
    p = t.postgres.patroni
    settings = {"synchronous_standbys": t.postgres.synchronous_standbys,
                "settings": {"max_connections": 40, "shared_buffers": "16MB"},
                "patroni": {k: getattr(p, k) for k in (
                    "ttl", "loop_wait", "retry_timeout", "failsafe_mode",
                    "maximum_lag_on_failover", "primary_start_timeout",
                    "synchronous_mode_strict")}}
    print(f"local's Patroni settings: {settings['patroni']}")
    runs = []
    for i in range(args.runs):
        base = Path(tempfile.mkdtemp(prefix="datakit-bench-patroni-", dir="/tmp"))
        base.chmod(0o755)
        try:
            runs.append(one_run(base, settings))
        finally:
            shutil.rmtree(base, ignore_errors=True)
        print(f"run {i + 1}: " + " ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in runs[-1].items()))
    keys = ("etcd_up_s", "patroni_up_s", "rto_s", "rejoin_s", "switchover_s",
            "switchover_ready_s", "patroni_rss_mb", "etcd_rss_mb")
    line = " ".join(f"{k}={statistics.median(r[k] for r in runs):.2f}" for k in keys)
    print(f"{line} lost={sum(r['lost'] for r in runs)} of {sum(r['acked'] for r in runs)}")


if __name__ == "__main__":
    main()
