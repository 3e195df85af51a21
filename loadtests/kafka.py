"""Kafka users: produce with acks=all (`kafka produce`) and end-to-end latency (`kafka e2e`).

Never blocks the gevent hub: the delivery report is awaited on a gevent event while one
greenlet per process polls librdkafka with a zero timeout (see datakit.load.kafka_client).
"""

import json
import random
import time

from locust import User, task

from datakit.load import kafka_client as kf
from datakit.load import listeners  # noqa: F401
from datakit.load.pacing import think

METRICS_TOPIC = "ms.system.metrics"


class KafkaUser(User):
    wait_time = think

    def on_start(self) -> None:
        if self.environment.runner is None or self.environment.runner.worker_index <= 0:
            kf.consume_e2e([METRICS_TOPIC, "ms.agent.events"])

    @task
    def produce_metric(self) -> None:
        body = json.dumps({"metric": "queue_depth", "value": random.randint(0, 500),
                           "at": time.time()}).encode()
        kf.produce(METRICS_TOPIC, body, key=str(random.randint(0, 63)).encode())
