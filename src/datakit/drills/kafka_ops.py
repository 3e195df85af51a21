"""What the Kafka drill writes with and asks of the cluster: the drill's topic (RF 3,
`min.insync.replicas` 2), partitions short of their full ISR, the active KRaft
controller, an `acks=all` idempotent producer that records each delivery report, and a
fresh consumer that reads the drill's messages back."""

from __future__ import annotations

import threading
import time
import uuid

from datakit.drills import client_log
from datakit.drills.waiting import wait
from datakit.drills.writer import Op, Recorder
from datakit.nodes import kafka_acls, tls
from datakit.nodes.kafka_quorum import describe_quorum
from datakit.stack.schema import Node, StackOutputs

TOPIC = "datakit.drills"
STALL_S = 1.0  # a write that waited longer was stalled by the fault


def brokers(outputs: StackOutputs) -> list[Node]:
    return outputs.of("kafka")


def client_config(outputs: StackOutputs, *, admin: bool = False) -> dict:
    # librdkafka's lines go to the run's log, not the terminal
    return {**outputs.kafka_config(admin=admin), "logger": client_log.LOGGER}


def _acl_props(outputs: StackOutputs) -> dict:
    """What nodes.kafka_acls needs to grant the app the drill topic, as the admin."""
    kf, secrets = outputs.endpoints.kafka, outputs.need_secrets().kafka
    files = outputs.tls_for("kafka")
    return {"bootstrap": kf.bootstrap_servers, "admin_user": kf.admin_username,
            "admin_password": secrets.admin, "app_user": kf.username, "name": TOPIC,
            "group_prefix": kf.group_prefix, **({"client_tls": files} if files else {})}


def ensure_topic(outputs: StackOutputs) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(client_config(outputs, admin=True))
    if TOPIC in admin.list_topics(timeout=10).topics:
        return
    futures = admin.create_topics([NewTopic(TOPIC, 3, 3, config={"min.insync.replicas": "2"})])
    for f in futures.values():
        try:
            f.result(30)
        except Exception as exc:  # noqa: BLE001 - created meanwhile is fine
            if "already exists" not in str(exc):
                raise
    wait(lambda: TOPIC in admin.list_topics(timeout=5).topics,
         what=f"topic {TOPIC}", timeout=30)
    kafka_acls.grant_app(_acl_props(outputs))  # the drill writes and reads it as the app


def under_replicated(outputs: StackOutputs, avoid: Node | None = None) -> list[str]:
    """Partitions short of their full ISR, as the brokers other than `avoid` see them (one
    just back from a partition still answers with its stale view for a moment)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(_asking(outputs, avoid))
    meta = admin.list_topics(timeout=5)
    bad = [f"{t}/{p}" for t, tm in meta.topics.items() for p, pm in tm.partitions.items()
           if pm.leader < 0 or len(pm.isrs) < len(pm.replicas)]
    if len(meta.brokers) < len(brokers(outputs)):
        bad.append(f"only brokers {sorted(meta.brokers)} registered")
    return bad


def wait_full_isr(outputs: StackOutputs, timeout: float = 120.0,
                  avoid: Node | None = None) -> None:
    wait(lambda: not under_replicated(outputs, avoid),
         what="every Kafka partition with its full ISR", timeout=timeout)


def _asking(outputs: StackOutputs, avoid: Node | None) -> dict:
    """An admin client's config that bootstraps from every broker but `avoid`."""
    asked = [n for n in brokers(outputs) if avoid is None or n.name != avoid.name]
    return {**client_config(outputs, admin=True),
            "bootstrap.servers": ",".join(f"{n.host}:{n.port}" for n in asked)}


def active_controller(outputs: StackOutputs) -> Node:
    for node in brokers(outputs):
        port = node.ports.get("controller")
        try:
            if port and describe_quorum(node.host, int(port), context=tls.context(
                    tls.client_files(node))).error == 0:
                return node
        except OSError:
            continue
    raise RuntimeError("no KRaft controller answered as the quorum leader")


