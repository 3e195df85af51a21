"""PostgreSQL drills on a live stack, where Patroni heals it and the drill only watches: a
lost leader node, a crashed postmaster, a switchover through the REST API, one etcd member
lost and etcd's quorum lost. Nothing acknowledged is lost under the synchronous quorum, the
next `up` keeps the new roles, and the checker finds real losses when the quorum is off."""

from __future__ import annotations

import psycopg
from conftest import assert_healthy

from datakit.drills import patroni_ops, runner
from datakit.drills.targets import SCHEMA
from datakit.nodes.control import control_for
from datakit.stack.schema import StackOutputs


def _live(outputs: StackOutputs) -> dict[str, tuple[str | None, int | None]]:
    """Each node's part in Patroni (leader or standby: a rejoined member turns from
    `replica` into `quorum_standby` once the quorum counts it) and its Patroni's pid."""
    view = {m["name"]: "leader" if m["role"] == "leader" else "standby"
            for m in patroni_ops.view(outputs)["members"]}
    return {n.name: (view.get(n.name), control_for(n, outputs).pid())
            for n in outputs.of("postgres")}


def test_failover_loses_no_acknowledged_write_and_up_keeps_the_new_roles(e2e_stack, outputs,
                                                                         tmp_path):
    before = patroni_ops.leader(outputs)
    result = runner.run_once("postgres-failover", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.check.acked > 0 and result.lost == 0
    assert result.rto_s is not None and result.rto_redundancy_s is not None
    assert result.extra["old_leader"] == before != result.extra["new_leader"]
    assert patroni_ops.leader(outputs) == result.extra["new_leader"]
    assert result.extra["timeline"] > 1
    assert_healthy(outputs)
    # The stack's alerts saw it: the lost node's server down, then cleared once it was back.
    fired = {(a["alert"], a["node"]): a for a in result.extra["alerts"]}
    assert ("PostgresDown", before) in fired, result.extra["alerts"]
    assert fired[("PostgresDown", before)]["cleared_s"] is not None
    assert result.extra["alerts_still_firing"] == []
    report = runner.write_reports([result], tmp_path)[1].read_text()
    assert "alert PostgresDown" in report and "Server side (Prometheus)" in report
    assert 'aria-label="writes per second"' in report

    live = _live(outputs)
    e2e_stack.up()  # refresh + up: must not demote, rebuild or restart anything
    fresh = e2e_stack.outputs()
    assert _live(fresh) == live
    assert_healthy(fresh)


def test_a_crashed_postmaster_is_handled_by_patroni_and_the_drill_says_how(e2e_stack,
                                                                           outputs):
    result = runner.run_once("postgres-crash", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.check.acked > 0 and result.lost == 0
    # local: primary_start_timeout 0, so Patroni fails over rather than restart in place
    assert result.extra["outcome"] == "failed over"
    assert result.extra["new_leader"] != result.extra["old_leader"]
    assert_healthy(outputs)


def test_switchover_through_the_rest_api_loses_nothing(e2e_stack, outputs):
    result = runner.run_once("postgres-switchover", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.lost == 0 and result.check.acked > 0
    assert result.extra["new_leader"] != result.extra["old_leader"]
    assert_healthy(outputs)


def test_a_drill_over_its_rto_baseline_fails_and_names_the_key(e2e_stack, outputs,
                                                               monkeypatch):
    assert runner.rto_baseline(e2e_stack.name, "postgres-switchover") is not None
    monkeypatch.setattr(runner, "rto_baseline", lambda _stack, _drill: 0.001)
    result = runner.run_once("postgres-switchover", e2e_stack.name, outputs=outputs)
    assert result.lost == 0 and result.rto_s > 0.001
    assert not result.passed
    assert 'baselines.rto_s["postgres-switchover"]' in result.reason
    assert_healthy(outputs)


def test_checker_finds_the_writes_async_replication_really_lost(e2e_stack, outputs):
    """Asynchronous commits made while the standbys were cut off are lost with the leader:
    the checker must report exactly the writes an independent read cannot find."""
    result = runner.run_once("postgres-failover", e2e_stack.name, outputs=outputs,
                             durable=False, warmup_s=0.5, tail_s=0.2)
    with psycopg.connect(outputs.endpoints.postgres.write_dsn) as conn:
        present = {r[0] for r in conn.execute(
            f"select id from {SCHEMA}.writes where run = %s",
            [result.extra["run_id"]]).fetchall()}
    acked = {o.id for o in result.ops if o.status == "ok"}
    assert result.check.lost, "no acknowledged commit was lost: the fault did not bite"
    assert set(result.check.lost) == acked - present
    config = patroni_ops.config(outputs)  # durable again
    assert config["synchronous_mode"] == "quorum" and config["synchronous_mode_strict"]
    assert_healthy(outputs)


def test_one_etcd_member_lost_and_the_writes_go_on(e2e_stack, outputs):
    result = runner.run_once("etcd-member-loss", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.lost == 0 and result.check.failed == 0 and result.check.unknown == 0
    assert result.extra["etcd_new_leader"] != result.extra["etcd_victim"]
    assert result.extra["patroni_leader_during"] == result.extra["old_leader"]
    assert_healthy(outputs)


def test_etcd_quorum_lost_the_primary_stays_writable_with_failsafe(e2e_stack, outputs):
    result = runner.run_once("etcd-quorum-loss", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.lost == 0
    assert result.extra["failsafe_mode"] is True  # the local stack's setting
    assert result.extra["primary_during_outage"] == "stayed read-write", result.extra
    assert result.extra["acked_during_outage"] > 0
    assert_healthy(outputs)


def test_backup_restore_brings_back_exactly_what_was_committed_at_the_point(e2e_stack,
                                                                            outputs):
    result = runner.run_once("backup-restore", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.check.read > 0 and result.lost == 0 and not result.check.unexpected
    assert result.extra["acked_before_point_missing_from_point"] == 0
    assert result.rpo_s is not None
    assert_healthy(outputs)
