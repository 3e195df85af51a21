"""PostgreSQL heals itself on the local stack: Patroni on an etcd cluster, made by `up`.

The leader's processes are killed from outside (plain signals, the pids read from the
node's own files; no datakit code runs meanwhile), and the stack gives a new writable
primary by itself with no acknowledged write lost; migrations, load users and `verify` go
on through the same multi-host DSN. Bad input to Patroni or etcd is one line naming the
node or key, and a second `up` converges. Runs on the shared e2e stack, before
test_local_stack (which ends with `down`), and leaves it whole.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import psycopg
import pytest

from datakit import status, verify
from datakit.load import runner as load
from datakit.migrate import apply, rollback
from datakit.nodes.control import control_for
from datakit.paths import PROJECT_DIR
from datakit.stack.lifecycle import StackError
from datakit.stack.schema import StackOutputs
from datakit.topology import TopologyError
from tests.support.pg_node import make_leader, node_pids

pytestmark = pytest.mark.slow

RECOVERY_S = 120  # the 20 s lease, with room for a busy machine (not an assertion of speed)


def _wait(probe, timeout: float = RECOVERY_S, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def _whole(outputs: StackOutputs) -> dict | None:
    found = status.clusters(outputs)
    return found if not found["problems"] and found["patroni"]["leader"] else None


def _leader(outputs: StackOutputs) -> str:
    found = _wait(lambda: _whole(outputs))
    assert found, status.clusters(outputs)["problems"]
    return found["patroni"]["leader"]


class _Writer(threading.Thread):
    """Inserts 1, 2, 3... through the stack's write DSN; keeps each acknowledged id with
    the time and the port of the server that acknowledged it."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn, self.acked, self.stop = dsn, {}, threading.Event()

    def run(self) -> None:
        conn, i = None, 0
        while not self.stop.is_set():
            i += 1
            try:
                conn = conn or psycopg.connect(self.dsn, autocommit=True, connect_timeout=2)
                port = conn.execute("insert into e2e_ha (id) values (%s) "
                                    "returning inet_server_port()", [i]).fetchone()[0]
                self.acked[i] = (time.monotonic(), port)
            except psycopg.Error:
                conn = None
                time.sleep(0.05)


def test_etcd_members_are_nodes_and_patroni_leads_from_pg_1(e2e_stack):
    out = e2e_stack.outputs()
    assert [n.name for n in out.of("etcd")] == ["etcd-1", "etcd-2", "etcd-3"]
    pg = out.endpoints.postgres
    assert pg.cluster == f"datakit-{e2e_stack.name}"
    assert [d.split(":")[1] for d in pg.dcs] == [str(n.port) for n in out.of("etcd")]
    assert all(n.rest_url for n in out.of("postgres"))
    assert _leader(out) == "pg-1"  # the member the stack names first initialises
    rows = status.live(out)
    assert not [r for r in rows if r.get("disagrees") or r["health"] != "up"], rows
    whole = status.clusters(out)
    assert len(whole["patroni"]["quorum_standbys"]) >= 1 and whole["etcd"]["healthy"]


def test_a_leader_killed_from_outside_is_replaced_and_no_acknowledged_write_is_lost(
        e2e_stack):
    out = e2e_stack.outputs()
    dsn = out.endpoints.postgres.write_dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("drop table if exists e2e_ha; create table e2e_ha (id bigint primary key)")
    old = _leader(out)
    writer = _Writer(dsn)
    writer.start()
    assert _wait(lambda: writer.acked, timeout=30)
    for pid in node_pids(out.node(old)):
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    try:
        assert _wait(lambda: any(t > killed and port != out.node(old).port
                                 for t, port in writer.acked.values())), \
            "no other server acknowledged a write after the leader was killed"
        time.sleep(1)
    finally:
        writer.stop.set()
        writer.join(10)
    with psycopg.connect(dsn, autocommit=True) as conn:
        present = {r[0] for r in conn.execute("select id from e2e_ha")}
        assert not conn.execute("select pg_is_in_recovery()").fetchone()[0]
    assert set(writer.acked) <= present, f"lost: {sorted(set(writer.acked) - present)[:10]}"
    assert status.patroni_view(out)["leader"] not in (None, old)
    e2e_stack.up()  # refresh finds the old node's Patroni gone; up starts it, Patroni rejoins
    assert _leader(e2e_stack.outputs()) != old


def _kill_leader_in(seconds: float, outputs: StackOutputs) -> threading.Thread:
    def later():
        time.sleep(seconds)
        for pid in node_pids(outputs.node(status.patroni_view(outputs)["leader"])):
            os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=later, daemon=True)
    thread.start()
    return thread


