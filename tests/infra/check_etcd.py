"""etcd, Patroni's store, from its own API: every member healthy (it has a leader and no
alarm) and in the member list, and all of them naming one leader."""

from __future__ import annotations

import pytest

from datakit.nodes import etcd
from datakit.stack.schema import Node
from datakit.verify import Mismatch


def test_etcd_member_healthy(etcd_node: Node, outputs, checker):
    def probe() -> str:
        h = etcd.member_health(outputs.reach(etcd_node))
        if h["error"]:
            raise Mismatch(h["error"])
        return "healthy" if h["healthy"] else f"unhealthy: {h['reason'] or 'no leader'}"

    checker.expect("etcd: member healthy", etcd_node.name, "healthy", probe)


def test_etcd_one_leader(nodes_of, outputs, checker):
    members = [outputs.reach(n) for n in nodes_of("etcd")]
    if not members:
        pytest.skip("the stack has no etcd members")

    def probe() -> str:
        state = etcd.cluster_health(members)
        if state["problems"]:
            return "; ".join(state["problems"])
        return f"leader {state['leader']}"

    checker.expect("etcd: one leader", "etcd", "one leader named by every member", probe,
                   ok=lambda found: found.startswith("leader ") and found != "leader None")
