"""Whom a partition cuts off, and from whom: shared by the partition drills and by
`datakit load --fault`. Each asks the stack who leads now (Patroni, Sentinel, the Kafka
controllers), never the outputs' initial roles."""

from __future__ import annotations

from dataclasses import dataclass

from datakit.drills import kafka_ops as ko
from datakit.drills import patroni_ops as pat
from datakit.drills import redis_ops as ro
from datakit.nodes import own_address
from datakit.stack.schema import Node, StackOutputs


@dataclass(frozen=True)
class Cut:
    """`node` cut off from `peers` (their addresses), both ways; clients still reach it."""

    node: Node
    peers: list[str]
    what: str  # e.g. "leader pg-1"

    def describe(self) -> str:
        return (f"cutting {self.what} ({self.node.host}) from {', '.join(self.peers)}, "
                f"both ways; clients still reach it")


def primary(outputs: StackOutputs) -> Cut:
    """Patroni's leader, from the other members and etcd."""
    name = pat.leader(outputs)
    nodes = outputs.of("postgres")
    leader = next(n for n in nodes if n.name == name)
    peers = [n.host for n in (*nodes, *outputs.of("etcd")) if n.name != name]
    return Cut(leader, peers, f"PostgreSQL leader {name}")


def master(outputs: StackOutputs) -> Cut:
    """Sentinel's master, from its replicas and every Sentinel."""
    node = ro.master_node(outputs)
    peers = [n.host for n in (*ro.data_nodes(outputs), *outputs.of("sentinel"))
             if n.name != node.name]
    return Cut(node, peers, f"Redis master {node.name}")


def leader(outputs: StackOutputs, topic: str = ko.TOPIC, partition: int = 0) -> Cut:
    """The broker leading `topic`/`partition`, from every other broker and controller."""
    name = ko.leaders(outputs, topic=topic)[partition]
    node = next(n for n in ko.brokers(outputs) if n.name == name)
    peers = [n.host for n in ko.brokers(outputs) if n.name != node.name]
    return Cut(node, peers, f"Kafka broker {node.name}, leader of {topic}/{partition}")


def applies(outputs: StackOutputs, services: tuple[str, ...]) -> str | None:
    """Why a partition between `services`' nodes cannot be aimed on this stack, or None."""
    nodes = [n for s in services for n in outputs.of(s)]
    if any(n.handle.kind != "local" for n in nodes):
        return "network faults need the local substrate (its nodes on loopback addresses)"
    if why := own_address.available():
        return f"a network fault cannot be aimed here: {why}"
    hosts = [n.host for n in nodes]
    if len(set(hosts)) < len(hosts):
        return ("the stack's nodes share an address (made before local.address_base): run "
                "`datakit down` and `datakit up`")
    return None
