"""`datakit status`: each node's live role and health, asked of the servers themselves, and
beside each PostgreSQL node what Patroni says of it, with any disagreement flagged.

Roles change under drills and failovers (a replica becomes the primary); the stack's
outputs record the initial roles only, so status never trusts them for who leads now.
Patroni's view (`GET /cluster`: leader, sync/quorum standbys, lag, timeline) comes from
etcd, so it can lag a fault or be wrong after one; the server's own answer
(`pg_is_in_recovery()`, its timeline) is the other witness. etcd members answer for
themselves: healthy or not, and the leader they name.
"""

from __future__ import annotations

import socket
from typing import Any

import psycopg
import redis as redis_py

from datakit.errors import DatakitError
from datakit.nodes import etcd, patroni_cluster, tls
from datakit.nodes.postgres_client import WrongPassword, connect, in_recovery
from datakit.stack.schema import Node, Secrets, StackOutputs

# What Patroni's role means for what the server should say of itself.
PATRONI_PRIMARY = {"leader", "standby_leader"}


def _connect(node: Node, secrets: Secrets, client: dict | None) -> psycopg.Connection:
    return connect(node, user="postgres", password=secrets.postgres.superuser, timeout=2,
                   tls_files=client)


def _postgres(node: Node, secrets: Secrets, client: dict | None) -> tuple[str, str]:
    try:
        with _connect(node, secrets, client) as conn:
            standby = in_recovery(conn)
        return ("replica" if standby else "primary"), "up"
    except (psycopg.Error, WrongPassword) as exc:
        return "?", f"down: {str(exc).strip().splitlines()[0]}"


def _timeline(node: Node, secrets: Secrets, client: dict | None) -> int | None:
    try:
        with _connect(node, secrets, client) as conn:
            # A primary writes on its timeline (its WAL file names start with it); a
            # standby is on the one its WAL receiver streams (the checkpoint's is stale).
            found = conn.execute(
                "SELECT CASE WHEN pg_is_in_recovery() "
                "THEN (SELECT received_tli FROM pg_stat_wal_receiver) "
                "ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int "
                "END").fetchone()[0]
            return None if found is None else int(found)
    except (psycopg.Error, WrongPassword):
        return None


def _redis(node: Node, secrets: Secrets, client: dict | None) -> tuple[str, str]:
    try:
        client = redis_py.Redis(host=node.host, port=node.port,
                                password=secrets.redis.default, socket_timeout=2,
                                **tls.redis(tls.client_files(node)))
        role = client.execute_command("ROLE")[0]
        role = role.decode() if isinstance(role, bytes) else role
        return ("replica" if role == "slave" else role), "up"
    except redis_py.RedisError as exc:
        return "?", f"down: {exc}"


def _sentinel(node: Node, secrets: Secrets, client: dict | None) -> tuple[str, str]:
    try:
        client = redis_py.Redis(host=node.host, port=node.port,
                                password=secrets.redis.sentinel, socket_timeout=2,
                                **tls.redis(tls.client_files(node)))
        ok = client.execute_command("PING")
        return "sentinel", "up" if ok else "no answer"
    except redis_py.RedisError as exc:
        return "sentinel", f"down: {exc}"


def _kafka(node: Node, secrets: Secrets, client: dict | None) -> tuple[str, str]:
    try:
        with socket.create_connection((node.host, node.port), timeout=2):
            return node.role, "up"
    except OSError as exc:
        return node.role, f"down: {exc}"


def _etcd(node: Node, secrets: Secrets, client: dict | None) -> tuple[str, str]:
    h = etcd.member_health({"name": node.name, "host": node.host, "port": node.port,
                            **({"client_tls": client} if client else {})})
    if h["error"]:
        return "?", f"down: {h['error']}"
    role = "leader" if h["leader_id"] and h["leader_id"] == h["member_id"] else "follower"
    return role, "up" if h["healthy"] else f"unhealthy: {h['reason'] or 'no leader'}"


def _metrics_page(node: Node, path: str) -> tuple[int | None, str]:
    from datakit.nodes.metrics.daemon import get

    try:
        status, body = get(f"http://{node.host}:{node.port}{path}", timeout=2.0)
        return status, body.decode(errors="replace")
    except OSError as exc:
        return None, str(getattr(exc, "reason", exc))


def _exporter(node: Node, secrets: Secrets, _client=None) -> tuple[str, str]:
    status, text = _metrics_page(node, "/metrics")
    if status != 200:
        return "exporter", f"down: {text if status is None else f'HTTP {status}'}"
    from datakit.nodes.metrics.exporters import sample

    # A server's exporter says whether it reaches its server; process-exporter has none.
    reaches = [v for m in ("pg_up", "redis_up") if (v := sample(text, m)) is not None]
    return "exporter", "up" if reaches in ([], [1.0]) else "up, its server does not answer"


