"""Talking to PostgreSQL nodes: connect with a password, find the live primary.

A node here is a dict with `port` (and optionally `host`, `name`) or the stack outputs'
Node (nodes/address.py); the primary found is the node given. Roles are never taken
from configuration: the server is asked (`pg_is_in_recovery()`), because after a failover
the node created as a replica is the primary.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg
from psycopg import sql

from datakit.errors import DatakitError
from datakit.nodes import tls
from datakit.nodes.address import NodeLike, address


class WrongPassword(DatakitError):
    """A node refused the password: the message names the node and the role."""


def label(node: NodeLike) -> str:
    at = address(node)
    return f"postgres node {at.name} ({at})" if at.name else f"postgres {at}"


def connect(node: NodeLike, *, user: str, password: str, dbname: str = "postgres",
            timeout: float = 3.0, tls_files: Mapping[str, str] | None = None,
            application_name: str = "datakit", settings: Mapping[str, str] | None = None
            ) -> psycopg.Connection:
    """An autocommit connection over TCP with SCRAM, over TLS when the node dict says so
    (nodes/tls.py) or `tls_files` are given; a refused password is WrongPassword.

    `settings` are session settings made at once (e.g. {"synchronous_commit": "local"})."""
    at = address(node)
    if tls_files is None:
        tls_files = tls.client_files(node)
    try:
        conn = psycopg.connect(
            host=at.host, port=at.port, user=user,
            password=password, dbname=dbname, connect_timeout=max(1, int(timeout)),
            autocommit=True, application_name=application_name, **tls.libpq(tls_files),
        )
    except psycopg.OperationalError as exc:
        if "password authentication failed" in str(exc):
            raise WrongPassword(
                f"{label(node)} refused the password of role {user!r}: check that "
                "password in the stack's secrets (`datakit outputs --show-secrets`)"
            ) from None
        raise
    try:
        for name, value in (settings or {}).items():
            conn.execute("select set_config(%s, %s, false)", [name, value])
    except BaseException:
        conn.close()
        raise
    return conn


def in_recovery(conn: psycopg.Connection) -> bool:
    """Whether the server is a standby (in recovery): its role asked of itself."""
    return bool(conn.execute("select pg_is_in_recovery()").fetchone()[0])


def is_primary(node: NodeLike, *, user: str, password: str, timeout: float = 2.0,
               tls_files: Mapping[str, str] | None = None) -> bool:
    with connect(node, user=user, password=password, timeout=timeout,
                 tls_files=tls_files) as conn:
        return not in_recovery(conn)


def live_primary(nodes: list[NodeLike], *, user: str, password: str,
                 timeout: float = 2.0, tls_files: Mapping[str, str] | None = None
                 ) -> NodeLike | None:
    """The one node that answers and is not in recovery; None when no node is primary.

    Nodes that do not answer are skipped; a refused password is raised. Two primaries at
    once (a split brain after a failover whose old primary came back) is an error.
    """
    primaries = []
    for node in nodes:
        try:
            if is_primary(node, user=user, password=password, timeout=timeout,
                          tls_files=tls_files):
                primaries.append(node)
        except WrongPassword:
            raise
        except psycopg.Error:
            continue
    if len(primaries) > 1:
        names = ", ".join(label(n) for n in primaries)
        raise DatakitError(f"more than one PostgreSQL primary is live ({names}): "
                           "stop or rejoin the stale one (pg_rewind) before going on")
    return primaries[0] if primaries else None


def scram_verifier(conn: psycopg.Connection, user: str, password: str) -> str:
    """The SCRAM verifier of `password`, computed by libpq: the password is never sent."""
    raw = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256")
    return raw.decode()


def ensure_role(conn: psycopg.Connection, user: str, password: str, *,
                attributes: str = "LOGIN") -> None:
    """Create `user` with `attributes`, or bring an existing one's password up to date."""
    verifier = sql.Literal(scram_verifier(conn, user, password))
    exists = conn.execute("select 1 from pg_roles where rolname = %s", [user]).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(sql.SQL("{} ROLE {} WITH {} PASSWORD {}").format(
        sql.SQL(verb), sql.Identifier(user), sql.SQL(attributes), verifier))


def ensure_database(conn: psycopg.Connection, name: str, owner: str) -> None:
    if not conn.execute("select 1 from pg_database where datname = %s", [name]).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(owner)))


def replication_state(conn: psycopg.Connection, application_name: str) -> str | None:
    """The state of the WAL sender serving `application_name` (e.g. 'streaming')."""
    row = conn.execute("select state from pg_stat_replication where application_name = %s",
                       [application_name]).fetchone()
    return row[0] if row else None
