"""What a Locust process of a datakit run needs: endpoints, secrets, pool, pacing, files.

`datakit load` writes one JSON file and points `$DATAKIT_LOAD_CONFIG` at it; every Locust
process (master and workers) reads it. Run by hand (`locust -f loadtests/mixed.py`), the
locustfiles fall back to the stack named by `$DATAKIT_STACK` (default `local`).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

from datakit.stack.schema import (
    KafkaEndpoints,
    PostgresEndpoints,
    RedisEndpoints,
    Secrets,
    StackOutputs,
)

ENV = "DATAKIT_LOAD_CONFIG"


@dataclass
class LoadSettings:
    stack: str
    outputs: StackOutputs  # with the app password in the DSNs
    pool: dict[str, float] = field(default_factory=lambda: {
        "min_size": 5, "max_size": 25, "acquire_timeout_s": 30.0})
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    think_ms: tuple[float, float] = (5.0, 20.0)
    window_s: int = 1
    warmup_s: float = 0.0  # first seconds left out of the judged figures (see recorder)
    result_path: str | None = None
    progress_path: str | None = None
    check_concurrency: bool = True
    queue_fail_ratio: float = 0.2
    queue_max_retries: int = 2

    def dump(self, path: str) -> None:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["outputs"] = self.outputs.model_dump(mode="json")
        with open(path, "w") as out:
            json.dump(data, out)

    @property
    def postgres(self) -> PostgresEndpoints:
        return self.outputs.endpoints.postgres

    @property
    def redis(self) -> RedisEndpoints:
        return self.outputs.endpoints.redis

    @property
    def kafka(self) -> KafkaEndpoints:
        return self.outputs.endpoints.kafka

    @property
    def secrets(self) -> Secrets:
        return self.outputs.need_secrets()


def for_stack(stack: str, outputs: StackOutputs | None = None,
              **overrides: Any) -> LoadSettings:
    """Settings from a stack's outputs (with passwords) and its topology's pool."""
    from datakit import topology
    from datakit.stack import outputs as stack_outputs

    outputs = outputs or stack_outputs.read(stack)
    pool = topology.load(stack).postgres.pool
    return LoadSettings(stack=stack, outputs=outputs, pool={
        "min_size": pool.min_size, "max_size": pool.max_size,
        "acquire_timeout_s": pool.acquire_timeout_s}, **overrides)


@lru_cache(maxsize=1)
def current() -> LoadSettings:
    if path := os.environ.get(ENV):
        with open(path) as src:
            raw = json.load(src)
        raw["think_ms"] = tuple(raw["think_ms"])
        raw["outputs"] = StackOutputs.model_validate(raw["outputs"])
        return LoadSettings(**raw)
    return for_stack(os.environ.get("DATAKIT_STACK", "local"))
