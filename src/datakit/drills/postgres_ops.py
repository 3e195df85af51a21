"""PostgreSQL reads shared by the drills, over SQL (superuser on each node's address).
Nodes and outputs are the typed model (stack/schema.py).

Roles are asked of the servers (`pg_is_in_recovery()`), never taken from the outputs.
Failover, promotion, re-pointing and rejoining are Patroni's (patroni_ops.py says what
the drills ask of it); nothing here changes a node.
"""

from __future__ import annotations

from typing import Protocol

import psycopg

from datakit.drills.waiting import wait
from datakit.errors import DatakitError
from datakit.nodes import postgres_client
from datakit.nodes.postgres_client import WrongPassword, in_recovery
from datakit.stack.schema import Node, StackOutputs


class Server(Protocol):
    """A PostgreSQL server to talk to: a node of the stack, or a drill's restored one."""

    name: str
    host: str
    port: int


def nodes(outputs: StackOutputs) -> list[Node]:
    return outputs.of("postgres")


def connect(node: Server, outputs: StackOutputs, *, timeout: float = 2.0,
            dbname: str = "postgres") -> psycopg.Connection:
    """The superuser's autocommit connection; its commits wait for the local flush only."""
    return postgres_client.connect(
        node, user=outputs.endpoints.postgres.superuser,
        password=outputs.need_secrets().postgres.superuser, dbname=dbname, timeout=timeout,
        tls_files=outputs.client_tls(), application_name="datakit-drill-admin",
        settings={"synchronous_commit": "local"})


def one(node: Server, outputs: StackOutputs, query: str, params=None):
    with connect(node, outputs) as conn:
        cur = conn.execute(query, params)
        row = cur.fetchone() if cur.description else None
        return row[0] if row else None


def roles(outputs: StackOutputs) -> tuple[Node, list[Node]]:
    """(the live primary, the other nodes) asked of the servers; exactly one primary."""
    primaries, others = [], []
    for node in nodes(outputs):
        try:
            with connect(node, outputs) as conn:
                standby = in_recovery(conn)
        except (psycopg.Error, WrongPassword):  # not answering: not the primary
            standby = None
        (others if standby in (True, None) else primaries).append(node)
    if len(primaries) != 1:
        raise DatakitError(f"expected one live PostgreSQL primary, found "
                           f"{[p.name for p in primaries]}: run `datakit status`")
    return primaries[0], others


def streaming(primary: Node, outputs: StackOutputs) -> dict[str, str]:
    with connect(primary, outputs) as conn:
        rows = conn.execute("select application_name, sync_state from pg_stat_replication "
                            "where state = 'streaming'").fetchall()
    return dict(rows)


def wait_redundant(primary: Node, outputs: StackOutputs, others: list[Node],
                   timeout: float = 60.0) -> dict[str, str]:
    """Until every other node streams from `primary` (full redundancy again)."""
    names = {o.name for o in others}

    def all_streaming():
        seen = streaming(primary, outputs)
        return seen if names <= set(seen) else None

    return wait(all_streaming, what=f"{sorted(names)} streaming from "
                f"{primary.name}", timeout=timeout)
