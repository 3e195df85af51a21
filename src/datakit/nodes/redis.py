"""Redis data nodes as native daemons on loopback: master, replicas, settings, teardown.

Plain functions for the local substrate's dynamic resources, as for PostgreSQL: `props` in,
`outs` out, `create_*` returning only when the node serves (a replica: its link to the
master is up and the master lists it). Identity is not role: a node is its name, port and
directory; which node is master is asked of the servers (`live_master`), so a replica made
after a Sentinel failover follows the new master, and nothing re-points a node because the
stack once called it a replica.

props keys: name, port, data_dir (the node's own dir: removed on delete), password (the
data password: requirepass and masterauth), settings (redis.conf directives: maxmemory,
maxmemory-policy, min-replicas-to-write, min-replicas-max-lag, appendonly, ...), replica
(bool: made as a replica of the live master among `peers`), peers ([{name, port, host?}]),
cluster ({node_timeout, bus_port} for a Redis Cluster node; see redis_cluster.py), tls
({ca, cert, key} PEM: the node then listens on TLS only, replicates and gossips over it;
see nodes/tls.py). A client's node dict may carry client_tls (file paths).
outs keys: name, host, port, pid, start_time, data_dir, conf_path, log_path; after an
update also `applied` = {set: [...], restarted: [...], removed_but_kept: [...]}.
The same stop/start/kill/delete/alive serve Sentinels (redis_sentinel.py); the clients
and role detection are in redis_client.py.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
from pathlib import Path

import redis as redis_py

from datakit.errors import DatakitError
from datakit.nodes import process, tls
from datakit.nodes.process import RunAs
from datakit.nodes.readiness import wait_until
from datakit.nodes.redis_client import WrongPassword, call, info, label, live_master, role
from datakit.nodes.redis_conf import (
    DEFAULTS,
    bus_port,
    config_value,
    quote,
    render_server,
    server_binary,
    write_private,
)

HOST = "127.0.0.1"
REPLACE_KEYS = frozenset({"name", "host", "port", "data_dir", "cluster"})
START_TIMEOUT = 30.0
# (config file, log file, pid file, extra argv) per kind of daemon.
KINDS = {
    "server": ("redis.conf", "redis.log", "redis.pid", []),
    "sentinel": ("sentinel.conf", "sentinel.log", "sentinel.pid", ["--sentinel"]),
}


def _account() -> RunAs:
    return RunAs.service("redis")


def _node(props: dict) -> dict:
    """The node as a client reaches it: with its own files when it has TLS."""
    own = tls.client_files(props)
    return {"name": props["name"], "host": host_of(props), "port": int(props["port"]),
            **({"client_tls": own} if own else {})}


def host_of(props: dict) -> str:
    """Where the node listens: its own loopback address, else 127.0.0.1."""
    return props.get("host") or HOST


def _kind(props: dict) -> str:
    return "sentinel" if props.get("sentinel") else "server"


def paths(props: dict, kind: str | None = None) -> tuple[Path, Path, Path, Path]:
    """(node dir, config file, log file, pid file) of a node."""
    conf, log, pid, _ = KINDS[kind or _kind(props)]
    node_dir = Path(props["data_dir"])
    return node_dir, node_dir / conf, node_dir / log, node_dir / pid


# --------------------------------------------------------------------------- processes


def _running(props: dict) -> tuple[int, int] | None:
    """(pid, start time) of the daemon serving this node's dir now, from its pid file."""
    node_dir, _, _, pidfile = paths(props)
    try:
        pid = int(pidfile.read_text().strip())
        # Redis chdirs into its `dir`: a recycled pid would not be there.
        if Path(f"/proc/{pid}/cwd").resolve() != node_dir.resolve():
            return None
    except (OSError, ValueError):
        return None
    started = process.start_time(pid)
    return (pid, started) if started is not None else None


def wait(probe, props: dict, pid: int, started: int | None, *, what: str,
         timeout: float = START_TIMEOUT):
    """wait_until, ended at once by the daemon dying or by a refused password."""
    # Probes are cheap (one local command): poll at least every 0.1 s.
    return wait_until(probe, what=what, timeout=timeout, max_interval=0.1,
                      fatal=(WrongPassword,),
                      alive=lambda: process.exit_reason(pid, started, paths(props)[2]))


def outs_of(props: dict, pid: int, started: int | None) -> dict:
    node_dir, conf, log, _ = paths(props)
    return {"name": props["name"], "host": host_of(props), "port": int(props["port"]), "pid": pid,
            "start_time": started, "data_dir": str(node_dir), "conf_path": str(conf),
            "log_path": str(log)}


