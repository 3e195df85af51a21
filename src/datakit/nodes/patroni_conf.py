"""patroni.yml for one PostgreSQL member, and the check that Patroni would take it as written.

The server settings from the stack config go into `bootstrap.dcs` (Patroni's cluster-wide
configuration in etcd): those Patroni passes on the postmaster's command line
(max_connections, wal_level, ...) are ignored anywhere else, and the stack means them for
every node alike. Only node-local values (socket dir, WAL archive) are local. Patroni reads
`bootstrap.dcs` once, when it initialises the cluster; a later change goes through its REST
API (`PATCH /config`).

Secrets: the file holds the superuser, replication and REST passwords, so it is written
0600 for the node's account; the application role's password goes to `bootstrap.json`
(0600), read by `patroni_bootstrap` when Patroni runs it after initdb. Nothing secret is on
a command line. A member whose props carry no passwords (a container, which gets them as
Patroni's PATRONI_*_PASSWORD environment) has none in the file either.

Addresses: `host` is the address the member is reached at (connect_address; default
loopback), `listen_host` the one it binds (default `host`; a container binds 0.0.0.0), and
`client_networks` where TCP clients may come from (default `host`/32), all SCRAM. Patroni
itself talks to its own PostgreSQL over the Unix socket as the postgres OS user (peer), so a
rotated superuser password never locks Patroni out of its own server.

TLS (props `tls`, written by nodes/tls.py into `<data_dir>/tls/`): PostgreSQL takes TCP
clients over TLS only (`hostssl`, the socket excepted), replicas and pg_rewind dial their
leader with `sslmode=verify-full`; the REST API serves https and wants a certificate of the
stack's CA from every caller (Patroni's own calls to its members present the node's); etcd
is dialled over https with the node's certificate.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from patroni.file_perm import pg_perm
from patroni.postgresql.config import ConfigHandler
from patroni.validator import populate_validate_params, schema

from datakit.errors import DatakitError
from datakit.nodes import tls
from datakit.nodes.archive import archive_command
from datakit.nodes.postgres_conf import RESERVED, bin_dir
from datakit.topology.patroni import NAMESPACE, TIMEOUT_FLOORS

# Importing Patroni sets this process's umask to 077 (patroni/file_perm.py, for the files
# it makes under PGDATA): datakit's own directories would then be closed to the service
# users that must enter them. Put it back.
os.umask(pg_perm.orig_umask)

HOST = "127.0.0.1"
# Patroni sets these itself (the sync quorum, replication, the member's own addresses).
PATRONI_MANAGED = RESERVED | {"synchronous_standby_names", "hot_standby", "restore_command",
                              "recovery_target_timeline"}
# Replication slots that are not Patroni's: the restore drills' streaming archives.
FOREIGN_SLOTS = ("datakit_drill_archive", "datakit_drill_stack_archive")
# A patroni.yml path -> the stack config key it comes from, for error lines.
STACK_KEYS = {
    "bootstrap.dcs.synchronous_node_count": "postgres.synchronous_standbys",
    "bootstrap.dcs.postgresql.parameters": "postgres.settings",
    "bootstrap.dcs": "postgres.patroni",
    "restapi.listen": "postgres.patroni.rest_port_base",
    "postgresql.listen": "postgres.port_base",
    "postgresql.bin_dir": "postgres.version",
}
# What Patroni's validator says of a setup that Patroni itself runs with, or that datakit
# checks itself with a clearer line: connect_address on loopback (refused by --validate-config
# although Patroni works with it), etcd reachability (etcd.require_reachable).
_NOT_PROBLEMS = re.compile(r"^(restapi|postgresql)\.connect_address |^etcd3\.hosts")
_REFUSAL = re.compile(r"^(\S+) (.*) didn't pass validation: (.*)$")


def paths(props: dict) -> dict[str, Path]:
    root = Path(props["data_dir"])
    return {"root": root, "config": root / "patroni.yml", "pgdata": root / "pgdata",
            "log": root / "patroni.log", "pgpass": root / "pgpass",
            "bootstrap": root / "bootstrap.json"}


def host(props: dict) -> str:
    """The address the member is reached at (its connect_address)."""
    return props.get("host") or HOST


def _own_tls(props: dict) -> dict[str, str] | None:
    return tls.files(props["data_dir"]) if props.get("tls") else None


def _with_password(props: dict, username: str, password: str | None) -> dict:
    out = {"username": username, **({"password": password} if password else {})}
    if own := _own_tls(props):  # how a replica, a clone or pg_rewind dials the leader
        out.update(sslmode="verify-full", sslrootcert=own["ca"])
    return out


def superuser(props: dict) -> dict:
    return _with_password(props, props.get("superuser") or "postgres",
                          props.get("superuser_password"))


def replication_user(props: dict) -> dict:
    return _with_password(props, props.get("replication_user") or "replicator",
                          props.get("replication_password"))


def etcd_nodes(props: dict) -> list[dict]:
    """The store's members as this node's client reaches them: with its own certificate."""
    own = _own_tls(props)
    return [{**n, **({"client_tls": own} if own else {})} for n in props["etcd"]]


def _etcd_hosts(props: dict) -> list[str]:
    return [f"{n.get('host') or HOST}:{int(n['port'])}" for n in props["etcd"]]


def _etcd3(props: dict) -> dict:
    own = _own_tls(props)
    if not own:
        return {"hosts": _etcd_hosts(props), "protocol": "http"}
    return {"hosts": _etcd_hosts(props), "protocol": "https", "cacert": own["ca"],
            "cert": own["cert"], "key": own["key"]}


def dynamic_config(props: dict) -> dict:
    """Patroni's cluster-wide configuration (bootstrap.dcs, later `PATCH /config`): its
    timeouts, the quorum, and every server setting. From props' patroni, settings and
    synchronous_standbys only, so the cluster's group resource computes the same."""
    p = props.get("patroni") or {}
    sync = int(props.get("synchronous_standbys") or 0)
    settings = props.get("settings") or {}
    for name in settings:
        if name in PATRONI_MANAGED:
            raise DatakitError(f"patroni node {props.get('name') or 'cluster'}: setting "
                               f"{name!r} is set by Patroni or datakit; remove it from "
                               "postgres.settings")
    # Pulumi's wire may turn integers into floats: Patroni wants integers.
    timeouts = ("ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover",
                "primary_start_timeout", "member_slots_ttl")
    dcs: dict = {key: int(p[key]) for key in timeouts if key in p}
    if "failsafe_mode" in p:
        dcs["failsafe_mode"] = bool(p["failsafe_mode"])
    if sync > 0:
        dcs.update(synchronous_mode="quorum", synchronous_node_count=sync,
                   synchronous_mode_strict=bool(p.get("synchronous_mode_strict", False)))
    else:
        dcs["synchronous_mode"] = False
    # Patroni drops every physical slot it does not manage, unless told to leave it.
    dcs["ignore_slots"] = [{"name": slot, "type": "physical"} for slot in FOREIGN_SLOTS]
    dcs["postgresql"] = {"use_pg_rewind": True, "use_slots": True,
                         "parameters": {"password_encryption": "scram-sha-256", **settings}}
    return dcs


