"""Patroni, from its REST API: exactly one leader, every member running (none `start
failed`), the timelines agreeing, at least the configured count of quorum standbys, and
each member's role in Patroni the one its server answers with."""

from __future__ import annotations

import pytest

from datakit.nodes import patroni_cluster
from datakit.stack.schema import Node
from datakit.verify import Mismatch

# The states of a member that serves: the leader runs, a replica streams.
SERVING = {"running", "streaming"}


def _members(nodes_of, outputs) -> list[dict]:
    return [outputs.reach(n, rest_port=n.rest_port) for n in nodes_of("postgres") if n.rest_port]


@pytest.fixture(scope="session")
def cluster_view(nodes_of, outputs):
    """Patroni's `/cluster`, asked anew at each call (a check retries until ready)."""
    members = _members(nodes_of, outputs)
    if not members:
        pytest.skip("the stack's outputs name no Patroni REST API")
    return lambda: patroni_cluster.cluster_view(members)


def test_patroni_one_leader(cluster_view, checker):
    def probe() -> list[str]:
        return sorted(m["name"] for m in cluster_view()["members"] if m["role"] == "leader")

    checker.expect("Patroni: exactly one leader", "postgres", "1 leader", probe,
                   ok=lambda found: len(found) == 1)


def test_patroni_member_running(pg_node: Node, cluster_view, checker):
    def probe() -> str:
        members = {m["name"]: m for m in cluster_view()["members"]}
        if pg_node.name not in members:
            raise Mismatch("not a member of the Patroni cluster")
        return members[pg_node.name]["state"]

    checker.expect("Patroni: member running", pg_node.name, "running or streaming", probe,
                   ok=lambda state: state in SERVING)


def test_patroni_timelines_agree(cluster_view, checker):
    def probe() -> str:
        # A stopped member has no timeline: `member running` reports it, on its own row.
        lines = {m["name"]: m.get("timeline") for m in cluster_view()["members"]
                 if m.get("state") in SERVING}
        found = set(lines.values())
        return f"timeline {found.pop()}" if len(found) == 1 else \
            ", ".join(f"{k} {v}" for k, v in sorted(lines.items()))

    checker.expect("Patroni: timelines agree", "postgres", "one timeline", probe,
                   ok=lambda found: found.startswith("timeline ") and "None" not in found)


def test_patroni_quorum_standbys(cluster_view, topology, checker):
    want = topology.postgres.synchronous_standbys

    def probe() -> list[str]:
        return patroni_cluster.quorum_standbys(cluster_view())

    checker.expect("Patroni: quorum standbys", "postgres", f">= {want}", probe,
                   ok=lambda found: len(found) >= want)


def test_patroni_agrees_with_the_server(pg_node: Node, cluster_view, pg_connect, checker):
    def probe() -> str:
        members = {m["name"]: m for m in cluster_view()["members"]}
        said = (members.get(pg_node.name) or {}).get("role", "nothing")
        with pg_connect(pg_node) as conn:
            standby = conn.execute("select pg_is_in_recovery()").fetchone()[0]
        server = "replica" if standby else "primary"
        patroni_says = "primary" if said == "leader" else "replica"
        return "agree" if server == patroni_says else \
            f"the server is a {server}, Patroni says {said}"

    checker.expect("Patroni and the server agree", pg_node.name, "agree", probe)
