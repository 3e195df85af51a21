"""Redis users (file not named redis.py: Locust imports a locustfile under its own name,
which would shadow the redis package), through Sentinel discovery (or Cluster seeds).

Request types (Locust name `redis`): `cache/get`, `cache/set` (TTL 60 s), `session/create`
(TTL 30 min), `session/get` (GETEX: reading a session extends its TTL).
"""

import json
import random
import uuid

from locust import User, task

from datakit.load import listeners  # noqa: F401
from datakit.load import redis_client as rd
from datakit.load.pacing import think
from datakit.load.settings import current

CACHE_TTL_S = 60
SESSION_TTL_S = 1800


class RedisUser(User):
    wait_time = think

    def on_start(self) -> None:
        self.prefix = f"load:{current().run_id}"
        self.sessions: list[str] = []
        self.redis = rd.Link()

    def on_stop(self) -> None:
        self.redis.close()

    def _cache_key(self) -> str:
        return f"{self.prefix}:cache:{random.randint(0, 999)}"

    @task(6)
    def cache_get(self) -> None:
        self.redis.command("cache/get", "GET", self._cache_key())

    @task(2)
    def cache_set(self) -> None:
        value = json.dumps({"v": random.random()})
        self.redis.command("cache/set", "SET", self._cache_key(), value, "EX", CACHE_TTL_S)

    @task(1)
    def session_create(self) -> None:
        sid = f"{self.prefix}:session:{uuid.uuid4().hex}"
        body = json.dumps({"user": random.randint(1, 10_000), "roles": ["agent"]})
        if self.redis.command("session/create", "SET", sid, body, "EX", SESSION_TTL_S):
            self.sessions = (self.sessions + [sid])[-50:]

    @task(3)
    def session_get(self) -> None:
        if self.sessions:
            sid = random.choice(self.sessions)
            self.redis.command("session/get", "GETEX", sid, "EX", SESSION_TTL_S)


class RedisGetUser(User):
    """GET of one key: the benchmark's datakit user (redis-benchmark's GET test)."""

    wait_time = think

    def on_start(self) -> None:
        self.key = f"load:{current().run_id}:bench"
        self.redis = rd.Link()
        self.redis.command("cache/set", "SET", self.key, "x" * 3, "EX", CACHE_TTL_S)

    def on_stop(self) -> None:
        self.redis.close()

    @task
    def get(self) -> None:
        self.redis.command("cache/get", "GET", self.key)
