"""PostgreSQL failover and switchover on a live stack: nothing acknowledged is lost under
the synchronous quorum, the next `up` keeps the new roles, and the checker finds real
losses when replication is made asynchronous."""

from __future__ import annotations

import psycopg
from conftest import assert_healthy

from datakit.drills import postgres_ops, runner
from datakit.drills.targets import SCHEMA
from datakit.nodes.control import control_for
from datakit.stack.schema import StackOutputs


def _live(outputs: StackOutputs) -> dict[str, tuple[str, int | None]]:
    primary, _ = postgres_ops.roles(outputs)
    return {n.name: ("primary" if n.name == primary.name else "replica",
                     control_for(n, outputs).pid())
            for n in postgres_ops.nodes(outputs)}


def test_failover_loses_no_acknowledged_write_and_up_keeps_the_new_roles(e2e_stack, outputs):
    before, _ = postgres_ops.roles(outputs)
    result = runner.run_once("postgres-failover", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.check.acked > 0 and result.lost == 0
    assert result.rto_s is not None and result.rto_redundancy_s is not None
    after, _ = postgres_ops.roles(outputs)
    assert after.name != before.name
    assert_healthy(outputs)

    live = _live(outputs)
    e2e_stack.up()  # refresh + up: must not demote, rebuild or restart anything
    fresh = e2e_stack.outputs()
    assert _live(fresh) == live
    assert_healthy(fresh)


def test_switchover_has_no_lost_and_no_failed_write(e2e_stack, outputs):
    result = runner.run_once("postgres-switchover", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.check.failed == 0 and result.check.unknown == 0 and result.lost == 0
    assert_healthy(outputs)


def test_a_drill_over_its_rto_baseline_fails_and_names_the_key(e2e_stack, outputs,
                                                               monkeypatch):
    assert runner.rto_baseline(e2e_stack.name, "postgres-switchover") == 3.0  # the stack's
    monkeypatch.setattr(runner, "rto_baseline", lambda _stack, _drill: 0.001)
    result = runner.run_once("postgres-switchover", e2e_stack.name, outputs=outputs)
    assert result.lost == 0 and result.rto_s > 0.001
    assert not result.passed
    assert 'baselines.rto_s["postgres-switchover"]' in result.reason
    assert_healthy(outputs)


def test_checker_finds_the_writes_async_replication_really_lost(e2e_stack, outputs):
    """Asynchronous commits made while the standbys' links are down are lost with the
    primary: the checker must report exactly the writes an independent read cannot find."""
    for _ in range(2):
        result = runner.run_once("postgres-failover", e2e_stack.name, outputs=outputs,
                                 durable=False, warmup_s=0.5, tail_s=0.2)
        with psycopg.connect(outputs.endpoints.postgres.write_dsn) as conn:
            present = {r[0] for r in conn.execute(
                f"select id from {SCHEMA}.writes where run = %s",
                [result.extra["run_id"]]).fetchall()}
        acked = {o.id for o in result.ops if o.status == "ok"}
        assert result.check.lost, "no acknowledged commit was lost: the fault did not bite"
        assert set(result.check.lost) == acked - present
        for node in postgres_ops.nodes(outputs):  # durable again on every node
            assert postgres_ops.one(node, outputs, "show synchronous_standby_names")
    assert_healthy(outputs)


def test_backup_restore_brings_back_exactly_what_was_committed_at_the_point(e2e_stack,
                                                                            outputs):
    result = runner.run_once("backup-restore", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.check.read > 0 and result.lost == 0 and not result.check.unexpected
    assert result.extra["acked_before_point_missing_from_point"] == 0
    assert result.rpo_s is not None
    assert_healthy(outputs)
