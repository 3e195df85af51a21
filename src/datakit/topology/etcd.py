"""The etcd part of a topology: Patroni's store, a static cluster of members etcd-1..etcd-N.

Every member has a client port (Patroni and datakit talk to it) and a peer port (the raft
traffic between members). The cluster is formed once from the full member list
(`initial-cluster`); a member's identity is its name, and which one leads is asked of etcd.

>>> EtcdSpec().node_names
['etcd-1', 'etcd-2', 'etcd-3']
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from datakit.topology.problems import Problem, Spec
from datakit.topology.units import DurationMs

PositiveMs = Annotated[DurationMs, Field(gt=0)]

# etcd refuses to start outside these (server/embed/config.go, Validate): an election
# timeout under 5 heartbeats, or above 50 s.
ELECTION_HEARTBEATS = 5
MAX_ELECTION_MS = 50_000


class EtcdSpec(Spec):
    """etcd: `nodes` members (an odd count), their client and peer ports, raft timing."""

    nodes: int = Field(3, gt=0, description="Members etcd-1..etcd-N; an odd count.")
    port_base: int = Field(64700, description="etcd-N's client URL on port_base + N - 1.")
    peer_port_base: int = Field(64800, description="etcd-N's peer (raft) URL on "
                                "peer_port_base + N - 1.")
    # etcd's defaults. A member missing heartbeats for election_timeout_ms starts an
    # election; it must stay well under Patroni's retry_timeout (see checks.py).
    heartbeat_ms: PositiveMs = Field(100, description="How often the leader sends "
                                     "heartbeats.")
    election_timeout_ms: PositiveMs = Field(
        1000, description="How long a member goes without heartbeats before it starts an "
        "election; at least 5 heartbeats, well under Patroni's retry_timeout.")

    @property
    def node_names(self) -> list[str]:
        return [f"etcd-{i}" for i in range(1, self.nodes + 1)]

    def port(self, name: str) -> int:
        return self.port_base + self.node_names.index(name)

    def peer_port(self, name: str) -> int:
        return self.peer_port_base + self.node_names.index(name)

    def problems(self) -> list[Problem]:
        out = []
        if self.nodes % 2 == 0:
            out.append(Problem(
                "etcd.nodes",
                f"{self.nodes} members tolerate no more failures than {self.nodes - 1} "
                f"(a majority of {self.nodes} is {self.nodes // 2 + 1})",
                "an odd count: 1, 3, 5 or 7"))
        if self.election_timeout_ms < ELECTION_HEARTBEATS * self.heartbeat_ms:
            out.append(Problem(
                "etcd.election_timeout_ms",
                f"{self.election_timeout_ms} ms is under {ELECTION_HEARTBEATS} heartbeats "
                f"(heartbeat_ms {self.heartbeat_ms}), which etcd refuses",
                f">= {ELECTION_HEARTBEATS * self.heartbeat_ms} "
                f"({ELECTION_HEARTBEATS} x etcd.heartbeat_ms)"))
        if self.election_timeout_ms > MAX_ELECTION_MS:
            out.append(Problem(
                "etcd.election_timeout_ms",
                f"{self.election_timeout_ms} ms is above etcd's limit",
                f"<= {MAX_ELECTION_MS}"))
        return out
