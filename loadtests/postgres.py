"""PostgreSQL users: reads through the read DSN, writes through the write DSN.

Request types (Locust name `postgres`): `pool_wait/read`, `pool_wait/write` (acquiring a
pooled connection) and `read/...`, `write/...` (time on the connection). Baselines match a
name or its prefix: `queries.read` covers every `read/...`.
"""

import json
import random

from locust import User, task

from datakit.load import listeners  # noqa: F401  (histograms, concurrency check)
from datakit.load import postgres_client as pg
from datakit.load.pacing import agent_ids, think

READ_STATE = ("SELECT state_version, state_data FROM ms_agents.agent_states "
              "WHERE agent_id = %s ORDER BY state_version DESC LIMIT 1")
WRITE_MESSAGE = ("INSERT INTO ms_agents.agent_communications "
                 "(source_agent_id, target_agent_id, message_type, message_data) "
                 "VALUES (%s, %s, %s, %s)")


class PostgresUser(User):
    """Four reads of an agent's latest state to one message between two agents."""

    wait_time = think

    def on_start(self) -> None:
        self.agents = agent_ids()

    @task(4)
    def read_state(self) -> None:
        agent = random.choice(self.agents)
        pg.run("read", "read/agent_state", lambda c: c.execute(READ_STATE, (agent,)).fetchone())

    @task(1)
    def write_message(self) -> None:
        src, dst = random.sample(self.agents, 2)
        body = json.dumps({"text": "ping", "n": random.randint(0, 1 << 30)})
        pg.run("write", "write/agent_message",
               lambda c: c.execute(WRITE_MESSAGE, (src, dst, "ping", body)))


class PostgresSelectOneUser(User):
    """`SELECT 1` on the primary (the server pgbench measures): the benchmark's user."""

    wait_time = think

    @task
    def select_one(self) -> None:
        pg.run("write", "read/select1", lambda c: c.execute("SELECT 1").fetchone())
