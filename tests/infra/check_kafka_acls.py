"""Kafka's least privilege and its TLS refusals: the app user may not create or delete a
topic, nor read one it was not granted (a topic made for the check, removed after); a
plaintext client, a client trusting another CA and a controller client without a
certificate are refused; the kit itself gets in."""

from __future__ import annotations

import logging
import ssl
import time
import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

from datakit.nodes import certs, tls, tls_probe
from datakit.nodes.kafka_quorum import describe_quorum
from datakit.stack.schema import Node
from datakit.verify import Mismatch

DENIED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}


def _quiet() -> logging.Logger:
    quiet = logging.getLogger("datakit.verify.librdkafka.acls")
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    return quiet


def _admin(outputs, *, admin: bool, **extra) -> AdminClient:
    return AdminClient({**outputs.kafka_config(admin=admin), "logger": _quiet(),
                        "socket.connection.setup.timeout.ms": 3000, **extra})


@pytest.fixture(scope="session")
def victim(outputs):
    """A topic the app was granted nothing on, made by the admin for these checks."""
    if not outputs.of("kafka"):
        pytest.skip("the stack has no Kafka")
    name = f"datakit.verify.victim-{uuid.uuid4().hex[:8]}"
    admin = _admin(outputs, admin=True)
    admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=15)[name].result(20)
    yield name
    admin.delete_topics([name], operation_timeout=15)[name].result(20)


def _outcome(future) -> str:
    try:
        future.result(15)
    except KafkaException as exc:
        code = exc.args[0].code()
        if code in DENIED:
            return "refused"
        raise Mismatch(f"failed otherwise: {exc.args[0].str()}") from None
    return "allowed"


@pytest.fixture(scope="session")
def app_admin(outputs) -> AdminClient:
    """An AdminClient as the app user, kept for the session: a client must outlive the
    futures it made (a dropped one ends them with 'Handle is terminating')."""
    return _admin(outputs, admin=False)


def test_app_cannot_create_a_topic(outputs, app_admin, victim, checker):
    def probe() -> str:
        name = f"datakit.verify.app-made-{uuid.uuid4().hex[:8]}"
        found = _outcome(app_admin.create_topics([NewTopic(name, 1, 1)],
                                                 operation_timeout=10)[name])
        if found == "allowed":  # the check must not leave what it proved possible
            admin = _admin(outputs, admin=True)
            admin.delete_topics([name])[name].result(20)
        return found

    checker.expect("Kafka: the app cannot create a topic", "kafka", "refused", probe)


def test_app_cannot_delete_a_topic(app_admin, victim, checker):
    checker.expect("Kafka: the app cannot delete a topic", "kafka", "refused", lambda: _outcome(
        app_admin.delete_topics([victim], operation_timeout=10)[victim]))


def test_app_cannot_read_a_topic_it_was_not_granted(app_admin, victim, checker):
    def probe() -> str:
        return _outcome(app_admin.describe_topics(TopicCollection([victim]))[victim])

    checker.expect("Kafka: the app cannot see an ungranted topic", "kafka", "refused", probe)


# --- TLS refusals, per broker ----------------------------------------------------------------


@pytest.fixture(scope="session")
def foreign_ca(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("kafka-stranger") / "ca.pem"
    path.write_text(certs.new_ca("a stranger's CA").cert)
    return str(path)


def _stranger_gets_in(outputs, ca: str) -> str:
    """A client trusting another CA: its handshake fails (an _SSL error) or it gets in."""
    errors: list = []
    client = _admin(outputs, admin=False, **{"ssl.ca.location": ca, "error_cb": errors.append})
    future = client.describe_cluster(request_timeout=8)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not future.done():
        client.poll(0.1)  # serves error_cb
        if any(e.code() == KafkaError._SSL for e in errors):
            return "refused"
    try:
        future.result(0.1)
    except KafkaException:
        return f"failed otherwise: {errors[:1]}"
    return "accepted"


def test_kafka_refuses_strangers(kafka_node: Node, outputs, foreign_ca, checker):
    files = outputs.tls_for("kafka")
    if not files:
        pytest.skip("Kafka does not serve TLS on this stack")

    def probe() -> str:
        found = {"plaintext": tls_probe.handshake(kafka_node.host, kafka_node.port, None,
                                                  request=b"\0\0\0\x01\0"),
                 "no client certificate (controller)": _controller(kafka_node, files, False)}
        if any(f.startswith("unreachable") for f in found.values()):
            raise Mismatch("; ".join(found.values()))
        let_in = [what for what, f in found.items() if not f.startswith("refused")]
        return f"let in: {', '.join(let_in)}" if let_in else "all refused"

    checker.expect("Kafka: strangers refused", kafka_node.name, "all refused", probe)
    checker.expect("Kafka: the kit's certificate accepted (controller)", kafka_node.name,
                   "accepted", lambda: _controller(kafka_node, files, True))


def test_kafka_is_refused_by_a_client_of_another_ca(outputs, foreign_ca, checker):
    if not outputs.tls_for("kafka"):
        pytest.skip("Kafka does not serve TLS on this stack")
    checker.expect("Kafka: a client trusting another CA refuses it", "kafka", "refused",
                   lambda: _stranger_gets_in(outputs, foreign_ca))


def _controller(node: Node, files: dict, with_cert: bool) -> str:
    port = node.ports.get("controller")
    if not port:
        return "refused: no controller listener"
    ctx = tls.context(files) if with_cert else ssl.create_default_context(cafile=files["ca"])
    try:
        describe_quorum(node.host, int(port), timeout=3, context=ctx)
    except ssl.SSLError as exc:
        return f"refused: {exc.reason}"
    except ConnectionError as exc:
        return f"refused: {type(exc).__name__}"
    except OSError as exc:
        return f"unreachable: {exc}"
    return "accepted"
