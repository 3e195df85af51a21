"""Kafka with TLS and least privilege, for real: one KRaft node with a certificate of the
stack's CA serves SASL_SSL to clients and SSL with client certificates on its controller
listener; StandardAuthorizer lets the admin do anything and the app only what its ACLs
grant: write, read and describe its topic, read in its groups; never create or delete a
topic, nor read one it was not granted. A plaintext client, one trusting another CA and a
controller client without a certificate are refused."""

from __future__ import annotations

import logging
import ssl
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from datakit.nodes import certs, kafka, kafka_acls, tls, tls_probe
from datakit.nodes.kafka_quorum import describe_quorum
from tests.support.tls_material import client_files, material

pytestmark = pytest.mark.slow
PREFIX = "datakit-"


@pytest.fixture(scope="module")
def secure(new_cluster):
    cluster = new_cluster(1)
    ca = certs.new_ca("datakit kafka test CA")
    client = client_files(cluster.base, ca)
    for node in cluster.nodes:
        node.update(tls=material(ca, f"kafka-{node['node_id']}"), authorize=True,
                    tls_principals=[f"kafka-{node['node_id']}", "datakit"])
    cluster.props.update(client_tls=client)
    cluster.props["controllers"] = [{**c, "client_tls": client}
                                    for c in cluster.props["controllers"]]
    cluster.start()
    kafka.wait_cluster_ready(cluster.props)
    topic = {**cluster.props, "name": "granted.events", "partitions": 2,
             "replication_factor": 1, "min_insync_replicas": 1, "group_prefix": PREFIX}
    kafka.ensure_topic(topic)
    kafka_acls.grant_app(topic)
    kafka.ensure_topic({**topic, "name": "not.granted"})
    return {"cluster": cluster, "ca": ca, "client": client, "topic": topic}


def _app(secure) -> dict:
    return {**secure["cluster"].client("app"), "socket.timeout.ms": 5000}


def test_the_app_writes_and_reads_its_topic_in_its_group_over_tls(secure):
    conf = _app(secure)
    assert conf["security.protocol"] == "SASL_SSL"
    producer = Producer({**conf, "acks": "all"})
    producer.produce("granted.events", b"hello")
    assert producer.flush(15) == 0
    assert _consume(conf, "granted.events", f"{PREFIX}test-{uuid.uuid4().hex}") == b"hello"


def _consume(conf: dict, topic: str, group: str) -> bytes | KafkaError:
    consumer = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    try:
        consumer.subscribe([topic])
        for _ in range(40):
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            return msg.error() or msg.value()
        return KafkaError(KafkaError._TIMED_OUT)
    finally:
        consumer.close()


def test_the_app_cannot_create_or_delete_a_topic(secure):
    admin = AdminClient(_app(secure))
    created = admin.create_topics([NewTopic("app.made", 1, 1)], operation_timeout=10)
    with pytest.raises(KafkaException) as err:
        created["app.made"].result(15)
    assert err.value.args[0].code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                        KafkaError.CLUSTER_AUTHORIZATION_FAILED)
    deleted = admin.delete_topics(["granted.events"], operation_timeout=10)
    with pytest.raises(KafkaException) as err:
        deleted["granted.events"].result(15)
    assert err.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_the_app_cannot_read_a_topic_it_was_not_granted_nor_use_another_group(secure):
    conf = _app(secure)
    found = _consume(conf, "not.granted", f"{PREFIX}other-{uuid.uuid4().hex}")
    assert isinstance(found, KafkaError)
    assert found.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                            KafkaError.UNKNOWN_TOPIC_OR_PART)
    found = _consume(conf, "granted.events", f"stranger-{uuid.uuid4().hex}")
    assert isinstance(found, KafkaError) and found.code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_the_grants_are_exactly_the_apps_needs(secure):
    assert kafka_acls.granted(secure["topic"], "User:app") == [
        "DESCRIBE TOPIC:granted.events", f"READ GROUP:{PREFIX}", "READ TOPIC:granted.events",
        "WRITE TOPIC:granted.events"]


def test_strangers_are_refused(secure):
    cluster = secure["cluster"]
    broker = cluster.props["brokers"][0]
    assert tls_probe.handshake("127.0.0.1", broker["port"], None,
                               request=b"\0\0\0\x01\0").startswith("refused")
    other = client_files(cluster.base, certs.new_ca("kafka stranger CA"), "kafka-stranger")
    errors: list = []
    quiet = logging.getLogger("test.kafka.stranger")
    quiet.propagate = False
    stranger = AdminClient({**_app(secure), "ssl.ca.location": other["ca"],
                            "error_cb": errors.append, "logger": quiet})
    with pytest.raises(KafkaException):
        stranger.describe_cluster(request_timeout=5).result(10)
    stranger.poll(1)  # error callbacks are served by poll
    assert KafkaError._SSL in {e.code() for e in errors}, errors
    controller = cluster.props["controllers"][0]
    bare = ssl.create_default_context(cafile=secure["client"]["ca"])
    with pytest.raises(OSError):
        describe_quorum("127.0.0.1", controller["port"], context=bare)
    assert describe_quorum("127.0.0.1", controller["port"],
                           context=tls.context(secure["client"])).error == 0


def test_the_node_serves_a_certificate_of_the_ca(secure):
    broker = secure["cluster"].props["brokers"][0]
    pem = tls_probe.served_certificate("127.0.0.1", broker["port"])
    assert certs.signed_by(pem, secure["ca"].cert) and "127.0.0.1" in certs.hosts(pem)