def launch(props: dict) -> dict:
    """Start the daemon of an existing config (if not already running) and wait until it
    answers PING with its password. Returns outs."""
    kind = _kind(props)
    node_dir, conf, log, _ = paths(props)
    running = _running(props)
    if running:
        pid, started = running
    else:
        process.require_free(int(props["port"]), label(_node(props), _kind_word(props)),
                             host_of(props))
        # umask 077: files Redis and Sentinel rewrite themselves (CONFIG REWRITE, the
        # Sentinel state) hold passwords too, and Redis creates them 0644 & ~umask.
        argv = ["/bin/sh", "-c", 'umask 077 && exec "$0" "$@"', server_binary(), str(conf),
                *KINDS[kind][3]]
        if props.get("replicaof"):  # a former master rejoining: never a master on start
            argv += ["--replicaof", props["replicaof"]["host"], str(props["replicaof"]["port"])]
        pid = _account().spawn(argv, log=log, cwd=str(node_dir), address=props.get("host"))
        started = process.start_time(pid)
    node = _node(props)

    def answers() -> bool:
        if kind == "sentinel":
            return call(node, props["password"], "PING", kind="sentinel") in (True, "PONG")
        return info(node, props["password"], "persistence").get("loading") == 0

    wait(answers, props, pid, started, what=f"{label(node, _kind_word(props))} answering")
    return outs_of(props, pid, started)


def _kind_word(props: dict) -> str:
    return "sentinel" if props.get("sentinel") else "node"


def _undo(props: dict) -> None:
    """After a failed create: stop what started, remove all but the log the error names."""
    with contextlib.suppress(Exception):  # the original error is the one to report
        stop(props, None)
    node_dir, _, log, _ = paths(props)
    for entry in node_dir.glob("*"):
        if entry != log:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


# --------------------------------------------------------------------------- data nodes


def create_server(props: dict) -> dict:
    """A master, or (props.replica) a replica of the live master among `peers`; a Redis
    Cluster node when props.cluster is set. Ready when it answers with its password and,
    for a replica, its link is up and the master lists it. Idempotent."""
    account = _account()
    node = _node(props)
    node_dir, conf, _, _ = paths(props, "server")
    if not _running(props):
        process.require_free(node["port"], label(node), node["host"])
        if props.get("cluster") is not None:
            bus = bus_port(props["name"], node["port"], props["cluster"])
            process.require_free(bus, f"{label(node)} cluster bus", node["host"])
    account.own(node_dir, 0o700)
    files = tls.write(props, account)
    if conf.exists():
        # An existing node starts as whatever it is now (after a Sentinel failover the
        # node made as a replica may be the master): nothing is re-pointed.
        outs = launch(props)
        if role(node, props["password"])[0] == "slave":
            wait_replicating(props, outs)
        return outs
    master = master_of(props) if props.get("replica") else None
    try:
        write_private(conf, render_server(
            name=props["name"], port=node["port"], node_dir=node_dir,
            password=props["password"], settings=props.get("settings") or {},
            replicaof=master, cluster=props.get("cluster"), tls=files,
            host=host_of(props)), account)
        outs = launch(props)
        if master:
            wait_replicating(props, outs)
        return outs
    except BaseException:
        _undo(props)
        raise


def master_of(props: dict) -> dict:
    peers = tls.with_own(props, [p for p in props.get("peers") or []
                                 if p.get("name") != props["name"]])
    master = live_master(peers, password=props["password"])
    if master is None:
        names = ", ".join(label(p) for p in peers) or "none given"
        raise DatakitError(f"{label(_node(props))}: no live master to replicate from among "
                           f"its peers ({names}); start the master first")
    return master


def wait_replicating(props: dict, outs: dict) -> dict:
    """Wait until this replica's link is up and its master lists it; returns the master."""
    node = _node(props)
    found: dict = {}

    def replicating() -> bool:
        state = info(node, props["password"], "replication")
        if state.get("role") != "slave" or state.get("master_link_status") != "up":
            return False
        master = {"host": state["master_host"], "port": int(state["master_port"]),
                  **{k: v for k, v in node.items() if k == "client_tls"}}
        listed = role(master, props["password"])
        found.update(master)
        return any(int(r[1]) == node["port"] for r in listed[2])

    wait(replicating, props, outs["pid"], outs["start_time"],
         what=f"{label(node)} replicating")
    return found


# --------------------------------------------------------------------------- lifecycle


def stop(props: dict, outs: dict | None = None, *, sig: int = signal.SIGTERM) -> None:
    """Stop the daemon, by pid + start time and by its pid file (if restarted since)."""
    outs = outs or {}
    if outs.get("pid"):
        process.stop(int(outs["pid"]), outs.get("start_time"), sig=sig)
    running = _running(props)
    if running:
        process.stop(*running, sig=sig)


def kill(props: dict, outs: dict | None = None) -> None:
    """SIGKILL, as a failover drill does."""
    running = _running(props)
    if outs and outs.get("pid"):
        process.kill(int(outs["pid"]), outs.get("start_time"))
    if running:
        process.kill(*running)


