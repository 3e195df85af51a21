"""`datakit status`: each node's live role and health, asked of the servers themselves.

Roles change under drills (a replica becomes the primary); the stack's outputs record the
initial roles only, so status never trusts them for who leads now.
"""

from __future__ import annotations

import socket
from typing import Any

import psycopg
import redis as redis_py

from datakit.stack.schema import Node, Secrets, StackOutputs


def _postgres(node: Node, secrets: Secrets) -> tuple[str, str]:
    try:
        with psycopg.connect(host=node.host, port=node.port, dbname="postgres",
                             user="postgres", password=secrets.postgres.superuser,
                             connect_timeout=2) as conn:
            standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        return ("replica" if standby else "primary"), "up"
    except psycopg.Error as exc:
        return "?", f"down: {str(exc).strip().splitlines()[0]}"


def _redis(node: Node, secrets: Secrets) -> tuple[str, str]:
    try:
        client = redis_py.Redis(host=node.host, port=node.port,
                                password=secrets.redis.default, socket_timeout=2)
        role = client.execute_command("ROLE")[0]
        role = role.decode() if isinstance(role, bytes) else role
        return ("replica" if role == "slave" else role), "up"
    except redis_py.RedisError as exc:
        return "?", f"down: {exc}"


def _sentinel(node: Node, secrets: Secrets) -> tuple[str, str]:
    try:
        client = redis_py.Redis(host=node.host, port=node.port,
                                password=secrets.redis.sentinel, socket_timeout=2)
        ok = client.execute_command("PING")
        return "sentinel", "up" if ok else "no answer"
    except redis_py.RedisError as exc:
        return "sentinel", f"down: {exc}"


def _kafka(node: Node, secrets: Secrets) -> tuple[str, str]:
    try:
        with socket.create_connection((node.host, node.port), timeout=2):
            return node.role, "up"
    except OSError as exc:
        return node.role, f"down: {exc}"


PROBES = {"postgres": _postgres, "redis": _redis, "sentinel": _sentinel, "kafka": _kafka}


def live(outputs: StackOutputs) -> list[dict[str, Any]]:
    rows = []
    secrets = outputs.need_secrets()
    for node in outputs.nodes:
        role, health = PROBES[node.service](node, secrets)
        rows.append({"service": node.service, "name": node.name, "address": node.address,
                     "role": role, "initial_role": node.role, "health": health})
    return rows