def _pg_hba(props: dict) -> list[str]:
    """Peer for the superuser on the socket, SCRAM everywhere else, no trust at all; with
    TLS, TCP only over it (`hostssl`): a plaintext client matches no line and is refused."""
    su, repl = superuser(props)["username"], replication_user(props)["username"]
    networks = props.get("client_networks") or [f"{host(props)}/32"]
    tcp = "hostssl" if props.get("tls") else "host"
    return [f"local all {su} peer", "local all all scram-sha-256",
            *[f"{tcp} all all {net} scram-sha-256" for net in networks],
            *[f"{tcp} replication {repl} {net} scram-sha-256" for net in networks]]


def _ssl_parameters(props: dict) -> dict:
    own = _own_tls(props)
    if not own:
        return {}
    # PostgreSQL re-reads these files on reload: a reissued certificate needs no restart.
    return {"ssl": "on", "ssl_cert_file": own["cert"], "ssl_key_file": own["key"],
            "ssl_ca_file": own["ca"], "ssl_min_protocol_version": "TLSv1.2"}


def _local_parameters(props: dict) -> dict:
    params: dict = {"unix_socket_directories": str(paths(props)["root"]),
                    **_ssl_parameters(props)}
    if props.get("archive_dir"):
        params.update(archive_mode="on", archive_command=archive_command(props["archive_dir"]))
    return params


