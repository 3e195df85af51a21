"""Redis and Sentinel config files of a local node (they hold passwords: mode 0600).

A data node's `redis.conf` is written once, when the node is made; from then on Redis owns
it (`CONFIG REWRITE`, and Sentinel re-pointing a replica after a failover), so datakit
changes settings with CONFIG SET + CONFIG REWRITE rather than by rewriting the file, and
never undoes a failover. A Sentinel's `sentinel.conf` is likewise rewritten by Sentinel.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from datakit.errors import DatakitError
from datakit.nodes.address import LOOPBACK
from datakit.nodes.process import RunAs

# What every data node has unless the stack's settings say otherwise.
DEFAULTS: dict[str, object] = {
    "appendonly": "no",
    "save": "3600 1 300 100 60 10000",
    # Full syncs start at once instead of waiting 5 s for more replicas to join.
    "repl-diskless-sync": "yes",
    "repl-diskless-sync-delay": 0,
    "maxmemory-policy": "noeviction",
}
SENTINEL_DEFAULTS: dict[str, object] = {
    "down-after-milliseconds": 5000,
    "failover-timeout": 60000,
    "parallel-syncs": 1,
}
# Set by datakit from the node itself, never from the stack's settings.
RESERVED = {"port", "bind", "dir", "requirepass", "masterauth", "masteruser", "replicaof",
            "slaveof", "pidfile", "logfile", "daemonize", "supervised", "include",
            "cluster-enabled", "cluster-config-file", "cluster-announce-ip",
            "replica-announce-ip", "protected-mode", "aclfile", "rename-command"}
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def server_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if not found:
        raise DatakitError("redis-server is not installed: run tools/bootstrap "
                           "(apt-get install -y $(grep -v '^#' tools/apt-packages))")
    return found


def quote(value: object) -> str:
    """A value as redis.conf reads it: yes/no, numbers bare, strings double-quoted."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_.:/+-]+", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_value(value: object) -> str:
    """A value as CONFIG SET takes it (no quoting: it is one argument)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    return str(value)


def check_settings(settings: dict, node: str) -> None:
    for name in settings:
        if not _NAME.match(name):
            raise DatakitError(f"redis node {node}: setting {name!r} is not a Redis "
                               "configuration name")
        if name in RESERVED:
            raise DatakitError(f"redis node {node}: setting {name!r} is set by datakit "
                               "from the node; remove it from redis.settings")


def _listen(port: int, tls: dict | None) -> list[str]:
    """The client port: plaintext, or TLS only (plaintext port 0) with the node's files.
    Clients authenticate with the password; the certificate proves the server to them."""
    if not tls:
        return [f"port {int(port)}"]
    return ["port 0", f"tls-port {int(port)}", f"tls-cert-file {quote(tls['cert'])}",
            f"tls-key-file {quote(tls['key'])}", f"tls-ca-cert-file {quote(tls['ca'])}",
            "tls-auth-clients no", "tls-replication yes"]


def render_server(*, name: str, port: int, node_dir: Path, password: str, settings: dict,
                  replicaof: dict | None = None, cluster: dict | None = None,
                  tls: dict | None = None, host: str = LOOPBACK) -> str:
    check_settings(settings, name)
    lines = [
        "# Written by datakit when the node was made; Redis rewrites it (CONFIG REWRITE).",
        # Its replication and cluster links also leave from the first bound address.
        f"bind {host}",
        "protected-mode yes",
        *_listen(port, tls),
        "daemonize no",
        'logfile ""',
        f"dir {quote(str(node_dir))}",
        f"pidfile {quote(str(node_dir / 'redis.pid'))}",
        f"requirepass {quote(password)}",
        f"masterauth {quote(password)}",
        f"replica-announce-ip {host}",
    ]
    if cluster is not None:
        lines += [
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-node-timeout {int(cluster.get('node_timeout', 5000))}",
            f"cluster-port {bus_port(name, port, cluster)}",
            f"cluster-announce-ip {host}",
            *(["tls-cluster yes"] if tls else []),
        ]
    lines += [f"{key} {quote(val)}" for key, val in {**DEFAULTS, **settings}.items()]
    if replicaof:
        lines.append(f"replicaof {replicaof.get('host') or LOOPBACK} {int(replicaof['port'])}")
    return "\n".join(lines) + "\n"


def bus_port(name: str, port: int, cluster: dict) -> int:
    """A cluster node's bus port: `cluster.bus_port`, else Redis's port + 10000 (which
    does not exist above 55535, where datakit's loopback ports live)."""
    bus = int(cluster.get("bus_port") or int(port) + 10000)
    if bus > 65535:
        raise DatakitError(f"redis node {name}: port {port} leaves no cluster bus port "
                           "(port + 10000 > 65535): set its cluster bus_port")
    return bus


def render_sentinel(*, name: str, port: int, node_dir: Path, password: str, master_name: str,
                    master: dict, master_password: str, quorum: int, settings: dict,
                    tls: dict | None = None, host: str = LOOPBACK) -> str:
    check_settings(settings, name)
    unknown = set(settings) - set(SENTINEL_DEFAULTS)
    if unknown:
        raise DatakitError(f"redis sentinel {name}: unknown sentinel setting(s) "
                           f"{', '.join(sorted(unknown))}; allowed: "
                           f"{', '.join(SENTINEL_DEFAULTS)}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", master_name):
        raise DatakitError(f"redis sentinel {name}: master name {master_name!r} may use "
                           "only letters, digits, '.', '_' and '-'")
    lines = [
        "# Written by datakit when the Sentinel was made; Sentinel rewrites it.",
        f"bind {host}",
        # tls-replication: Sentinel dials masters, replicas and its peers over TLS too.
        *_listen(port, tls),
        "daemonize no",
        'logfile ""',
        f"dir {quote(str(node_dir))}",
        f"pidfile {quote(str(node_dir / 'sentinel.pid'))}",
        f"requirepass {quote(password)}",
        "sentinel resolve-hostnames no",
        f"sentinel announce-ip {host}",
        f"sentinel announce-port {int(port)}",
        f"sentinel sentinel-pass {quote(password)}",
        f"sentinel monitor {master_name} {master.get('host') or LOOPBACK} "
        f"{int(master['port'])} {int(quorum)}",
        f"sentinel auth-pass {master_name} {quote(master_password)}",
    ]
    lines += [f"sentinel {key} {master_name} {quote(val)}"
              for key, val in {**SENTINEL_DEFAULTS, **settings}.items()]
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str, account: RunAs) -> None:
    """Write `path` readable by its service account only (it holds passwords)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chown(tmp, account.uid, account.gid)
    os.replace(tmp, path)
