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

    maxmemory: PositiveSize = Field(64 * 1024**2, description="Memory for data on each "
                                    "node (counts toward the stack's memory budget).")
    maxmemory_policy: EVICTION_POLICIES = Field("volatile-lru", description="What Redis "
                                                "evicts at maxmemory.")
    min_replicas_to_write: int = Field(1, ge=0, description="A master refuses writes with "
                                       "fewer replicas than this connected.")
    min_replicas_max_lag: int = Field(10, gt=0, description="Seconds within which a replica "
                                      "must have answered to count for min_replicas_to_write.")
    appendonly: bool = Field(True, description="Keep the append-only file (durability "
                             "across restarts).")
    appendfsync: Literal["always", "everysec", "no"] = Field(
        "everysec", description="How often the append-only file is synced to disk.")

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

    count: int = Field(3, gt=0, description="Sentinels: sentinel-1..sentinel-N.")
    quorum: int = Field(2, gt=0, description="Sentinels that must agree the master is down.")
    port_base: int = Field(64300, description="sentinel-N listens on port_base + N - 1.")
    # Not below 1.5 s. Sentinel reconnects to an instance at most once a second, and after
    # a failover its link to the new master waits out that period: at 1 s or less it can
    # judge the new master down and fail over again, to a replica that lags (measured:
    # acknowledged WAIT writes lost in 4 of 8 drills at 1000 ms, none in 10 at 1500).
    down_after_ms: Annotated[DurationMs, Field(ge=1500)] = Field(
        5000, description="How long a master is unanswering before it is judged down; at "
        "least 1500 ms (below, a second failover to a lagging replica can lose writes).")
    failover_timeout_ms: PositiveMs = Field(60_000, description="How long a failover may "
                                            "take before another is tried.")


class ClusterSettings(Spec):
    """Redis Cluster shape (Cluster mode only). Bus ports are explicit: port+10000 overflows."""

    masters: int = Field(3, gt=0, description="Masters, each holding a share of the hash "
                         "slots; at least 3.")
    replicas_per_master: int = Field(1, ge=0, description="Replicas of each master.")
    node_timeout_ms: PositiveMs = Field(5000, description="How long a node is unreachable "
                                        "before it is judged failing.")
    bus_port_base: int = Field(64400, description="redis-N's cluster bus on bus_port_base + "
                               "N - 1.")


class RedisSpec(Spec):
    """Redis: `nodes` counts master + replicas in Sentinel mode; Cluster mode uses `cluster`."""

    mode: Literal["sentinel", "cluster"] = Field(
        "sentinel", description="`sentinel`: a master, replicas and Sentinels; `cluster`: "
        "Redis Cluster, shaped by `cluster`.")
    nodes: int = Field(3, gt=0, description="Sentinel mode: the master redis-1 and nodes - 1 "
                       "replicas (Cluster mode uses `cluster`).")
    master_name: str = Field("datakit", pattern=r"^[A-Za-z0-9._-]+$",
                             description="The name the Sentinels know the master by.")
    port_base: int = Field(64200, description="redis-N listens on port_base + N - 1.")
    settings: RedisSettings = Field(RedisSettings(), description="Server settings.")
    sentinel: SentinelSettings = Field(SentinelSettings(), description="The Sentinels "
                                       "(Sentinel mode).")
    cluster: ClusterSettings = Field(ClusterSettings(), description="The cluster's shape "
                                     "(Cluster mode).")

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
