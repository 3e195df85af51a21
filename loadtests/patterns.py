"""The data layer's own patterns (shared/seeds) as Locust users.

- AgentStateUser: versioned agent state with a Redis cache in front (cache-aside: read
  the cache, on a miss read PostgreSQL and fill it; a write adds a version and deletes the
  cached entry).
- EventStoreUser: append to an aggregate's stream with expected-version concurrency
  control; a version taken by another writer is a conflict (counted), not an error.
- MessageQueueUser: a PostgreSQL queue with priority and scheduling, dequeued with
  `FOR UPDATE SKIP LOCKED`, failed messages retried with backoff and dead-lettered after
  `max_retries`.
- LifecycleUser: agent lifecycle events in PostgreSQL and on Kafka (`ms.agent.events`).
"""

import json
import random
import uuid

from locust import User, task
from psycopg.types.json import Jsonb

from datakit.load import kafka_client as kf
from datakit.load import listeners  # noqa: F401
from datakit.load import postgres_client as pg
from datakit.load import redis_client as rd
from datakit.load.pacing import agent_ids, think
from datakit.load.recorder import count
from datakit.load.settings import current

STATE_TTL_S = 300
AGENT_TYPE = "load-agent"

READ_STATE = ("SELECT state_version, state_data FROM ms_agents.agent_states "
              "WHERE agent_id = %s ORDER BY state_version DESC LIMIT 1")
WRITE_STATE = """
INSERT INTO ms_agents.agent_states (agent_id, agent_type, state_version, state_data)
SELECT %(agent)s::varchar, %(type)s, coalesce(max(state_version), 0) + 1, %(data)s
  FROM ms_agents.agent_states WHERE agent_id = %(agent)s::varchar
ON CONFLICT (agent_id, state_version) DO NOTHING
RETURNING state_version"""


class AgentStateUser(User):
    wait_time = think
    weight = 3

    def on_start(self) -> None:
        self.agents = agent_ids()

    @task(5)
    def get_state(self) -> None:
        agent = random.choice(self.agents)
        key = f"agent:state:{agent}"
        cached = rd.call("agent_state/get", lambda r: r.get(key))
        if cached is not None:
            count("agent_state_cache_hit")
            return
        count("agent_state_cache_miss")
        row = pg.run("read", "read/agent_state",
                     lambda c: c.execute(READ_STATE, (agent,)).fetchone())
        if row is not None:
            body = json.dumps({"version": row[0], "data": row[1]})
            rd.call("agent_state/fill", lambda r: r.set(key, body, ex=STATE_TTL_S))

    @task(1)
    def save_state(self) -> None:
        agent = random.choice(self.agents)
        data = Jsonb({"step": random.randint(0, 1 << 20), "mood": random.random()})
        row = pg.run("write", "write/agent_state", lambda c: c.execute(
            WRITE_STATE, {"agent": agent, "type": AGENT_TYPE, "data": data}).fetchone())
        if row is None:
            count("agent_state_version_conflicts")
        rd.call("agent_state/invalidate", lambda r: r.delete(f"agent:state:{agent}"))


APPEND = """
INSERT INTO ms_framework.event_store
    (aggregate_id, aggregate_type, event_type, event_data, event_version, correlation_id)
VALUES (%s, 'LoadAggregate', %s, %s, %s, %s)
ON CONFLICT (aggregate_id, event_version) DO NOTHING
RETURNING event_version"""
CURRENT_VERSION = ("SELECT coalesce(max(event_version), 0) FROM ms_framework.event_store "
                   "WHERE aggregate_id = %s")
_known_versions: dict[uuid.UUID, int] = {}  # this process's view, shared by its users


class EventStoreUser(User):
    wait_time = think
    weight = 2

    def on_start(self) -> None:
        run = current().run_id
        self.aggregates = [uuid.uuid5(uuid.NAMESPACE_URL, f"{run}/{i}") for i in range(20)]

    @task
    def append(self) -> None:
        agg = random.choice(self.aggregates)
        expected = _known_versions.get(agg, 0)
        event = random.choice(["Created", "Updated", "Assigned", "Completed"])
        row = pg.run("write", "write/event_append", lambda c: c.execute(
            APPEND, (agg, event, Jsonb({"n": expected + 1}), expected + 1,
                     uuid.uuid4())).fetchone())
        if row is not None:
            _known_versions[agg] = row[0]
            count("event_appends")
            return
        count("event_version_conflicts")  # someone appended first: reload, not an error
        latest = pg.run("write", "read/event_version",
                        lambda c: c.execute(CURRENT_VERSION, (agg,)).fetchone())
        if latest is not None:
            _known_versions[agg] = latest[0]


