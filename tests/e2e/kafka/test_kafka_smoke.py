"""The toolchain's proof: Kafka from Maven Central formats and starts one KRaft node, and a
real client, authenticated with SASL/SCRAM, lists its topics."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from datakit.nodes import kafka, process


@pytest.fixture(scope="module")
def single(new_cluster):
    return new_cluster(1, heap_mb=256)


def test_one_kraft_node_lists_topics(single):
    single.start()
    ready = kafka.wait_cluster_ready(single.props)
    assert ready["brokers"] == [1] and ready["leader_id"] == 1
    assert ready["cluster_id"] == single.props["cluster_id"]

    admin = AdminClient(single.client("app"))
    metadata = admin.list_topics(timeout=10)
    assert [b.id for b in metadata.brokers.values()] == [1]
    assert not [t for t in metadata.topics if not t.startswith("__")]

    # The node runs unprivileged and logs through our log4j2 config.
    node = single.outs[1]
    assert kafka.node_running(node)
    assert "Kafka Server started" in Path(node["server_log"]).read_text()


def test_delete_leaves_no_process_port_or_dir(single):
    node = {**single.nodes[0], **single.outs[1]}
    kafka.delete_node(node)  # graceful: SIGTERM, a controlled shutdown
    assert not kafka.node_running(node)
    assert not Path(node["data_dir"]).exists()
    assert process.port_free(node["port"]) and process.port_free(node["controller_port"])