def _prometheus(node: Node, secrets: Secrets, _client=None) -> tuple[str, str]:
    status, text = _metrics_page(node, "/-/ready")
    if status is None:
        return "server", f"down: {text}"
    return "server", "up" if status == 200 else f"not ready: HTTP {status}"


PROBES = {"postgres": _postgres, "redis": _redis, "sentinel": _sentinel, "kafka": _kafka,
          "etcd": _etcd, "exporter": _exporter, "prometheus": _prometheus}


def _rest(node: Node, outputs: StackOutputs) -> dict:
    return outputs.reach(node, rest_port=node.rest_port)


def patroni_view(outputs: StackOutputs) -> dict[str, Any]:
    """Patroni's `/cluster` as {leader, quorum_standbys, members: {name: member}, error}."""
    nodes = [n for n in outputs.of("postgres") if n.rest_url]
    if not nodes:
        return {"leader": None, "quorum_standbys": [], "members": {}, "error": None}
    try:
        view = patroni_cluster.cluster_view([_rest(n, outputs) for n in nodes])
    except DatakitError as exc:
        return {"leader": None, "quorum_standbys": [], "members": {}, "error": str(exc)}
    return {"leader": patroni_cluster.leader_of(view),
            "quorum_standbys": patroni_cluster.quorum_standbys(view),
            "members": {m["name"]: m for m in view.get("members") or []}, "error": None}


def _patroni_says(member: dict | None) -> str:
    if member is None:
        return "not a member"
    said = f"{member.get('role')} {member.get('state')} tl {member.get('timeline')}"
    if member.get("lag") not in (None, 0, "unknown"):
        said += f" lag {member['lag']}"
    return said


def _disagreement(role: str, member: dict | None, timeline: int | None,
                  leader_timeline: int | None) -> str | None:
    """Where the server and Patroni disagree, or None."""
    if member is None:
        return "Patroni does not list it"
    if role in ("primary", "replica"):
        patroni_primary = member.get("role") in PATRONI_PRIMARY
        if patroni_primary != (role == "primary"):
            return f"the server says {role}, Patroni says {member.get('role')}"
    if timeline is not None and member.get("timeline") not in (None, timeline):
        return f"timeline {timeline} on the server, {member.get('timeline')} in Patroni"
    if leader_timeline is not None and timeline is not None and timeline != leader_timeline:
        return f"timeline {timeline}, the leader's is {leader_timeline}"
    return None


def live(outputs: StackOutputs) -> list[dict[str, Any]]:
    """One row per node: its role and health as it answers, the initial role, and for a
    PostgreSQL node Patroni's view of it (`patroni`) and any disagreement (`disagrees`)."""
    secrets, client = outputs.need_secrets(), outputs.client_tls()
    view = patroni_view(outputs) if outputs.of("postgres") else None
    leader = (view or {}).get("members", {}).get((view or {}).get("leader") or "")
    rows = []
    for node in outputs.nodes:
        role, health = PROBES[node.service](node, secrets, client)
        row = {"service": node.service, "name": node.name, "address": node.address,
               "role": role, "initial_role": node.role, "health": health}
        if node.service == "postgres" and view is not None:
            member = view["members"].get(node.name)
            timeline = _timeline(node, secrets, client) if health == "up" else None
            row["patroni"] = view["error"] or _patroni_says(member)
            row["timeline"] = timeline
            row["disagrees"] = None if view["error"] or health != "up" else _disagreement(
                role, member, timeline, leader.get("timeline") if leader else None)
        rows.append(row)
    return rows


def clusters(outputs: StackOutputs) -> dict[str, Any]:
    """The clusters that heal themselves, whole: Patroni's leader, quorum standbys and
    timeline; etcd's leader and members' health. `problems`: one line per thing wrong."""
    out: dict[str, Any] = {"problems": []}
    if outputs.of("postgres"):
        view = patroni_view(outputs)
        leader = view["members"].get(view["leader"] or "")
        out["patroni"] = {"cluster": outputs.endpoints.postgres.cluster,
                          "leader": view["leader"], "quorum_standbys": view["quorum_standbys"],
                          "timeline": leader.get("timeline") if leader else None,
                          "error": view["error"]}
        if view["error"]:
            out["problems"].append(f"Patroni: {view['error']}")
        elif view["leader"] is None:
            out["problems"].append("Patroni names no single leader")
    members = [outputs.reach(n) for n in outputs.of("etcd")]
    if members:
        health = etcd.cluster_health(members)
        out["etcd"] = {"leader": health["leader"], "healthy": health["healthy"],
                       "members": {m["name"]: "healthy" if m["healthy"] else
                                   (m["error"] or m["reason"] or "unhealthy")
                                   for m in health["members"]}}
        out["problems"] += [f"etcd: {p}" for p in health["problems"]]
    return out
