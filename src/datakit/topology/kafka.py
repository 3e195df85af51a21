"""The Kafka part of a topology: KRaft nodes kafka-1..kafka-N (broker and controller in one
process, node.id = the index), cluster defaults and the topics to create and reconcile.

Unclean leader election is always off: it trades acknowledged writes for availability.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, model_validator

from datakit.topology.problems import Problem, Spec, key_path
from datakit.topology.units import DurationMs, Size, render_size

PositiveSize = Annotated[Size, Field(gt=0)]
RetentionMs = Annotated[DurationMs, Field(ge=-1)]
PropertyValue = str | int | float | bool

# Set by the substrate from the topology itself; an `extra` entry must not override them.
MANAGED_PROPERTIES = frozenset(
    {
        "node.id",
        "process.roles",
        "listeners",
        "advertised.listeners",
        "controller.quorum.voters",
        "controller.quorum.bootstrap.servers",
        "log.dirs",
        "listener.security.protocol.map",
        "inter.broker.listener.name",
        "controller.listener.names",
        "unclean.leader.election.enable",
    }
)


class TopicSpec(Spec):
    """A topic; fields left out take the cluster's defaults (filled in by KafkaSpec)."""

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$", description="The topic's name.")
    partitions: int = Field(gt=0, description="Its partitions (may grow, never shrink).")
    replication_factor: int | None = Field(None, gt=0, description="Copies of each "
                                           "partition; default kafka.default_replication_factor.")
    min_insync_replicas: int | None = Field(None, gt=0, description="Copies an acks=all "
                                            "write needs; default kafka.min_insync_replicas.")
    retention_ms: RetentionMs | None = Field(
        None, validation_alias=AliasChoices("retention_ms", "retention"),
        description="How long records are kept (also as `retention`: 7d); -1 keeps them "
        "forever; default kafka.retention_ms.")
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = Field(
        "delete", description="Delete old segments, compact to the last record per key, "
        "or both.")

    def configs(self) -> dict[str, str]:
        """Topic-level configs as Kafka names them (after defaults are filled in)."""
        return {
            "min.insync.replicas": str(self.min_insync_replicas),
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            "unclean.leader.election.enable": "false",
        }


