"""Redis Sentinel failover and Kafka broker/controller loss on a live stack."""

from __future__ import annotations

from conftest import assert_healthy

from datakit.drills import redis_ops, runner
from datakit.drills.kafka_ops import under_replicated
from datakit.drills.targets import sentinel_client


def test_redis_failover_with_wait_loses_nothing(e2e_stack, outputs):
    result = runner.run_once("redis-failover", e2e_stack.name, outputs=outputs)
    assert result.passed, result.reason
    assert result.check.acked > 0 and result.lost == 0
    assert result.extra["new_master"] != result.extra["old_master"]
    assert_healthy(outputs)


def test_checker_finds_the_writes_redis_without_wait_really_lost(e2e_stack, outputs):
    """Writes the master acknowledged while its replication links were down are lost with
    it: the checker must report exactly the writes an independent read cannot find."""
    for _ in range(2):
        result = runner.run_once("redis-failover", e2e_stack.name, outputs=outputs,
                                 durable=False, warmup_s=0.5, tail_s=0.2)
        sentinel, name = sentinel_client(outputs)
        master = sentinel.master_for(name, decode_responses=True)
        present = {int(k) for k in master.hkeys(f"datakit:drill:{result.extra['run_id']}")}
        acked = {o.id for o in result.ops if o.status == "ok"}
        assert result.check.lost, "no acknowledged write was lost: the fault did not bite"
        assert set(result.check.lost) == acked - present
    assert min(redis_ops.min_replicas(outputs).values()) >= 1  # durable again
    assert_healthy(outputs)


def test_redis_cluster_drill_says_it_does_not_apply_to_a_sentinel_stack(e2e_stack, outputs):
    result = runner.run_once("redis-cluster-failover", e2e_stack.name, outputs=outputs)
    assert not result.applies and "sentinel" in result.reason


def test_kafka_broker_and_controller_loss_lose_nothing(e2e_stack, outputs):
    result = runner.run_once("kafka-broker-loss", e2e_stack.name, outputs=outputs,
                             warmup_s=1.0, tail_s=0.5)
    assert result.passed, result.reason
    assert result.check.acked > 0 and result.lost == 0
    assert [p["node"] for p in result.extra["phases"]]  # both phases ran
    assert not under_replicated(outputs)
    assert_healthy(outputs)
