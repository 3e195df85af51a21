"""Network-partition drills on the shared stack: the fault is a real firewall rule between
the nodes' own loopback addresses, Patroni heals the stack, and the drill only watches."""

from __future__ import annotations

from conftest import assert_healthy

from datakit.drills import patroni_ops, runner
from datakit.nodes.faults import chain_name, rules


def _left(stack: str) -> list[str]:
    listing = rules.listing().splitlines()
    return [line for line in listing if chain_name(stack) in line
            or rules.comment(stack) in line]


def test_a_primary_cut_from_replicas_and_etcd_stops_taking_writes_and_loses_none(
        e2e_stack, outputs):
    before = patroni_ops.leader(outputs)
    ttl = patroni_ops.config(outputs)["ttl"]
    result = runner.run_once("postgres-partition-primary", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.check.acked > 0 and result.lost == 0
    assert result.extra["old_leader"] == before != result.extra["new_leader"]
    # The isolated primary demoted itself within the leader lease; the others waited for
    # the lease to expire before they promoted.
    window = result.extra["isolated_write_window_s"]
    assert 0 < window < ttl, window
    assert result.rto_s is not None and window < result.rto_s
    events = [name for _, name in result.events]
    assert events.index("partition") < events.index("healed") < events.index("redundant")
    assert _left(e2e_stack.name) == []
    assert_healthy(outputs)


def test_a_redis_master_cut_off_refuses_writes_and_a_replica_takes_over(e2e_stack, outputs):
    lag = e2e_stack.config["datakit:redis"]["settings"]["min_replicas_max_lag"]
    result = runner.run_once("redis-partition-master", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.check.acked > 0 and result.lost == 0  # WAIT 1: nothing the master alone took
    assert result.extra["new_master"] != result.extra["old_master"]
    # min-replicas-max-lag bounds how long the isolated master takes writes
    assert 0 < result.extra["isolated_write_window_s"] <= lag + 3
    assert _left(e2e_stack.name) == []
    assert_healthy(outputs)


def test_without_wait_the_writes_the_isolated_redis_master_took_are_lost(e2e_stack, outputs):
    result = runner.run_once("redis-partition-master", e2e_stack.name, outputs=outputs,
                             durable=False)
    assert result.lost > 0, "what the isolated master acknowledged must be found missing"
    assert _left(e2e_stack.name) == []
    assert_healthy(outputs)


def test_a_kafka_leader_cut_off_loses_duplicates_and_reorders_nothing(e2e_stack, outputs):
    result = runner.run_once("kafka-partition-leader", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.check.acked > 0 and result.lost == 0
    assert result.extra["duplicated"] == [] and result.extra["reordered_partitions"] == []
    assert result.extra["new_leader"] != result.extra["old_leader"]
    assert result.rto_s is not None
    assert _left(e2e_stack.name) == []
    assert_healthy(outputs)


def test_the_quorum_hides_one_slow_replica_and_not_two(e2e_stack, outputs):
    result = runner.run_once("replica-slow-link", e2e_stack.name, outputs=outputs)
    assert result.passed, (result.reason, result.extra.get("commit_ms"))
    ms = result.extra["commit_ms"]
    assert ms["two slow"]["p50"] >= ms["before"]["p50"] + 40  # the 50 ms on both links
    assert ms["one slow"]["p50"] < ms["before"]["p50"] + 25  # the other replica answered
    assert result.lost == 0 and result.rto_s is None
    assert _left(e2e_stack.name) == []
    assert_healthy(outputs)
