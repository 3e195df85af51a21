"""The Redis part of a topology: Sentinel mode (a master, replicas, Sentinels) or Cluster mode.

Sentinel mode: nodes redis-1..redis-N (redis-1 the initial master) and sentinel-1..sentinel-S.
Cluster mode: `cluster.masters` × (1 + `cluster.replicas_per_master`) nodes redis-1..redis-N,
the first `masters` of them the initial masters.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from datakit.topology.problems import Problem, Spec
from datakit.topology.units import DurationMs, Size

PositiveSize = Annotated[Size, Field(gt=0)]
PositiveMs = Annotated[DurationMs, Field(gt=0)]

EVICTION_POLICIES = Literal[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
]


class RedisSettings(Spec):
    """Server settings of every Redis node; `directives()` renders them for redis.conf."""

    maxmemory: PositiveSize = 64 * 1024**2
    maxmemory_policy: EVICTION_POLICIES = "volatile-lru"
    min_replicas_to_write: int = Field(1, ge=0)
    min_replicas_max_lag: int = Field(10, gt=0, description="seconds")
    appendonly: bool = True
    appendfsync: Literal["always", "everysec", "no"] = "everysec"

    def directives(self) -> dict[str, str]:
        """redis.conf names and values: `maxmemory-policy volatile-lru`, `appendonly yes`."""
        out = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            text = ("yes" if value else "no") if isinstance(value, bool) else str(value)
            out[name.replace("_", "-")] = text
        return out


class SentinelSettings(Spec):
    """Sentinels watching the master (Sentinel mode only)."""

    count: int = Field(3, gt=0)
    quorum: int = Field(2, gt=0)
    port_base: int = 64300
    # Not below 1.5 s. Sentinel reconnects to an instance at most once a second, and after
    # a failover its link to the new master waits out that period: at 1 s or less it can
    # judge the new master down and fail over again, to a replica that lags (measured:
    # acknowledged WAIT writes lost in 4 of 8 drills at 1000 ms, none in 10 at 1500).
    down_after_ms: Annotated[DurationMs, Field(ge=1500)] = 5000
    failover_timeout_ms: PositiveMs = 60_000


class ClusterSettings(Spec):
    """Redis Cluster shape (Cluster mode only). Bus ports are explicit: port+10000 overflows."""

    masters: int = Field(3, gt=0)
    replicas_per_master: int = Field(1, ge=0)
    node_timeout_ms: PositiveMs = 5000
    bus_port_base: int = 64400


class RedisSpec(Spec):
    """Redis: `nodes` counts master + replicas in Sentinel mode; Cluster mode uses `cluster`."""

    mode: Literal["sentinel", "cluster"] = "sentinel"
    nodes: int = Field(3, gt=0)
    master_name: str = Field("datakit", pattern=r"^[A-Za-z0-9._-]+$")
    port_base: int = 64200
    settings: RedisSettings = RedisSettings()
    sentinel: SentinelSettings = SentinelSettings()
    cluster: ClusterSettings = ClusterSettings()

    @property
    def data_nodes(self) -> int:
        """Redis servers (not Sentinels) in the current mode."""
        if self.mode == "cluster":
            return self.cluster.masters * (1 + self.cluster.replicas_per_master)
        return self.nodes

    @property
    def replicas_per_master(self) -> int:
        if self.mode == "cluster":
            return self.cluster.replicas_per_master
        return self.nodes - 1

    @property
    def node_names(self) -> list[str]:
        return [f"redis-{i}" for i in range(1, self.data_nodes + 1)]

    @property
    def sentinel_names(self) -> list[str]:
        if self.mode != "sentinel":
            return []
        return [f"sentinel-{i}" for i in range(1, self.sentinel.count + 1)]

    def problems(self) -> list[Problem]:
        out = []
        if self.mode == "sentinel" and self.sentinel.quorum > self.sentinel.count:
            out.append(
                Problem(
                    "redis.sentinel.quorum",
                    f"quorum {self.sentinel.quorum} is larger than the "
                    f"{self.sentinel.count} Sentinels",
                    f"1..{self.sentinel.count} (a majority: {self.sentinel.count // 2 + 1})",
                )
            )
        if self.mode == "cluster" and self.cluster.masters < 3:
            out.append(
                Problem(
                    "redis.cluster.masters",
                    f"{self.cluster.masters} masters; Redis Cluster needs at least 3",
                    ">= 3",
                )
            )
        to_write = self.settings.min_replicas_to_write
        if to_write > self.replicas_per_master:
            where = (
                "redis.cluster.replicas_per_master" if self.mode == "cluster" else "redis.nodes - 1"
            )
            out.append(
                Problem(
                    "redis.settings.min_replicas_to_write",
                    f"{to_write} but a master has only {self.replicas_per_master} replicas, "
                    "so every write would be refused",
                    f"0..{self.replicas_per_master} ({where})",
                )
            )
        return out