def leaders(outputs: StackOutputs, *, topic: str = TOPIC,
            avoid: Node | None = None) -> dict[int, str | None]:
    """`topic`'s partition -> the name of its leader node (None: no leader), as brokers
    other than `avoid` see it (a broker cut off from the controllers keeps a stale view of
    its own)."""
    from confluent_kafka.admin import AdminClient

    meta = AdminClient(_asking(outputs, avoid)).list_topics(topic, timeout=5)
    at = {(n.host, n.port): n.name for n in brokers(outputs)}
    names = {i: at.get((b.host, b.port)) for i, b in meta.brokers.items()}
    return {p: names.get(pm.leader) for p, pm in meta.topics[topic].partitions.items()}


def stall_end(rec: Recorder, t_fault: float, until: float) -> float | None:
    """When the writes a fault stalled were acknowledged: the last ack of a write sent
    between the fault and `until` that waited more than STALL_S (or, if none waited, the
    first ack after the fault). Writes to partitions the fault did not touch go on, so the
    first ack alone would say nothing."""
    with rec.lock:
        ops = list(rec.ops)
    slow = [o.end for o in ops if o.status == "ok" and t_fault - 1 <= o.start < until
            and o.end - o.start > STALL_S]
    if slow:
        return max(slow)
    first = [o.end for o in ops if o.status == "ok" and o.start >= t_fault]
    return min(first) if first else None


class DrillTopic:
    """The writes' target: this run's messages in the drill's topic."""

    def __init__(self, outputs: StackOutputs, run: str):
        self.outputs, self.run = outputs, run

    def read_ids(self) -> set[int]:
        """A fresh consumer reads the whole topic up to its end offsets: an independent
        read."""
        return {i for ids in self.read_partitions().values() for i in ids}

    def read_partitions(self) -> dict[int, list[int]]:
        """This run's ids per partition, in offset order (duplicates kept)."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({**client_config(self.outputs),
                             "group.id": f"{self.outputs.endpoints.kafka.group_prefix}"
                                         f"drill-check-{uuid.uuid4()}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        try:
            meta = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC]
            parts = [TopicPartition(TOPIC, p, 0) for p in meta.partitions]
            ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1]
                    for tp in parts}
            consumer.assign(parts)
            seen: dict[int, list[int]] = {p.partition: [] for p in parts}
            prefix = f"{self.run}:".encode()
            done: set[int] = {p for p, end in ends.items() if end == 0}
            deadline = time.monotonic() + 60
            while len(done) < len(parts) and time.monotonic() < deadline:
                for msg in consumer.consume(1000, timeout=1):
                    if msg.error():
                        continue
                    if msg.value().startswith(prefix):
                        seen[msg.partition()].append(int(msg.value()[len(prefix):]))
                    if msg.offset() + 1 >= ends[msg.partition()]:
                        done.add(msg.partition())
            return seen
        finally:
            consumer.close()


class ProducerWriter(threading.Thread):
    """Produces `run:id` every `interval` s with acks=all and idempotence; an op ends at
    its delivery report (ok, or unknown on an error: it may still have been written)."""

    def __init__(self, topic: DrillTopic, rec: Recorder, interval: float = 0.004):
        super().__init__(daemon=True, name="drill-producer")
        from confluent_kafka import Producer

        self.rec, self.run_id, self.interval = rec, topic.run, interval
        self.producer = Producer({**client_config(topic.outputs), "acks": "all",
                                  "enable.idempotence": True, "linger.ms": 2,
                                  "message.timeout.ms": 60000, "request.timeout.ms": 5000,
                                  "retry.backoff.ms": 50, "metadata.max.age.ms": 5000})
        self.halt = threading.Event()
        self.next_id = 1

    def run(self) -> None:
        while not self.halt.is_set():
            op_id, self.next_id = self.next_id, self.next_id + 1
            start = self.rec.now()

            def done(err, _msg, op_id=op_id, start=start):
                status = "ok" if err is None else "unknown"
                self.rec.add(Op(op_id, start, self.rec.now(), status,
                                None if err is None else f"KafkaError: {err.str()}"))

            self.producer.produce(TOPIC, key=str(op_id).encode(),
                                  value=f"{self.run_id}:{op_id}".encode(), on_delivery=done)
            self.producer.poll(0)
            time.sleep(self.interval)

    def stop(self) -> None:
        self.halt.set()
        self.join(30)
        self.producer.flush(60)