class KafkaSpec(Spec):
    """Kafka in KRaft mode; `port_base` is the client listener, `controller_port_base` the
    controller listener; node i listens on base + i - 1."""

    version: str = Field("4.1.1", pattern=r"^\d+\.\d+\.\d+$",
                         description="The Kafka version (tools/build-kafka fetches it).")
    nodes: int = Field(3, gt=0, description="Nodes kafka-1..kafka-N, each a broker and a "
                       "controller (node.id N).")
    port_base: int = Field(64500, description="kafka-N's client listener on port_base + "
                           "N - 1.")
    controller_port_base: int = Field(64600, description="kafka-N's controller listener on "
                                      "controller_port_base + N - 1.")
    heap: PositiveSize = Field(512 * 1024**2, description="Each node's fixed JVM heap (-Xms "
                               "= -Xmx; counts toward the stack's memory budget).")
    default_replication_factor: int = Field(3, gt=0, description="Copies of each partition "
                                            "of a topic that sets none.")
    min_insync_replicas: int = Field(2, gt=0, description="Copies an acks=all write needs, "
                                     "for a topic that sets none.")
    num_partitions: int = Field(3, gt=0, description="Partitions of a topic created without "
                                "a count.")
    retention_ms: RetentionMs = Field(7 * 86_400_000, description="How long records are "
                                      "kept, for a topic that sets none; -1 is forever.")
    broker_session_timeout_ms: Annotated[DurationMs, Field(gt=0)] = Field(
        9000, description="How long the controllers wait for a silent broker before fencing "
        "it.")
    unclean_leader_election: Literal[False] = Field(
        False, description="Always false: an unclean election trades acknowledged writes "
        "for availability.")
    extra: dict[str, PropertyValue] = Field(
        {}, description="Any other broker property by its name, except those datakit sets "
        "from the topology (node.id, listeners, ...).")
    topics: list[TopicSpec] = Field([], description="Topics to create and keep as stated.")
    app_group_prefix: str = Field(
        "datakit-", pattern=r"^[A-Za-z0-9._-]{1,200}$", description="The app user may "
        "consume in the consumer groups whose ids start with this (its Read ACL).")

    @model_validator(mode="after")
    def _fill_topic_defaults(self) -> KafkaSpec:
        filled = [
            t.model_copy(
                update={
                    "replication_factor": t.replication_factor or self.default_replication_factor,
                    "min_insync_replicas": t.min_insync_replicas or self.min_insync_replicas,
                    "retention_ms": self.retention_ms if t.retention_ms is None else t.retention_ms,
                }
            )
            for t in self.topics
        ]
        object.__setattr__(self, "topics", filled)  # frozen: set once, while validating
        return self

    @property
    def node_names(self) -> list[str]:
        return [f"kafka-{i}" for i in range(1, self.nodes + 1)]

    def heap_opts(self) -> str:
        """KAFKA_HEAP_OPTS: a fixed heap, so memory use is what the budget says."""
        size = render_size(self.heap).replace("kB", "k").replace("B", "").lower()
        return f"-Xms{size} -Xmx{size}"

    def server_properties(self) -> dict[str, str]:
        """The cluster-wide broker settings the topology owns (not listeners or ids)."""
        props = {
            "default.replication.factor": str(self.default_replication_factor),
            "min.insync.replicas": str(self.min_insync_replicas),
            "num.partitions": str(self.num_partitions),
            "log.retention.ms": str(self.retention_ms),
            "broker.session.timeout.ms": str(self.broker_session_timeout_ms),
            "unclean.leader.election.enable": "false",
            "offsets.topic.replication.factor": str(min(3, self.nodes)),
            "transaction.state.log.replication.factor": str(min(3, self.nodes)),
            "transaction.state.log.min.isr": str(min(2, self.nodes)),
        }
        props.update(
            {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in self.extra.items()}
        )
        return props

    def problems(self) -> list[Problem]:
        out = []
        n = self.nodes
        rf, isr = self.default_replication_factor, self.min_insync_replicas
        if rf > n:
            out.append(
                Problem(
                    "kafka.default_replication_factor",
                    f"{rf} is more than the {n} brokers",
                    f"1..{n}",
                )
            )
        if isr > n:
            out.append(
                Problem(
                    "kafka.min_insync_replicas",
                    f"{isr} is more than the {n} brokers",
                    f"1..{min(n, rf)}",
                )
            )
        elif isr > rf:
            out.append(
                Problem(
                    "kafka.min_insync_replicas",
                    f"{isr} is more than the replication factor {rf}",
                    f"1..{min(n, rf)}",
                )
            )
        seen: set[str] = set()
        for i, t in enumerate(self.topics):
            where = f"topic {t.name}: "
            trf, tisr = t.replication_factor or rf, t.min_insync_replicas or isr
            if t.name in seen:
                out.append(
                    Problem(
                        key_path("kafka", "topics", i, "name"),
                        f"{where}defined twice",
                        "unique topic names",
                    )
                )
            seen.add(t.name)
            if trf > n:
                out.append(
                    Problem(
                        key_path("kafka", "topics", i, "replication_factor"),
                        f"{where}{trf} is more than the {n} brokers",
                        f"1..{n}",
                    )
                )
            if tisr > n:
                out.append(
                    Problem(
                        key_path("kafka", "topics", i, "min_insync_replicas"),
                        f"{where}{tisr} is more than the {n} brokers",
                        f"1..{min(n, trf)}",
                    )
                )
            elif tisr > trf:
                out.append(
                    Problem(
                        key_path("kafka", "topics", i, "min_insync_replicas"),
                        f"{where}{tisr} is more than its replication factor {trf}",
                        f"1..{min(n, trf)}",
                    )
                )
        for name in self.extra:
            if name in MANAGED_PROPERTIES:
                out.append(
                    Problem(
                        key_path("kafka", "extra", name),
                        "is set by datakit from the topology",
                        "any broker property except " + ", ".join(sorted(MANAGED_PROPERTIES)),
                    )
                )
        return out
