"""`datakit verify` on a live throwaway stack: it passes when the stack is healthy, and
each injected fault fails the right check, naming the node and expected vs found, while
nothing about any other node fails; once the fault is undone the suite passes again.

Faults use short check timeouts (the suite then waits that long per failing check only);
the runs after a fault is undone get a long one, so they wait for the node to catch up.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from datakit.migrate.files import BUNDLED_DIR
from datakit.nodes.postgres_client import connect, live_primary
from datakit.stack.schema import Node, StackOutputs
from datakit.verify import run
from tests.support.pg_node import patroni_pids

pytestmark = pytest.mark.slow

FAULT_TIMEOUT = 1.5  # seconds a failing check waits while a fault is in place
HEAL_TIMEOUT = 90.0  # after undoing it: a restarted node catches up within this


# ------------------------------------------------------------------------ helpers

_OUTPUTS: dict[str, StackOutputs] = {}


def _outputs(stack) -> StackOutputs:
    """The stack's outputs, read once (seconds through the engine): what verify and these
    tests use of them (names, ports, secrets) stays the same across `up`."""
    if stack.name not in _OUTPUTS:
        _OUTPUTS[stack.name] = stack.outputs()
    return _OUTPUTS[stack.name]


def _verify(stack, **options):
    return run(stack.name, outputs=_outputs(stack), **options)


def _failures(result) -> str:
    return "\n".join(f"{r.node}: {r.check}: expected {r.expected}, found {r.found}"
                     for r in result.failed) or "(none)"


def _passes(stack, **options) -> None:
    result = _verify(stack, timeout=HEAL_TIMEOUT, **options)
    assert result.ok, f"verify still fails after the fault was undone:\n{_failures(result)}"


def _fails_only_on(result, node: str, check: str):
    """The failed rows all name `node` and include `check`; returns that row."""
    assert not result.ok and result.exit_code == 1
    others = [r for r in result.failed if r.node != node]
    assert not others, f"checks about other nodes failed too:\n{_failures(result)}"
    rows = [r for r in result.failed if r.check == check]
    assert rows, f"{check!r} did not fail on {node}; failed:\n{_failures(result)}"
    return rows[0]


def _listener_pid(port: int) -> int | None:
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True,
                         text=True, check=True).stdout
    pids = re.findall(r"pid=(\d+)", out)
    return int(pids[0]) if pids else None


def _stop(node: Node, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Stop a node's process for real (not SIGSTOP) and wait until its port is closed."""
    pid = _listener_pid(node.port)
    assert pid, f"{node.name} does not listen on {node.port}"
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while _listener_pid(node.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _listener_pid(node.port), f"{node.name} still listens after {sig}"


def _stop_node(node: Node, timeout: float = 30.0) -> None:
    """A PostgreSQL node stopped as a whole: its Patroni, told to stop, stops the server
    too. (Stopping only the server is no fault to check: Patroni starts it again.)"""
    for pid in patroni_pids(node):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _listener_pid(node.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _listener_pid(node.port), f"{node.name} still listens after Patroni stopped"


def _pg(out: StackOutputs, node: Node):
    return connect(node, user="postgres", password=out.secrets.postgres.superuser,
                   tls_files=out.client_tls())


def _roles(out: StackOutputs) -> tuple[Node, list[Node]]:
    nodes = out.of("postgres")
    primary = live_primary(nodes, user="postgres", password=out.secrets.postgres.superuser,
                           tls_files=out.client_tls())
    assert primary, "no live PostgreSQL primary"
    return primary, [n for n in nodes if n.name != primary.name]


def _node(out: StackOutputs, name: str) -> Node:
    return out.node(name)


# ------------------------------------------------------------------------ tests

def test_passes_on_a_healthy_stack_with_every_check_and_writes_json_and_junit(
        e2e_stack, tmp_path):
    result = _verify(e2e_stack, timeout=HEAL_TIMEOUT, json_path=tmp_path / "v.json",
                     junit=tmp_path / "v.xml")
    assert result.ok, _failures(result)
    checks = {r.check for r in result.rows if r.verdict == "pass"}
    for check in ("process user", "listens only on its address and ports", "data dir private",
                  "exactly one primary", "recovery state", "streams from the primary",
                  "replay lag (bytes)", "settings as configured",
                  "pg_hba: scram on TCP, no trust", "connection without password refused",
                  "migrations at newest version", "migrations validate clean", "redis role",
                  "command without password refused", "Sentinel quorum",
                  "monitors the master of datakit", "broker registered",
                  "controller quorum has a leader", "controller voter caught up",
                  "topic partitions, RF, min ISR, retention", "no offline partitions",
                  "no under-replicated partitions", "no alert firing",
                  *(f"metrics target up: {job}" for job in (
                      "postgres", "redis", "sentinel", "kafka", "patroni", "etcd",
                      "processes", "prometheus"))):
        assert check in checks, f"{check!r} did not run and pass"
    assert {r.node for r in result.rows} >= {n.name for n in _outputs(e2e_stack).nodes}
    # Thresholds are reported (pass or warn), never a failure.
    assert {r.verdict for r in result.rows if r.check == "buffer hit ratio"} <= {"pass", "warn"}
    saved = json.loads((tmp_path / "v.json").read_text())
    assert saved["ok"] and len(saved["checks"]) == len(result.rows)
    assert "testcase" in (tmp_path / "v.xml").read_text()


def test_k_selects_checks_by_node(e2e_stack):
    result = _verify(e2e_stack, timeout=HEAL_TIMEOUT, select="sentinel-1")
    # pytest's -k matches by name: the node and the exporter beside it
    assert result.ok and {r.node for r in result.rows} == {"sentinel-1", "sentinel-1-exporter"}


def test_stopped_replica_fails_its_own_checks_only(e2e_stack, tmp_path):
    out = _outputs(e2e_stack)
    _, replicas = _roles(out)
    replica = replicas[-1]
    _stop_node(replica)
    try:
        result = _verify(e2e_stack, timeout=FAULT_TIMEOUT, junit=tmp_path / "v.xml")
        row = _fails_only_on(result, replica.name, "streams from the primary")
        assert "streaming from" in row.expected and row.found != row.expected
        _fails_only_on(result, replica.name, "process user")
        junit = (tmp_path / "v.xml").read_text()
        assert f"{replica.name}: streams from the primary: expected streaming from" in junit
    finally:
        e2e_stack.up()  # refresh notices the dead replica; up starts it again
    _passes(e2e_stack)


def test_stopped_sentinel_fails_its_own_checks_only(e2e_stack):
    sentinel = _node(_outputs(e2e_stack), "sentinel-2")
    _stop(sentinel)
    try:
        result = _verify(e2e_stack, timeout=FAULT_TIMEOUT)
        row = _fails_only_on(result, "sentinel-2", "Sentinel quorum")
        assert row.expected.startswith("CKQUORUM OK") and "Error" in row.found
    finally:
        e2e_stack.up()
    _passes(e2e_stack)


def test_setting_changed_behind_the_kits_back_fails_settings_on_that_node(e2e_stack):
    out = _outputs(e2e_stack)
    primary, _ = _roles(out)
    with _pg(out, primary) as conn:
        conn.execute("ALTER SYSTEM SET maintenance_work_mem = '32MB'")
        conn.execute("select pg_reload_conf()")
    try:
        time.sleep(0.3)  # the reload is asynchronous
        result = _verify(e2e_stack, timeout=FAULT_TIMEOUT)
        row = _fails_only_on(result, primary.name, "settings as configured")
        assert row.found == "maintenance_work_mem = 32MB (configured 64MB)"
        assert len(result.failed) == 1
    finally:
        with _pg(out, primary) as conn:
            conn.execute("ALTER SYSTEM RESET maintenance_work_mem")
            conn.execute("select pg_reload_conf()")
    _passes(e2e_stack)


def test_stopped_broker_fails_its_isr_check_and_nothing_about_other_nodes(e2e_stack):
    from confluent_kafka.admin import AdminClient

    out = _outputs(e2e_stack)
    broker = _node(out, "kafka-3")
    _stop(broker, signal.SIGTERM, timeout=60)  # controlled shutdown leaves the ISRs at once
    admin = AdminClient(out.kafka_config(admin=True))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the precondition: under-replicated partitions
            parts = [p for t in admin.list_topics(timeout=5).topics.values()
                     for p in t.partitions.values()]
            if any(3 in p.replicas and 3 not in p.isrs for p in parts):
                break
            time.sleep(0.5)
        result = _verify(e2e_stack, timeout=3.0)
        row = _fails_only_on(result, "kafka-3", "no under-replicated partitions")
        assert row.found.startswith("missing from the ISR of")
    finally:
        e2e_stack.up()
    _passes(e2e_stack)  # waits (up to HEAL_TIMEOUT) until every ISR is full again


def test_migration_edited_after_apply_fails_validate_only(e2e_stack, tmp_path):
    out = _outputs(e2e_stack)
    primary, _ = _roles(out)
    copy = tmp_path / "migrations"
    shutil.copytree(BUNDLED_DIR, copy)
    edited = sorted(copy.glob("V*.sql"))[1]
    edited.write_text(edited.read_text() + "\n-- edited after apply\nSELECT 1;\n")
    result = _verify(e2e_stack, timeout=FAULT_TIMEOUT, migrations_dir=copy)
    row = _fails_only_on(result, primary.name, "migrations validate clean")
    assert len(result.failed) == 1 and row.expected == "clean"
    assert edited.name in row.found or "drift" in row.found.lower(), row.found
    shutil.copy(BUNDLED_DIR / edited.name, edited)  # undone: the file as applied
    _passes(e2e_stack, migrations_dir=copy)


def test_failing_archive_command_fails_wal_archiving_on_the_primary(e2e_stack):
    from datakit.paths import PROJECT_DIR
    from datakit.topology import load

    out = _outputs(e2e_stack)
    primary, _ = _roles(out)
    archive = load(e2e_stack.name, PROJECT_DIR).archive_path()
    owner = archive.stat()
    os.chown(archive, 0, 0)  # the postgres account can no longer write there
    try:
        with _pg(out, primary) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS verify_archive (a int)")
            conn.execute("INSERT INTO verify_archive VALUES (1)")
            conn.execute("select pg_switch_wal()")
        result = _verify(e2e_stack, timeout=5.0)
        row = _fails_only_on(result, primary.name, "WAL archiving")
        assert row.found.startswith("failing since 0000") and len(result.failed) == 1
    finally:
        os.chown(archive, owner.st_uid, owner.st_gid)
        with _pg(out, primary) as conn:
            conn.execute("DROP TABLE IF EXISTS verify_archive")
            conn.execute("select pg_stat_reset_shared('archiver')")  # the next try succeeds
    _passes(e2e_stack)


def test_trust_in_pg_hba_fails_hba_and_password_checks_on_that_node(e2e_stack):
    out = _outputs(e2e_stack)
    _, replicas = _roles(out)
    node = replicas[0]
    with _pg(out, node) as conn:
        hba = Path(conn.execute("show hba_file").fetchone()[0])
    original = hba.read_text()
    # Rewriting in place keeps the file's owner (postgres) and mode.
    hba.write_text("host    all  all  127.0.0.1/32  trust\n" + original)
    try:
        with _pg(out, node) as conn:
            conn.execute("select pg_reload_conf()")
        time.sleep(0.3)
        result = _verify(e2e_stack, timeout=FAULT_TIMEOUT)
        row = _fails_only_on(result, node.name, "pg_hba: scram on TCP, no trust")
        assert "trust" in row.found and "line 1" in row.found
        row = _fails_only_on(result, node.name, "connection without password refused")
        assert row.found.startswith("accepted")
    finally:
        hba.write_text(original)
        try:
            with _pg(out, node) as conn:
                conn.execute("select pg_reload_conf()")
        except psycopg.Error:
            pass
    _passes(e2e_stack)