def test_load_users_migrations_and_verify_go_on_through_a_failover(e2e_stack, tmp_path):
    out = e2e_stack.outputs()
    killer = _kill_leader_in(6, out)
    outcome = load.run(load.LoadOptions(
        stack=e2e_stack.name, workload="postgres", users=6, duration_s=50, warmup_s=5,
        out_dir=tmp_path / "load", outputs=out,
        baseline_overrides={"error_ratio_max": "1", "min_rps": "0"}))
    killer.join()
    writes = [w for key, series in outcome.final.timeline.items() if "write" in key
              for w in series]
    assert writes, outcome.final.timeline.keys()
    assert any(w["fails"] > 0 for w in writes), "the failover did not touch the users"
    tail = [w for w in writes if w["t"] >= max(x["t"] for x in writes) - 5]
    assert all(w["rps"] > 0 and w["fails"] == 0 for w in tail), tail  # users carried on

    mdir = tmp_path / "migrations"
    shutil.copytree(PROJECT_DIR / "migrations", mdir)
    (mdir / "V0008__after_failover.sql").write_text("CREATE TABLE e2e_after_failover (a int);\n")
    (mdir / "U0008__after_failover.sql").write_text("DROP TABLE e2e_after_failover;\n")
    dsn = out.endpoints.postgres.write_dsn  # the same DSN, now reaching the new leader
    apply(dsn, mdir)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select to_regclass('e2e_after_failover')").fetchone()[0]
    rollback(dsn, mdir, target=7)  # the shipped schema for the tests after this one

    e2e_stack.up()  # the killed node back; Patroni rejoins it
    fresh = e2e_stack.outputs()
    _leader(fresh)
    result = verify.run(e2e_stack.name, outputs=fresh)
    assert result.ok, [(r.node, r.check, r.found) for r in result.failed]


def _taken(host: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen()
    return sock


def test_a_patroni_setting_patroni_would_refuse_is_one_line_and_up_converges(e2e_stack):
    e2e_stack.edit(lambda c: c["datakit:postgres"]["settings"]["extra"].update(
        max_locks_per_transaction=10))
    with pytest.raises(TopologyError) as err:  # refused before the engine starts anything
        e2e_stack.up()
    assert any("datakit:postgres.settings.extra.max_locks_per_transaction" in line
               and "Patroni" in line for line in err.value.lines), err.value.lines
    e2e_stack.edit(lambda c: c["datakit:postgres"]["settings"]["extra"].pop(
        "max_locks_per_transaction"))
    e2e_stack.up()
    assert _whole(e2e_stack.outputs())


def test_unreachable_etcd_and_an_unbootstrappable_member_name_the_node(e2e_stack):
    out = e2e_stack.outputs()
    make_leader(out, "pg-1")  # pg-3 goes away: it must not be the one leading
    # A member that cannot bootstrap: its port is taken when it is made anew.
    pg3 = out.node("pg-3")
    e2e_stack.edit(lambda c: c["datakit:postgres"].update(nodes=2))
    e2e_stack.up()
    blocker = _taken(pg3.host, pg3.port)
    try:
        e2e_stack.edit(lambda c: c["datakit:postgres"].update(nodes=3))
        with pytest.raises(StackError, match=f"patroni node pg-3 .*{pg3.port}.*in use"):
            e2e_stack.up()
    finally:
        blocker.close()
    # ... and its data dir not writable: a file where the folder should be.
    data = Path(pg3.handle.data_dir)
    shutil.rmtree(data, ignore_errors=True)
    data.write_text("not a directory\n")
    try:
        with pytest.raises(StackError, match="patroni node pg-3 .*cannot write its data dir"):
            e2e_stack.up()
    finally:
        data.unlink()
    e2e_stack.up()
    assert len(_whole(e2e_stack.outputs())["patroni"]["quorum_standbys"]) == 2

    # etcd unreachable while a member starts: every etcd member frozen (SIGSTOP), so it
    # holds its port and answers nothing; pg-3 is made anew and must say so, naming etcd.
    frozen = [control_for(n, out) for n in out.of("etcd")]
    e2e_stack.edit(lambda c: c["datakit:postgres"].update(nodes=2))
    e2e_stack.up()
    for ctl in frozen:
        ctl.pause()
    try:
        e2e_stack.edit(lambda c: c["datakit:postgres"].update(nodes=3))
        with pytest.raises(StackError, match="patroni node pg-3 .*no healthy etcd member"):
            e2e_stack.up()
    finally:
        for ctl in frozen:
            ctl.resume()
    e2e_stack.up()
    assert len(_whole(e2e_stack.outputs())["patroni"]["quorum_standbys"]) == 2
