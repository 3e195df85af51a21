"""Kafka for Locust users without blocking the gevent hub.

librdkafka's threads are invisible to gevent: a blocking `flush()` or `poll(timeout)` would
stall every user of the process. So one greenlet per process calls `poll(0)` and sleeps a
millisecond; a user's `produce` waits on a gevent event that the delivery callback sets.
Reported: `kafka produce` (acks=all delivery latency) and `kafka e2e` (produce time to
consume time, from one consumer greenlet that reads this run's messages only; with several
worker processes the first one consumes).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import gevent
from gevent.event import AsyncResult

from datakit.load.events import reporter
from datakit.load.settings import current

REQUEST_TYPE = "kafka"
POLL_SLEEP_S = 0.001
DELIVERY_TIMEOUT_S = 30.0

_lock = threading.Lock()
_producer: Any = None
_pid = os.getpid()
_consuming: set[str] = set()
_fire = reporter(REQUEST_TYPE)


def _common() -> dict[str, Any]:
    return current().outputs.kafka_config()


def _poll_forever(handle) -> None:
    while True:
        handle.poll(0)
        gevent.sleep(POLL_SLEEP_S)


def producer():
    global _producer, _pid
    if _producer is not None and _pid == os.getpid():
        return _producer
    with _lock:
        if _pid != os.getpid():
            _producer, _pid = None, os.getpid()
            _consuming.clear()
        if _producer is None:
            from confluent_kafka import Producer

            _producer = Producer({**_common(), "acks": "all", "linger.ms": 1,
                                  "enable.idempotence": True,
                                  "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000)})
            gevent.spawn(_poll_forever, _producer)
    return _producer


class KafkaFailure(Exception):
    pass


def produce(topic: str, value: bytes, key: bytes | None = None, name: str = "produce") -> bool:
    """Send with acks=all and wait (cooperatively) for the delivery report."""
    from confluent_kafka import KafkaException

    p = producer()
    done = AsyncResult()
    started = time.perf_counter()
    headers = [("datakit-run", current().run_id.encode()),
               ("datakit-ts", repr(time.time()).encode())]
    try:
        p.produce(topic, value=value, key=key, headers=headers,
                  on_delivery=lambda err, msg: done.set(err))
    except (BufferError, KafkaException) as exc:
        _fire(name, time.perf_counter() - started, exc)
        return False
    err = done.get(timeout=DELIVERY_TIMEOUT_S + 5)
    if err is not None:
        _fire(name, time.perf_counter() - started, KafkaFailure(str(err)))
        return False
    _fire(name, time.perf_counter() - started)
    return True


def consume_e2e(topics: list[str]) -> None:
    """Start (once per process and topic set) the greenlet that reports `kafka e2e`."""
    key = ",".join(sorted(topics))
    with _lock:
        if key in _consuming:
            return
        _consuming.add(key)
    gevent.spawn(_consume_forever, topics)


def _consume_forever(topics: list[str]) -> None:
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition

    run = current().run_id.encode()
    group = f"{current().kafka.group_prefix or 'datakit-'}load-{current().run_id}"
    consumer = Consumer({**_common(), "group.id": group,  # a group the app may read in
                         "enable.auto.commit": False, "auto.offset.reset": "latest",
                         "fetch.wait.max.ms": 10, "fetch.min.bytes": 1})
    while True:  # manual assignment: no group join to wait for
        try:  # a blocking call: in a real thread, so the hub keeps running
            meta = gevent.get_hub().threadpool.spawn(consumer.list_topics, timeout=5).get()
        except Exception:  # noqa: BLE001 - retried until the cluster answers
            gevent.sleep(0.2)
            continue
        parts = [TopicPartition(t, p, OFFSET_END) for t in topics if t in meta.topics
                 for p in meta.topics[t].partitions]
        if parts:
            consumer.assign(parts)
            break
        gevent.sleep(0.2)
    while True:
        msg = consumer.poll(0)
        if msg is None:
            gevent.sleep(POLL_SLEEP_S)
            continue
        if msg.error():
            continue
        headers = dict(msg.headers() or [])
        if headers.get("datakit-run") != run:
            continue
        sent = float(headers["datakit-ts"])
        _fire("e2e", max(0.0, time.time() - sent))
