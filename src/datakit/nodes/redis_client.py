"""Clients of Redis nodes and Sentinels, free of process control: one connection that does
not retry, one command with a refused password named, the server's own ROLE and INFO, and
which node is master now (asked of the servers, never of the stack's records).
"""

from __future__ import annotations

import redis as redis_py
from redis.backoff import NoBackoff
from redis.retry import Retry

from datakit.errors import DatakitError
from datakit.nodes import tls
from datakit.nodes.address import NodeLike, address


class WrongPassword(DatakitError):
    """A node refused the password: the message names the node."""


def label(node: NodeLike, kind: str = "node") -> str:
    at = address(node)
    return f"redis {kind}{f' {at.name}' if at.name else ''} ({at})"


def client(node: NodeLike, password: str | None, *, timeout: float = 2.0) -> redis_py.Redis:
    """A client that does not retry: redis-py's default retries a refused password (an
    AuthenticationError is a ConnectionError) with back-off, seconds per failure. `node`:
    a dict with port (host, name) or the stack outputs' Node (nodes/address.py)."""
    at = address(node)
    files = tls.client_files(node)
    return redis_py.Redis(host=at.host, port=at.port,
                          password=password, socket_timeout=timeout,
                          socket_connect_timeout=timeout, decode_responses=True,
                          retry=Retry(NoBackoff(), 0), **tls.redis(files))


def call(node: NodeLike, password: str | None, *args, kind: str = "node", timeout: float = 2.0):
    """One command; a refused password becomes WrongPassword naming the node."""
    conn = client(node, password, timeout=timeout)
    try:
        return conn.execute_command(*args)
    except redis_py.AuthenticationError:
        raise WrongPassword(f"{label(node, kind)} refused the password: check it in the "
                            "stack's secrets (`datakit outputs --show-secrets`)") from None
    finally:
        conn.close()


def role(node: NodeLike, password: str) -> list:
    """The server's own ROLE answer: ['master', offset, replicas] or ['slave', host, ...]."""
    return call(node, password, "ROLE")


def live_master(nodes: list[NodeLike], *, password: str) -> NodeLike | None:
    """The node that is master now, asked of the servers; None when none answers as one.

    Nodes that do not answer are skipped. A master that came back after a failover has no
    replicas while the real one has: the one with replicas wins; two masters that both
    have replicas (or neither, among several) is an error to sort out first.
    """
    masters = []
    for node in nodes:
        try:
            answer = role(node, password)
        except WrongPassword:
            raise
        except redis_py.RedisError:
            continue
        if answer[0] == "master":
            masters.append((len(answer[2]), node))
    if not masters:
        return None
    masters.sort(key=lambda m: -m[0])
    if len(masters) > 1 and masters[0][0] == masters[1][0]:
        names = ", ".join(label(n) for _, n in masters)
        raise DatakitError(f"more than one Redis master is live ({names}): make the stale "
                           "one a replica (REPLICAOF) before going on")
    return masters[0][1]


def info(node: NodeLike, password: str, section: str) -> dict:
    return call(node, password, "INFO", section)
