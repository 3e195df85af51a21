"""PostgreSQL users: reads through the read DSN, writes through the write DSN.

Request types (Locust name `postgres`): `pool_wait/read`, `pool_wait/write` (acquiring a
pooled connection) and `read/...`, `write/...` (time on the connection). Baselines match a
name or its prefix: `queries.read` covers every `read/...`.

One statement per request goes through `pg.query` (prepared once per pooled connection,
`$1`-style placeholders); see `datakit.load.postgres_client` for why.
"""

import json
import random

from locust import User, task

from datakit.load import listeners  # noqa: F401  (histograms, concurrency check)
from datakit.load import postgres_client as pg
from datakit.load.pacing import agent_ids, think

READ_STATE = pg.Statement(
    "SELECT state_version, state_data FROM ms_agents.agent_states "
    "WHERE agent_id = $1 ORDER BY state_version DESC LIMIT 1")
WRITE_MESSAGE = pg.Statement(
    "INSERT INTO ms_agents.agent_communications "
    "(source_agent_id, target_agent_id, message_type, message_data) VALUES ($1, $2, $3, $4)")
SELECT_ONE = pg.Statement("SELECT 1")


class PostgresUser(User):
    """Four reads of an agent's latest state to one message between two agents."""

    wait_time = think

    def on_start(self) -> None:
        self.agents = agent_ids()

    def on_stop(self) -> None:
        pg.release()

    @task(4)
    def read_state(self) -> None:
        agent = random.choice(self.agents)
        pg.query("read", "read/agent_state", READ_STATE, (agent,), fetch=True)

    @task(1)
    def write_message(self) -> None:
        src, dst = random.sample(self.agents, 2)
        body = json.dumps({"text": "ping", "n": random.randint(0, 1 << 30)})
        pg.query("write", "write/agent_message", WRITE_MESSAGE, (src, dst, "ping", body))


class PostgresSelectOneUser(User):
    """`SELECT 1` on the primary (the server pgbench measures): the benchmark's user."""

    wait_time = think

    def on_stop(self) -> None:
        pg.release()

    @task
    def select_one(self) -> None:
        pg.query("write", "read/select1", SELECT_ONE, fetch=True)
