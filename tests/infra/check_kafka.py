"""Kafka: every broker registered, the controller quorum led with every voter caught up,
each configured topic with its partitions, RF, min.insync.replicas and retention, and no
partition under-replicated (named by the broker missing from the ISR) or offline."""

from __future__ import annotations

import pytest

from datakit.nodes import tls
from datakit.nodes.kafka_quorum import describe_quorum
from datakit.verify import Mismatch

VOTER_LAG_MAX = 10  # metadata records a voter may trail the leader's high watermark by


@pytest.fixture(scope="session")
def kafka_admin(outputs, secrets):
    import logging

    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("datakit.verify.librdkafka")
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    return AdminClient({
        **outputs.kafka_config(admin=True),
        "socket.connection.setup.timeout.ms": 2000, "reconnect.backoff.max.ms": 500,
        "logger": quiet,
    })


def _node_id(node, topology) -> int:
    return topology.node(node.name).index


def _names(nodes_of, topology) -> dict[int, str]:
    return {_node_id(n, topology): n.name for n in nodes_of("kafka")}


def test_broker_registered(kafka_node, kafka_admin, topology, checker):
    want = _node_id(kafka_node, topology)

    def probe() -> str:
        desc = kafka_admin.describe_cluster(request_timeout=3).result(timeout=5)
        ids = sorted(n.id for n in desc.nodes)
        return "registered" if want in ids else f"not registered (brokers {ids})"

    checker.expect("broker registered", kafka_node.name, "registered", probe)


def _quorum(nodes_of):
    seen = []
    for node in nodes_of("kafka"):
        port = node.ports.get("controller")
        if not port:
            continue
        try:
            info = describe_quorum(node.host, port, timeout=2,
                                   context=tls.context(tls.client_files(node)))
        except OSError as exc:
            seen.append(f"{node.name}: {exc}")
            continue
        if info.error == 0 and info.leader_id >= 0:
            return info
    raise Mismatch("no controller leads the quorum" + (f" ({'; '.join(seen)})" if seen else ""))


def test_quorum_has_leader(nodes_of, topology, checker):
    names = _names(nodes_of, topology)

    def probe() -> str:
        info = _quorum(nodes_of)
        return f"led by {names.get(info.leader_id, info.leader_id)}"

    checker.expect("controller quorum has a leader", "kafka", "a leader", probe,
                   ok=lambda found: found.startswith("led by"))


def test_voter_caught_up(kafka_node, nodes_of, topology, checker):
    if not kafka_node.ports.get("controller"):
        pytest.skip(f"{kafka_node.name} is not a controller")
    me = _node_id(kafka_node, topology)

    def probe() -> str:
        info = _quorum(nodes_of)
        if me not in info.voters:
            return f"not a voter (voters {sorted(info.voters)})"
        behind = info.high_watermark - info.voters[me]
        return "caught up" if info.voters[me] >= 0 and behind <= VOTER_LAG_MAX \
            else f"{behind} records behind the leader's high watermark"

    checker.expect("controller voter caught up", kafka_node.name, "caught up", probe)


def _partitions(kafka_admin) -> dict[str, list]:
    meta = kafka_admin.list_topics(timeout=5)
    return {name: sorted(t.partitions.values(), key=lambda p: p.id)
            for name, t in meta.topics.items()}


def test_topic_configured(topic, kafka_admin, checker):
    from confluent_kafka.admin import ConfigResource, ResourceType

    want = (f"{topic.partitions} partitions, RF {topic.replication_factor}, "
            f"min.insync.replicas {topic.min_insync_replicas}, "
            f"retention.ms {topic.retention_ms}")

    def probe() -> str:
        parts = _partitions(kafka_admin).get(topic.name)
        if not parts:
            raise Mismatch("topic missing")
        rfs = sorted({len(p.replicas) for p in parts})
        resource = ConfigResource(ResourceType.TOPIC, topic.name)
        config = kafka_admin.describe_configs([resource])[resource].result(timeout=5)
        return (f"{len(parts)} partitions, RF {'/'.join(map(str, rfs))}, "
                f"min.insync.replicas {config['min.insync.replicas'].value}, "
                f"retention.ms {config['retention.ms'].value}")

    checker.expect("topic partitions, RF, min ISR, retention", topic.name, want, probe)


def test_no_offline_partitions(topic, kafka_admin, checker):
    def probe() -> str:
        parts = _partitions(kafka_admin).get(topic.name)
        if not parts:
            raise Mismatch("topic missing")
        offline = [str(p.id) for p in parts if p.leader < 0]
        return f"partitions {', '.join(offline)} offline" if offline else "none offline"

    checker.expect("no offline partitions", topic.name, "none offline", probe)


def test_in_every_isr(kafka_node, kafka_admin, topology, checker):
    """Under-replicated partitions, named by the broker missing from their ISR."""
    me = _node_id(kafka_node, topology)

    def probe() -> str:
        missing, total = [], 0
        for name, parts in _partitions(kafka_admin).items():
            for p in parts:
                if me in p.replicas:
                    total += 1
                    if me not in p.isrs:
                        missing.append(f"{name}/{p.id}")
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            return f"missing from the ISR of {len(missing)} of {total} partitions ({shown})"
        return "in the ISR of every partition it replicates"

    checker.expect("no under-replicated partitions", kafka_node.name,
                   "in the ISR of every partition it replicates", probe)
