"""Three combined KRaft nodes as the local stack runs them: quorum, SASL/SCRAM, the data
layer's topics with RF 3 / min ISR 2, acks=all round trip, and broker loss detected."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from datakit.errors import DatakitError
from datakit.nodes import kafka
from datakit.nodes.readiness import wait_until

DAY_MS = 24 * 3600 * 1000
TOPICS = {"ms.agent.events": (12, 7), "ms.system.metrics": (6, 3)}


@pytest.fixture(scope="module")
def cluster(new_cluster):
    cluster = new_cluster(3, heap_mb=512)
    cluster.start()
    cluster.ready = kafka.wait_cluster_ready({**cluster.props,
                                              "nodes": list(cluster.outs.values())})
    return cluster


@pytest.fixture(scope="module")
def topics(cluster):
    return {name: kafka.ensure_topic({**cluster.props, "name": name, "partitions": parts,
                                      "replication_factor": 3, "min_insync_replicas": 2,
                                      "retention_ms": days * DAY_MS})
            for name, (parts, days) in TOPICS.items()}


def test_cluster_is_ready_with_a_quorum_leader(cluster):
    assert cluster.ready["brokers"] == [1, 2, 3]
    assert cluster.ready["leader_id"] in (1, 2, 3)
    health = cluster.health()
    assert health["healthy"], health["problems"]
    assert sorted(int(v) for v in health["quorum"]["voters"]) == [1, 2, 3]


def test_topics_have_their_partitions_rf3_min_isr2_and_full_isr(cluster, topics):
    for name, (parts, days) in TOPICS.items():
        assert topics[name]["changes"] == ["created"]

        def full_isr(name=name):
            desc = kafka.describe_topic({**cluster.props, "name": name})
            return desc if all(len(p["isr"]) == 3 for p in desc["partitions"]) else None

        desc = wait_until(full_isr, what=f"ISR 3 on {name}", timeout=30)
        assert len(desc["partitions"]) == parts
        assert all(sorted(p["replicas"]) == [1, 2, 3] for p in desc["partitions"])
        assert desc["config"] == {"min.insync.replicas": "2",
                                  "retention.ms": str(days * DAY_MS),
                                  "unclean.leader.election.enable": "false"}


def test_topic_is_reconciled_in_place(cluster):
    spec = {**cluster.props, "name": "datakit.scratch", "partitions": 3,
            "replication_factor": 3, "min_insync_replicas": 2, "retention_ms": 3600000}
    created = kafka.ensure_topic(spec)
    assert kafka.ensure_topic(spec)["changes"] == []
    grown = kafka.ensure_topic({**spec, "partitions": 4, "retention_ms": 7200000})
    assert grown["changes"] == ["partitions 3 -> 4", "retention.ms -> 7200000"]
    assert grown["topic_id"] == created["topic_id"]
    assert grown["config"]["retention.ms"] == "7200000"
    with pytest.raises(DatakitError, match="cannot remove partitions"):
        kafka.ensure_topic({**spec, "partitions": 2})
    with pytest.raises(DatakitError, match="replication factor 3, wanted 2|is 3, wanted 2"):
        kafka.ensure_topic({**spec, "partitions": 4, "replication_factor": 2,
                            "min_insync_replicas": 1})
    kafka.delete_topic(spec)
    assert kafka.describe_topic(spec) is None


def test_message_produced_with_acks_all_is_consumed(cluster, topics):
    topic, key = "ms.agent.events", uuid.uuid4().hex
    producer = Producer({**cluster.client("app"), "acks": "all", "enable.idempotence": True})
    delivered = []
    producer.produce(topic, key=key, value=b"hello",
                     on_delivery=lambda err, msg: delivered.append((err, msg)))
    assert producer.flush(30) == 0
    (err, msg), = delivered
    assert err is None, err

    consumer = Consumer({**cluster.client("app"), "group.id": f"datakit-test-{key}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    consumer.subscribe([topic])
    try:
        def our_message():
            got = consumer.poll(0.5)
            if got is not None and got.error() is None and got.key() == key.encode():
                return got
            return None

        got = wait_until(our_message, what="the produced message", timeout=45, interval=0)
        assert (got.partition(), got.offset(), got.value()) == (msg.partition(), msg.offset(),
                                                                b"hello")
    finally:
        consumer.close()


def test_wrong_password_is_refused_with_a_clear_error(cluster):
    with pytest.raises(DatakitError, match=r"refused user 'admin': authentication failed"):
        kafka.wait_cluster_ready({**cluster.props, "admin_password": "wrong"}, timeout=20)

    errors = []
    producer = Producer({**cluster.client("app"), "sasl.password": "wrong",
                         "error_cb": errors.append})
    wait_until(lambda: producer.poll(0.2) is not None and errors, what="an auth error",
               timeout=15)
    assert errors[0].code() == KafkaError._AUTHENTICATION
    assert "invalid credentials" in errors[0].str()


def test_killed_broker_is_detected_and_comes_back(cluster, topics):
    leader = cluster.health()["quorum"]["leader_id"]
    victim = next(i for i in (3, 2, 1) if i != leader)  # keep the quorum's leader
    kafka.kill_node(cluster.outs[victim])

    health = cluster.health()
    assert not health["healthy"]
    assert health["unreachable"] == [victim]
    assert any(f"node {victim} process" in p for p in health["problems"])
    assert health["quorum"]["leader_id"] == leader

    # The controller fences it after broker.session.timeout.ms: gone from the metadata.
    wait_until(lambda: victim not in cluster.health()["brokers"],
               what=f"broker {victim} fenced", timeout=30)

    # What the next `up` does for a dead node: start it again on its storage, here with
    # a changed server setting (a float, as Pulumi sends numbers) that the restart applies.
    node = {**cluster.nodes[victim - 1],
            "settings": {"log.retention.check.interval.ms": 120000.0}}
    cluster.outs[victim] = kafka.restart_node(node, cluster.outs[victim])
    kafka.wait_cluster_ready({**cluster.props, "nodes": list(cluster.outs.values())})
    wait_until(lambda: cluster.health()["healthy"], what="a healthy cluster again", timeout=30)
    admin = AdminClient(cluster.client("admin"))
    resource = ConfigResource(ResourceType.BROKER, str(victim))
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["log.retention.check.interval.ms"].value == "120000"


def test_storage_of_another_cluster_is_refused_untouched(cluster):
    node = cluster.nodes[0]
    config = Path(node["data_dir"], "server.properties").read_text()
    with pytest.raises(DatakitError, match="delete that directory or point data_dir"):
        kafka.format_node({**node, "cluster_id": kafka.new_cluster_id()})
    assert Path(node["data_dir"], "server.properties").read_text() == config
