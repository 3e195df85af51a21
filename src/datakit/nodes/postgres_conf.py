"""PostgreSQL files of a local node: binaries, the settings file, pg_hba.conf, .pgpass.

A node's directory holds `pgdata/` (the cluster), `postgres.log` and `pgpass` (0600, read
by pg_basebackup and by a replica's WAL receiver, so no password is ever in argv or a log).
datakit's settings live in `pgdata/datakit.conf`, included last from postgresql.conf, so a
change is one file rewrite plus a reload; `ALTER SYSTEM` (postgresql.auto.conf, used by
drills to re-point a replica) still wins over it, as PostgreSQL documents.
"""

from __future__ import annotations

import re
from pathlib import Path

from datakit.errors import DatakitError

PG_ROOT = Path("/usr/lib/postgresql")
CONF_NAME = "datakit.conf"
INCLUDE_LINE = f"include '{CONF_NAME}'\n"

# Settings a node always has; the stack's settings come on top of these.
DEFAULTS: dict[str, object] = {
    "password_encryption": "scram-sha-256",
    "wal_level": "replica",
    "hot_standby": "on",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_keep_size": "64MB",
    "logging_collector": "off",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "log_statement": "none",
    "recovery_init_sync_method": "syncfs",
}
# Set by datakit from the node itself: never from the stack's settings.
RESERVED = {"port", "listen_addresses", "unix_socket_directories", "cluster_name",
            "data_directory", "hba_file", "ident_file", "config_file", "primary_conninfo",
            "primary_slot_name"}
_NAME = re.compile(r"^[a-z][a-z0-9_.]*$")


def bin_dir(version: int | str | None = None) -> Path:
    """The bin dir of PostgreSQL `version`, or of the newest major installed."""
    found = {}
    for candidate in PG_ROOT.glob("*/bin/postgres"):
        if candidate.parent.parent.name.isdigit():
            found[int(candidate.parent.parent.name)] = candidate.parent
    if version is not None:
        if int(version) not in found:
            have = ", ".join(map(str, sorted(found))) or "none"
            raise DatakitError(f"PostgreSQL {version} is not installed (installed: {have}); "
                               "install it or change postgres.version in the stack config")
        return found[int(version)]
    if not found:
        raise DatakitError("PostgreSQL is not installed: run tools/bootstrap "
                           "(apt-get install -y $(grep -v '^#' tools/apt-packages))")
    return found[max(found)]


def slot_name(node: str) -> str:
    """A replication slot name for node `node` (lower case letters, digits, underscores)."""
    return re.sub(r"[^a-z0-9_]", "_", node.lower())[:63]


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    return "'" + str(value).replace("'", "''") + "'"


def check_settings(settings: dict, node: str) -> None:
    for name in settings:
        if not _NAME.match(name):
            raise DatakitError(f"postgres node {node}: setting {name!r} is not a valid "
                               "PostgreSQL parameter name")
        if name in RESERVED:
            raise DatakitError(f"postgres node {node}: setting {name!r} is set by datakit "
                               "from the node; remove it from postgres.settings")


def render_conf(*, name: str, port: int, socket_dir: str, settings: dict) -> str:
    """The text of datakit.conf: the node's own values, then defaults and settings."""
    check_settings(settings, name)
    merged = {**DEFAULTS, **settings}
    lines = [
        "# Written by datakit; edits are overwritten. ALTER SYSTEM still takes precedence.",
        "listen_addresses = '127.0.0.1'",
        f"port = {int(port)}",
        f"unix_socket_directories = {_value(socket_dir)}",
        # The WAL receiver's fallback application_name: synchronous_standby_names match it.
        f"cluster_name = {_value(name)}",
    ]
    lines += [f"{key} = {_value(val)}" for key, val in merged.items()]
    return "\n".join(lines) + "\n"


def render_hba(*, superuser: str, replication_user: str) -> str:
    """Peer for the superuser on the socket, SCRAM everywhere else, no trust at all."""
    return "\n".join([
        "# Written by datakit: SCRAM on TCP, no trust anywhere.",
        "# TYPE  DATABASE     USER      ADDRESS        METHOD",
        f"local   all          {superuser}  peer",
        "local   all          all       scram-sha-256",
        f"local   replication  {replication_user}  scram-sha-256",
        "host    all          all       127.0.0.1/32   scram-sha-256",
        f"host    replication  {replication_user}  127.0.0.1/32   scram-sha-256",
    ]) + "\n"


def pgpass_line(user: str, password: str) -> str:
    """A .pgpass entry for `user` on any loopback node (a replica may follow another one)."""
    esc = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"127.0.0.1:*:*:{user}:{esc}\n"
