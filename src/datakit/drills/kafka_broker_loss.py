"""kafka-broker-loss: SIGKILL one broker (not the active controller) under an `acks=all`
idempotent producer, bring it back and wait for every partition's ISR to be full; then
the same with the active KRaft controller. A fresh consumer reads the drill's messages
back afterwards: every acknowledged id must be there (no gap).

A hard-killed broker keeps its partitions' leadership until the controller fences it
(`broker.session.timeout.ms`, 4 s in the local stack); the producer's retries cover the
window, so writes to those partitions stall rather than fail. RTO here is the end of the
stall: the acknowledgement of the last write sent between the kill and the restart that
waited more than 1 s (or, if none waited, the first write after the kill). Stalls while
the restarted broker takes back its preferred leaderships are not counted.
"""

from __future__ import annotations

import threading
import time
import uuid

from datakit.drills.checker import check
from datakit.drills.context import DrillContext
from datakit.drills.result import DrillResult, measure
from datakit.drills.waiting import wait
from datakit.drills.writer import Op, Recorder
from datakit.nodes.control import control_for
from datakit.nodes.kafka_quorum import describe_quorum

NAME = "kafka-broker-loss"
TOPIC = "datakit.drills"
STALL_S = 1.0


def applies(outputs: dict) -> str | None:
    brokers = [n for n in outputs["nodes"] if n["service"] == "kafka"]
    return None if len(brokers) >= 3 else "needs 3 brokers (RF 3, min.insync.replicas 2)"


def client_config(outputs: dict, *, admin: bool = False) -> dict:
    kf = outputs["endpoints"]["kafka"]
    user = kf.get("admin_username", "admin") if admin else kf["username"]
    return {"bootstrap.servers": kf["bootstrap_servers"],
            "security.protocol": kf["security_protocol"], "sasl.mechanism": kf["sasl_mechanism"],
            "sasl.username": user,
            "sasl.password": outputs["secrets"]["kafka"]["admin" if admin else "app"]}


def ensure_topic(outputs: dict) -> None:
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


def under_replicated(outputs: dict) -> list[str]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_config(outputs, admin=True))
    meta = admin.list_topics(timeout=5)
    bad = [f"{t}/{p}" for t, tm in meta.topics.items() for p, pm in tm.partitions.items()
           if pm.leader < 0 or len(pm.isrs) < len(pm.replicas)]
    if len(meta.brokers) < len([n for n in outputs["nodes"] if n["service"] == "kafka"]):
        bad.append(f"only brokers {sorted(meta.brokers)} registered")
    return bad


def wait_full_isr(outputs: dict, timeout: float = 120.0) -> None:
    wait(lambda: not under_replicated(outputs),
         what="every Kafka partition with its full ISR", timeout=timeout)


def active_controller(outputs: dict) -> dict:
    for node in (n for n in outputs["nodes"] if n["service"] == "kafka"):
        port = (node.get("ports") or {}).get("controller")
        try:
            if port and describe_quorum(node["host"], int(port)).error == 0:
                return node
        except OSError:
            continue
    raise RuntimeError("no KRaft controller answered as the quorum leader")


class ProducerWriter(threading.Thread):
    """Produces `run:id` every `interval` s with acks=all and idempotence; an op ends at
    its delivery report (ok, or unknown on an error: it may still have been written)."""

    def __init__(self, outputs: dict, rec: Recorder, run: str, interval: float = 0.004):
        super().__init__(daemon=True, name="drill-producer")
        from confluent_kafka import Producer

        self.rec, self.run_id, self.interval = rec, run, interval
        self.producer = Producer({**client_config(outputs), "acks": "all",
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


def read_ids(outputs: dict, run: str) -> set[int]:
    """A fresh consumer reads the whole topic up to its end offsets: an independent read."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**client_config(outputs), "group.id": f"drill-check-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC]
        parts = [TopicPartition(TOPIC, p, 0) for p in meta.partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        consumer.assign(parts)
        seen, prefix = set(), f"{run}:".encode()
        done: set[int] = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + 60
        while len(done) < len(parts) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=1):
                if msg.error():
                    continue
                if msg.value().startswith(prefix):
                    seen.add(int(msg.value()[len(prefix):]))
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
        return seen
    finally:
        consumer.close()


def _stall_end(rec: Recorder, t_fault: float, until: float) -> float | None:
    with rec.lock:
        slow = [o.end for o in rec.ops if o.status == "ok" and t_fault - 1 <= o.start < until
                and o.end - o.start > STALL_S]
        first = [o.end for o in rec.ops if o.status == "ok" and o.start >= t_fault]
    if slow:
        return max(slow)
    return min(first) if first else None


def _lose(ctx: DrillContext, rec: Recorder, node: dict, label: str) -> dict:
    out = ctx.outputs
    ctl = control_for(node, out)
    ctx.say(f"killing Kafka {label} {node['name']} (SIGKILL)")
    ctl.kill()
    t_kill = rec.event(f"kill {label}")
    time.sleep(max(ctx.warmup_s, 1.0))
    t_restart = rec.event(f"restarting {label}")
    ctl.start()
    rec.event(f"restarted {label}")
    wait_full_isr(out)
    t_red = rec.event(f"redundant {label}")
    time.sleep(2.0)  # let writes stalled on fenced leaders finish
    end = _stall_end(rec, t_kill, t_restart)
    return {"node": node["name"], "rto_s": None if end is None else round(end - t_kill, 3),
            "rto_redundancy_s": round(t_red - t_kill, 3)}


def run(ctx: DrillContext) -> DrillResult:
    out = ctx.outputs
    result = DrillResult(NAME, ctx.stack, durable=ctx.durable)
    ensure_topic(out)
    wait_full_isr(out)
    rec = Recorder()
    writer = ProducerWriter(out, rec, ctx.run_id)
    try:
        writer.start()
        time.sleep(ctx.warmup_s)
        leader = active_controller(out)
        broker = next(n for n in out["nodes"] if n["service"] == "kafka"
                      and n["name"] != leader["name"])
        phases = [_lose(ctx, rec, broker, "broker")]
        phases.append(_lose(ctx, rec, active_controller(out), "controller"))
        time.sleep(ctx.tail_s)
    finally:
        writer.stop()
    result.check = check(rec, read_ids(out, ctx.run_id))
    measure(result, rec, "kill broker")
    result.extra["phases"] = phases
    rtos = [p["rto_s"] for p in phases if p["rto_s"] is not None]
    result.rto_s = max(rtos) if rtos else None
    result.rto_redundancy_s = max(p["rto_redundancy_s"] for p in phases)
    if result.check.lost:
        result.reason = f"{len(result.check.lost)} acknowledged messages lost"
    return result