ENQUEUE = """
INSERT INTO ms_messaging.message_queue
    (queue_name, message_id, payload, priority, scheduled_at, max_retries)
VALUES (%s, %s, %s, %s, now() + %s * interval '1 millisecond', %s)"""
DEQUEUE = """
UPDATE ms_messaging.message_queue SET status = 'PROCESSING'
 WHERE id = (SELECT id FROM ms_messaging.message_queue
              WHERE queue_name = %s AND status = 'PENDING' AND scheduled_at <= now()
              ORDER BY priority DESC, scheduled_at
              LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id"""
COMPLETE = ("UPDATE ms_messaging.message_queue SET status = 'COMPLETED', processed_at = now() "
            "WHERE id = %s")
FAIL = """
WITH m AS (
    UPDATE ms_messaging.message_queue SET
        status = CASE WHEN retry_count >= max_retries THEN 'DEAD_LETTER' ELSE 'PENDING' END,
        retry_count = least(retry_count + 1, max_retries),
        scheduled_at = now() + (retry_count + 1) * interval '20 milliseconds',
        error_message = %s
     WHERE id = %s
    RETURNING id, queue_name, payload, headers, error_message, retry_count, status),
dead AS (
    INSERT INTO ms_messaging.dead_letter_queue
        (original_message_id, queue_name, payload, headers, failure_reason, retry_attempts)
    SELECT id, queue_name, payload, headers, error_message, retry_count
      FROM m WHERE status = 'DEAD_LETTER')
SELECT status FROM m"""


class MessageQueueUser(User):
    wait_time = think
    weight = 2

    def on_start(self) -> None:
        self.queue = f"load-{current().run_id}"

    @task(1)
    def enqueue(self) -> None:
        s = current()
        delay_ms = random.choice([0, 0, 0, 50, 200])
        pg.run("write", "write/enqueue", lambda c: c.execute(ENQUEUE, (
            self.queue, uuid.uuid4().hex, Jsonb({"task": "work"}), random.randint(1, 9),
            delay_ms, s.queue_max_retries)))

    @task(1)
    def work_one(self) -> None:
        row = pg.run("write", "write/dequeue",
                     lambda c: c.execute(DEQUEUE, (self.queue,)).fetchone())
        if row is None:
            count("queue_empty_polls")
            return
        if random.random() >= current().queue_fail_ratio:
            pg.run("write", "write/complete", lambda c: c.execute(COMPLETE, (row[0],)))
            count("queue_completed")
            return
        status = pg.run("write", "write/fail", lambda c: c.execute(
            FAIL, ("simulated handler failure", row[0])).fetchone())
        if status is not None:
            count("queue_dead_lettered" if status[0] == "DEAD_LETTER" else "queue_retried")


LIFECYCLE = """
WITH agent AS (
    INSERT INTO ms_agents.agent_instances (agent_type, agent_id, state, status)
    VALUES (%(type)s, %(agent)s, %(state)s, %(status)s)
    ON CONFLICT (agent_type, agent_id) DO UPDATE
        SET status = EXCLUDED.status, state = EXCLUDED.state, heartbeat_at = now()
    RETURNING id)
INSERT INTO ms_agents.agent_lifecycle_events (agent_instance_id, event_type, event_data)
SELECT id, %(event)s, %(state)s FROM agent
RETURNING agent_instance_id"""
TRANSITIONS = {"STARTING": "RUNNING", "RUNNING": "IDLE", "IDLE": "RUNNING"}


class LifecycleUser(User):
    wait_time = think
    weight = 1

    def on_start(self) -> None:
        self.agents = agent_ids(50)
        self.status: dict[str, str] = {}
        if self.environment.runner is None or self.environment.runner.worker_index <= 0:
            kf.consume_e2e(["ms.agent.events"])

    @task
    def transition(self) -> None:
        agent = random.choice(self.agents)
        status = TRANSITIONS.get(self.status.get(agent, ""), "STARTING")
        state = Jsonb({"status": status})
        row = pg.run("write", "write/lifecycle_event", lambda c: c.execute(LIFECYCLE, {
            "type": AGENT_TYPE, "agent": agent, "state": state, "status": status,
            "event": f"agent.{status.lower()}"}).fetchone())
        if row is None:
            return
        self.status[agent] = status
        event = json.dumps({"agent_id": agent, "instance": str(row[0]), "status": status})
        kf.produce("ms.agent.events", event.encode(), key=agent.encode())