def render(props: dict) -> dict:
    """patroni.yml of one member, as a dict."""
    node = paths(props)
    at, bind = host(props), props.get("listen_host") or host(props)
    rest, rest_bind = f"{at}:{int(props['rest_port'])}", f"{bind}:{int(props['rest_port'])}"
    pg, pg_bind = f"{at}:{int(props['port'])}", f"{bind}:{int(props['port'])}"
    no_sync = [] if props.get("sync_bootstrap") else ["no-sync"]
    config: dict = {
        "scope": props["scope"],
        "namespace": props.get("namespace") or NAMESPACE,
        "name": props["name"],
        "log": {"level": "INFO", "deduplicate_heartbeat_logs": True},
        "restapi": {"listen": rest_bind, "connect_address": rest},
        "etcd3": _etcd3(props),
        "bootstrap": {
            "dcs": dynamic_config(props),
            # No trust, not even before Patroni writes pg_hba (it sets the superuser's
            # password through initdb's --pwfile).
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, {"auth-local": "peer"},
                       {"auth-host": "scram-sha-256"}, *no_sync],
        },
        "postgresql": {
            "listen": pg_bind, "connect_address": pg, "use_unix_socket": True,
            "data_dir": str(node["pgdata"]),
            "bin_dir": props.get("bin_dir") or str(bin_dir(props.get("version"))),
            "pgpass": str(node["pgpass"]),
            "authentication": {"superuser": superuser(props),
                               "replication": replication_user(props)},
            "parameters": _local_parameters(props),
            "pg_hba": _pg_hba(props),
            "create_replica_methods": ["basebackup"],
            # A replica's clone: an immediate checkpoint on the leader, no final fsync
            # (a killed process cannot lose the files, only an OS crash in the first seconds).
            "basebackup": [{"checkpoint": "fast"}, *no_sync],
            "pg_ctl_timeout": 60,
        },
        "watchdog": {"mode": "off"},
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False,
                 "nosync": False},
    }
    if props.get("app_user"):
        python = Path(sys.executable).parent / "python"
        config["bootstrap"]["post_bootstrap"] = (
            f"{python} -m datakit.nodes.patroni_bootstrap {node['bootstrap']}")
    if props.get("rest_password"):
        config["restapi"]["authentication"] = rest_auth(props)
    if own := _own_tls(props):
        # Patroni reloads the REST certificate when its serial changes (on SIGHUP).
        config["restapi"].update(certfile=own["cert"], keyfile=own["key"], cafile=own["ca"],
                                 verify_client="required")
        config["ctl"] = {"certfile": own["cert"], "keyfile": own["key"], "cacert": own["ca"]}
    return config


def rest_auth(props: dict) -> dict:
    return {"username": props.get("rest_user") or "patroni", "password": props["rest_password"]}


def problems(config: dict) -> list[str]:
    """What Patroni 4.1 would refuse in `config`, or quietly replace by its default: its own
    schema (validator.py) and the minimums of the settings it passes on the command line
    (postgresql/config.py, CMDLINE_OPTIONS). One line each, naming the stack config key."""
    populate_validate_params(ignore_listen_port=True)  # ports are checked when starting
    out = []
    for error in schema(config):
        if _NOT_PROBLEMS.search(error):
            continue
        match = _REFUSAL.match(error)
        if not match:
            out.append(f"Patroni refuses {error}")
            continue
        where, value, why = match.groups()
        floor = TIMEOUT_FLOORS.get(where.removeprefix("bootstrap.dcs."))
        allowed = f"; allowed: >= {floor}" if floor is not None and where.startswith(
            "bootstrap.dcs.") else ""
        out.append(f"Patroni refuses {_stack_key(where)} = {value} (patroni.yml {where}: "
                   f"{why}){allowed}")
    parameters = config["bootstrap"]["dcs"]["postgresql"]["parameters"]
    for name, (default, check, _since) in ConfigHandler.CMDLINE_OPTIONS.items():
        if name in parameters and not check(parameters[name]):
            out.append(f"Patroni refuses postgres.settings {name} = {parameters[name]!r} "
                       f"and would run with {default!r} instead")
    return out


def _stack_key(patroni_path: str) -> str:
    for prefix, key in STACK_KEYS.items():  # most specific first
        if patroni_path == prefix or patroni_path.startswith(prefix + "."):
            return key + patroni_path[len(prefix):]
    return f"patroni.yml {patroni_path}"