def start(props: dict, outs: dict | None = None) -> dict:
    """Start a stopped node from its config (whatever its role now); new outs."""
    if not paths(props)[1].exists():
        raise DatakitError(f"{label(_node(props), _kind_word(props))}: its config "
                           f"{paths(props)[1]} is gone; run `datakit up` to make it again")
    return {**(outs or {}), **launch(props)}


def delete(props: dict, outs: dict | None = None) -> None:
    """Stop the daemon and remove its directory. A node already gone is fine."""
    stop(props, outs)
    shutil.rmtree(paths(props)[0], ignore_errors=True)


def alive(props: dict, outs: dict) -> bool:
    if outs.get("pid") and process.is_running(int(outs["pid"]), outs.get("start_time")):
        return True
    return _running(props) is not None


def health(props: dict, outs: dict) -> dict:
    """Alive? answering? and the live role, asked of the server."""
    result = {"name": props["name"], "port": int(props["port"]), "alive": alive(props, outs),
              "accepting": False, "role": None, "master": None, "link": None,
              "replicas": None, "error": None}
    if not result["alive"]:
        result["error"] = "not running"
        return result
    try:
        state = info(_node(props), props["password"], "replication")
    except (redis_py.RedisError, DatakitError) as exc:
        result["error"] = str(exc)
        return result
    if state["role"] == "master":
        result.update(accepting=True, role="master", replicas=state["connected_slaves"])
    else:
        result.update(accepting=True, role="replica", link=state["master_link_status"],
                      master={"host": state["master_host"], "port": int(state["master_port"])})
    return result


# --------------------------------------------------------------------------- settings


def update(old_props: dict, outs: dict, new_props: dict) -> dict:
    """Apply changed settings with CONFIG SET + CONFIG REWRITE (Redis keeps its own file,
    with whatever Sentinel changed in it); settings Redis cannot change live are written
    to the file and applied by a restart. A new password is set the same way."""
    node = _node(new_props)
    if not alive(new_props, outs):
        raise DatakitError(f"{label(node)} is not running: run `datakit up --refresh` "
                           "to bring it back before changing its settings")
    old_set, new_set = old_props.get("settings") or {}, new_props.get("settings") or {}
    changed = sorted(k for k in set(old_set) | set(new_set) if old_set.get(k) != new_set.get(k))
    pw = old_props["password"]
    set_live, restart = [], []
    if new_props["password"] != pw:
        call(node, pw, "CONFIG", "SET", "masterauth", new_props["password"],
             "requirepass", new_props["password"])
        pw = new_props["password"]
    kept = []
    for name in changed:
        if name in new_set:
            value = config_value(new_set[name])
        elif name in DEFAULTS:  # removed from the stack: back to datakit's default
            value = config_value(DEFAULTS[name])
        else:  # Redis has no "reset one key": it stays until the node is made again
            kept.append(name)
            continue
        try:
            call(node, pw, "CONFIG", "SET", name, value)
            set_live.append(name)
        except redis_py.ResponseError as exc:
            if "immutable" in str(exc) or "protected" in str(exc):
                restart.append((name, value))
            else:
                raise DatakitError(f"{label(node)}: setting {name} {value!r} refused "
                                   f"({exc}); fix redis.settings in the stack config") from None
    if old_props.get("tls") != new_props.get("tls"):
        reload_tls(new_props, pw)
    if set_live or new_props["password"] != old_props["password"]:
        call(node, pw, "CONFIG", "REWRITE")
    outs = dict(outs)
    if restart:
        _edit_conf(paths(new_props)[1], restart)
        was_replica = role(node, pw)[0] == "slave"
        stop(new_props, outs)
        outs.update(launch(new_props))
        if was_replica:
            wait_replicating(new_props, outs)
    return {**outs, "applied": {"set": set_live, "restarted": [n for n, _ in restart],
                                "removed_but_kept": kept}}


def reload_tls(props: dict, password: str, *, kind: str = "node") -> None:
    """A reissued certificate: the files written anew, then set to the same paths, which
    makes Redis (and Sentinel) load them for new connections; no restart, no failover."""
    files = tls.write(props, _account())
    if files:
        call(_node(props), password, "CONFIG", "SET", "tls-cert-file", files["cert"],
             "tls-key-file", files["key"], "tls-ca-cert-file", files["ca"], kind=kind)


def _edit_conf(conf: Path, changes: list[tuple[str, str]]) -> None:
    lines = conf.read_text().splitlines()
    for name, value in changes:
        lines = [ln for ln in lines if ln.split(" ", 1)[0].lower() != name]
        lines.append(f"{name} {quote(value)}")
    write_private(conf, "\n".join(lines) + "\n", _account())
