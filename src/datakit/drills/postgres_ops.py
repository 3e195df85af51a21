"""PostgreSQL acts shared by the failover, switchover and restore drills, all over SQL
(superuser on each node's address) except what node control does on the host. Nodes and
outputs are the typed model (stack/schema.py).

Roles are asked of the servers (`pg_is_in_recovery()`), never taken from the outputs.
A node is rejoined as a standby with its own replication slot on the new primary; the
new primary's `synchronous_standby_names` must list the others (datakit's node config
already names them on every node: "each node names the others, as if it led").
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from typing import Protocol

import psycopg

from datakit.drills.waiting import wait
from datakit.errors import DatakitError
from datakit.nodes.control import control_for
from datakit.nodes.postgres_conf import slot_name
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
    conn = psycopg.connect(host=node.host, port=node.port, dbname=dbname,
                           user=outputs.endpoints.postgres.superuser,
                           password=outputs.need_secrets().postgres.superuser,
                           connect_timeout=max(1, int(timeout)), autocommit=True,
                           application_name="datakit-drill-admin")
    conn.execute("set synchronous_commit = local")
    return conn


def one(node: Server, outputs: StackOutputs, query: str, params=None):
    with connect(node, outputs) as conn:
        cur = conn.execute(query, params)
        row = cur.fetchone() if cur.description else None
        return row[0] if row else None


def lsn(text: str | None) -> int:
    if not text:
        return -1
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def roles(outputs: StackOutputs) -> tuple[Node, list[Node]]:
    """(the live primary, the other nodes) asked of the servers; exactly one primary."""
    primaries, others = [], []
    for node in nodes(outputs):
        try:
            standby = one(node, outputs, "select pg_is_in_recovery()")
        except psycopg.Error:
            standby = None
        (others if standby in (True, None) else primaries).append(node)
    if len(primaries) != 1:
        raise DatakitError(f"expected one live PostgreSQL primary, found "
                           f"{[p.name for p in primaries]}: run `datakit status`")
    return primaries[0], others


def received_lsn(node: Node, outputs: StackOutputs) -> int:
    return lsn(one(node, outputs, "select coalesce(pg_last_wal_receive_lsn(), "
                                  "pg_last_wal_replay_lsn())::text"))


def promote(node: Node, outputs: StackOutputs) -> None:
    if not one(node, outputs, "select pg_promote(true, 30)"):
        raise DatakitError(f"pg_promote on {node.name} did not finish in 30 s")


def ensure_slot(primary: Node, outputs: StackOutputs, name: str) -> str:
    slot = slot_name(name)
    with connect(primary, outputs) as conn:
        if not conn.execute("select 1 from pg_replication_slots where slot_name = %s",
                            [slot]).fetchone():
            conn.execute("select pg_create_physical_replication_slot(%s, true)", [slot])
    return slot


def ensure_quorum(primary: Node, outputs: StackOutputs, others: list[Node]) -> str:
    """The new primary's synchronous_standby_names must name every other node; if not
    (e.g. a stale ALTER SYSTEM), set `ANY 1 (others)` and reload. Returns the value."""
    value = one(primary, outputs, "show synchronous_standby_names") or ""
    if value and all(o.name in value for o in others):
        return value
    names = ", ".join(f'"{o.name}"' for o in others)
    with connect(primary, outputs) as conn:
        conn.execute(f"alter system set synchronous_standby_names = 'ANY 1 ({names})'")
        conn.execute("select pg_reload_conf()")
    return f"ANY 1 ({names})"


def repoint(replica: Node, primary: Node, outputs: StackOutputs) -> None:
    """A running standby follows `primary` (on its new timeline): primary_conninfo and
    its slot by ALTER SYSTEM, then a reload (PostgreSQL 13+ restarts the WAL receiver)."""
    slot = ensure_slot(primary, outputs, replica.name)
    with connect(replica, outputs) as conn:
        info = conn.execute("show primary_conninfo").fetchone()[0]
        info = re.sub(r"\bhost=\S+", f"host={primary.host}", info)
        info = re.sub(r"\bport=\S+", f"port={primary.port}", info)
        conn.execute(psycopg.sql.SQL("alter system set primary_conninfo = {}").format(
            psycopg.sql.Literal(info)))
        conn.execute(psycopg.sql.SQL("alter system set primary_slot_name = {}").format(
            psycopg.sql.Literal(slot)))
        conn.execute("select pg_reload_conf()")


def rejoin(old: Node, primary: Node, outputs: StackOutputs) -> str:
    """The stopped or killed former primary comes back as a standby of `primary`."""
    ctl = control_for(old, outputs)
    ctl.stop()
    slot = ensure_slot(primary, outputs, old.name)
    # pg_rewind reads the source's timeline from its control file, which a promotion
    # updates only at its next checkpoint: without one it sees no fork, "no rewind
    # required", and the old primary cannot follow (its WAL is past the fork point).
    one(primary, outputs, "checkpoint")
    conninfo = (f"user={outputs.endpoints.postgres.replication_user}"
                f" passfile='{ctl.pgpass_path}' host={primary.host} port={primary.port}"
                f" application_name='{old.name}'")
    said = ctl.rewind_as_standby(primary, conninfo=conninfo, slot=slot)
    ctl.start()
    return said


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


def set_async(outputs: StackOutputs, on: bool) -> None:
    """The non-durable mode of the checker's own test: no synchronous standbys on any
    node (ALTER SYSTEM, so a promoted node keeps it), or back to the node config."""
    for node in nodes(outputs):
        with connect(node, outputs) as conn:
            if on:
                conn.execute("alter system set synchronous_standby_names = ''")
            else:
                conn.execute("alter system reset synchronous_standby_names")
            conn.execute("select pg_reload_conf()")


@contextlib.contextmanager
def cut_walsenders(primary: Node, standbys: list[Node], outputs: StackOutputs,
                   gap_s: float = 0.3) -> Iterator[None]:
    """The non-durable mode's fault before the kill: the standbys are frozen (SIGSTOP),
    the primary's WAL senders are ended and it commits alone for `gap_s`; the caller kills
    it inside this context, and the standbys go on afterwards. What committed in the gap
    is on the killed primary only, as after a network blip: on loopback a standby is
    otherwise current within microseconds and reconnects at once."""
    frozen = [control_for(n, outputs) for n in standbys]
    for ctl in frozen:
        ctl.pause()
    try:
        with connect(primary, outputs) as conn:
            conn.execute("select pg_terminate_backend(pid) from pg_stat_replication")
        time.sleep(gap_s)
        yield
    finally:
        for ctl in frozen:
            ctl.resume()
