"""etcd members as native daemons on loopback: config, start, readiness, health, teardown.

One member of a static cluster: every member is given the whole member list
(`initial-cluster`), so the cluster forms once a majority runs. A lone member's process
starts and binds its ports but has no leader, so `start` returns when the member listens,
and `wait_cluster` (called after every member was started) waits until each member is
healthy and all name the same leader. Health is asked of etcd itself over its HTTP/JSON
API: `GET /health`, and the v3 gateway's `POST /v3/maintenance/status` and
`POST /v3/cluster/member/list`, JSON over HTTP with the standard library.

props keys: name (etcd-1), port (client), peer_port, data_dir (the member's own dir:
removed on delete), cluster ([{name, peer_port, host?}]: every member, itself included),
cluster_token (default "datakit": two clusters on one machine must differ), heartbeat_ms,
election_timeout_ms (etcd's defaults 100 and 1000), run_as (default "etcd"), tls
({ca, cert, key} PEM: then every URL is https, peers and clients must show a certificate of
the stack's CA; see nodes/tls.py). A client's node dict may carry client_tls (file paths).
outs keys: name, host, port, peer_port, url, pid, start_time, data_dir, config, log_path.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from datakit.errors import DatakitError
from datakit.nodes import process, tls
from datakit.nodes.executables import venv_program
from datakit.nodes.process import RunAs
from datakit.nodes.readiness import wait_until

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
# Changing one of these makes a new member: etcd reads them only when its data dir is new.
REPLACE_KEYS = frozenset({"name", "host", "port", "peer_port", "data_dir", "cluster",
                          "cluster_token"})
_OURS = {"etcd.yml", "data", "etcd.log", tls.DIR}


class Unreachable(DatakitError):
    """No etcd member answered: the message names each member tried and why."""


def label(node: dict) -> str:
    return f"etcd member {node['name']} ({node.get('host') or HOST}:{int(node['port'])})"


def url(node: dict) -> str:
    return f"{tls.scheme(tls.client_files(node))}://{node.get('host') or HOST}:{int(node['port'])}"


def _peer_url(node: dict, secure: bool) -> str:
    return f"{'https' if secure else 'http'}://{node.get('host') or HOST}:{int(node['peer_port'])}"


def _paths(props: dict) -> tuple[Path, Path, Path, Path]:
    """(member dir, config file, etcd's data dir, log file)."""
    root = Path(props["data_dir"])
    return root, root / "etcd.yml", root / "data", root / "etcd.log"


def _account(props: dict) -> RunAs:
    return RunAs.service(props.get("run_as") or "etcd")


# --------------------------------------------------------------------------- config


def member_config(props: dict) -> dict:
    """etcd's config file for this member, as a dict (`--config-file` reads YAML)."""
    root, _, data, _ = _paths(props)
    secure = bool(props.get("tls"))
    cluster = props.get("cluster") or [props]
    if props["name"] not in {m["name"] for m in cluster}:
        raise DatakitError(f"{label(props)}: its own name is missing from the cluster list "
                           f"({', '.join(m['name'] for m in cluster)})")
    config = {
        "name": props["name"],
        "data-dir": str(data),
        "listen-client-urls": url(props),
        "advertise-client-urls": url(props),
        "listen-peer-urls": _peer_url(props, secure),
        "initial-advertise-peer-urls": _peer_url(props, secure),
        "initial-cluster": ",".join(f"{m['name']}={_peer_url(m, secure)}" for m in cluster),
        "initial-cluster-state": "new",
        "initial-cluster-token": props.get("cluster_token") or "datakit",
        "heartbeat-interval": int(props.get("heartbeat_ms") or 100),
        "election-timeout": int(props.get("election_timeout_ms") or 1000),
        # Patroni's members write their keys every loop_wait: keep one hour of history.
        "auto-compaction-mode": "periodic",
        "auto-compaction-retention": "1h",
        "log-level": "warn",
        "logger": "zap",
        "log-outputs": ["stderr"],
    }
    if secure:
        config.update(_transport_security(tls.files(root)))
    return config


def _transport_security(files: dict[str, str]) -> dict:
    """Clients and peers alike must show a certificate of the stack's CA: Patroni and the
    kit present theirs, a stranger is refused at the handshake. etcd reads the files at
    each handshake, so a reissued certificate needs no restart."""
    side = {"cert-file": files["cert"], "key-file": files["key"],
            "trusted-ca-file": files["ca"], "client-cert-auth": True}
    return {"client-transport-security": side, "peer-transport-security": dict(side)}


def _write_config(props: dict, account: RunAs) -> None:
    root, conf, _, _ = _paths(props)
    account.own(root, 0o700)
    tls.write(props, account)
    tmp = conf.with_suffix(".tmp")
    tmp.write_text("# Written by datakit; edits are overwritten.\n"
                   + yaml.safe_dump(member_config(props), sort_keys=False))
    tmp.chmod(0o600)
    os.chown(tmp, account.uid, account.gid)
    tmp.replace(conf)


# --------------------------------------------------------------------------- lifecycle


def live(props: dict, outs: dict | None = None) -> tuple[int, int] | None:
    """(pid, start time) of this member's process now: the recorded one, or one started
    since on the same config file (by a drill)."""
    outs = outs or {}
    if outs.get("pid") and process.is_running(int(outs["pid"]), outs.get("start_time")):
        return int(outs["pid"]), int(outs.get("start_time") or 0)
    return process.find_by_argument(str(_paths(props)[1]))


def _outs(props: dict, pid: int, started: int | None) -> dict:
    root, conf, _, log = _paths(props)
    return {"name": props["name"], "host": props.get("host") or HOST,
            "port": int(props["port"]), "peer_port": int(props["peer_port"]), "url": url(props),
            "pid": pid, "start_time": started, "data_dir": str(root), "config": str(conf),
            "log_path": str(log)}


def start(props: dict, *, timeout: float = START_TIMEOUT) -> dict:
    """Start the member (if it does not run already) and wait until it listens on its
    client port. It does not wait for the other members: see `wait_cluster`."""
    running = live(props)
    if running:
        return _outs(props, *running)
    host = props.get("host") or HOST
    for what, port in (("client port", props["port"]), ("peer port", props["peer_port"])):
        process.require_free(int(port), f"{label(props)} {what}", host)
    account = _account(props)
    etcd = venv_program("etcd", account)
    root, conf, _, log = _paths(props)
    try:
        _write_config(props, account)
    except OSError as exc:
        raise DatakitError(f"{label(props)}: cannot write its data dir {root}: "
                           f"{exc.strerror or exc} ({exc.filename or root}); make it a "
                           "writable directory (or change the stack's data_dir)") from None
    pid = account.spawn([str(etcd), "--config-file", str(conf)], log=log, cwd=str(root),
                        address=host)
    started = process.start_time(pid)

    def listening() -> bool:
        with socket.create_connection((host, int(props["port"])), timeout=1):
            return True

    try:
        wait_until(listening, what=f"{label(props)} listening", timeout=timeout,
                   alive=lambda: process.exit_reason(pid, started, log))
    except BaseException:
        process.stop(pid, started, timeout=10)
        raise
    return _outs(props, pid, started)


def create(props: dict) -> dict:
    """Start a member; a fresh one that fails to start leaves no data dir behind."""
    fresh = not _paths(props)[2].exists()
    try:
        return start(props)
    except BaseException:
        if fresh:
            shutil.rmtree(_paths(props)[2], ignore_errors=True)
        raise


def update(old: dict, outs: dict, new: dict) -> dict:
    """A changed member: a reissued certificate alone is written in place (etcd reads it at
    the next handshake); anything else restarts the member on its data (raft timing is
    read at start)."""
    if {k: v for k, v in old.items() if k != "tls"} == {k: v for k, v in new.items()
                                                         if k != "tls"}:
        tls.write(new, _account(new))
        return outs
    stop(new, outs)
    return {**outs, **start(new)}


def stop(props: dict, outs: dict | None = None, *, timeout: float = 20.0) -> None:
    """SIGTERM (etcd leaves its data consistent), SIGKILL after `timeout`. Gone is fine."""
    if found := live(props, outs):
        process.stop(*found, timeout=timeout)


def kill(props: dict, outs: dict | None = None) -> None:
    """SIGKILL, as a member-loss drill does."""
    if found := live(props, outs):
        process.kill(*found)


def alive(props: dict, outs: dict | None = None) -> bool:
    return live(props, outs) is not None


def delete(props: dict, outs: dict | None = None) -> None:
    """Stop the member and remove its dir, if it holds only what datakit put there."""
    stop(props, outs)
    root = _paths(props)[0]
    if not root.exists():
        return
    strangers = {p.name for p in root.iterdir()} - _OURS - {"etcd.tmp"}
    if strangers:
        raise DatakitError(f"not removing {root}: it holds {sorted(strangers)}, which "
                           "datakit did not create; remove it by hand")
    shutil.rmtree(root)


# --------------------------------------------------------------------------- the API


def call(node: dict, path: str, body: dict | None = None, *, timeout: float = 2.0) -> dict:
    """GET (no body) or POST JSON to a member's client URL; the answer as a dict.
    A member that does not answer raises Unreachable naming it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url(node) + path, data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        ctx = tls.context(tls.client_files(node), what=label_of(node))
        with urllib.request.urlopen(request, timeout=timeout, context=ctx) as reply:
            return json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as exc:  # /health answers 503 with a JSON reason
        try:
            return json.loads(exc.read() or b"{}")
        except ValueError:
            raise Unreachable(f"{label_of(node)} answered HTTP {exc.code} to {path}") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            # It listens from the start, but serves only after joining its cluster.
            raise Unreachable(f"{label_of(node)} does not answer within {timeout:g}s (a new "
                              "member answers once a majority of its cluster runs)") from None
        raise Unreachable(f"{label_of(node)} does not answer: {reason}") from None


def member_health(node: dict, *, timeout: float = 2.0) -> dict:
    """What one member says: healthy (it has a leader and no alarm), its leader's member id
    and its own, raft term, version, db size; `error` when it does not answer."""
    out = {"name": node.get("name"), "url": url(node), "healthy": False, "reason": None,
           "member_id": None, "leader_id": None, "raft_term": None, "version": None,
           "db_size": None, "error": None}
    try:
        health = call(node, "/health", timeout=timeout)
        status = call(node, "/v3/maintenance/status", {}, timeout=timeout)
    except Unreachable as exc:
        out["error"] = str(exc)
        return out
    out.update(healthy=health.get("health") == "true", reason=health.get("reason") or None,
               member_id=status.get("header", {}).get("member_id"),
               leader_id=status.get("leader") or None, raft_term=int(status.get("raftTerm", 0)),
               version=status.get("version"), db_size=int(status.get("dbSize", 0)))
    if status.get("errors"):
        out["reason"] = "; ".join(status["errors"])
    return out


def members(node: dict, *, timeout: float = 2.0) -> dict[str, str]:
    """The cluster's member list as one member knows it: member id -> name."""
    listed = call(node, "/v3/cluster/member/list", {}, timeout=timeout).get("members") or []
    return {m["ID"]: m.get("name") or "" for m in listed}


def cluster_health(nodes: list[dict], *, timeout: float = 2.0) -> dict:
    """Every member's health, the leader they name (None unless exactly one), the member
    list, and `problems`: one line per thing wrong (empty when all is well)."""
    each = [member_health(n, timeout=timeout) for n in nodes]
    listed: dict[str, str] = {}
    for n, h in zip(nodes, each, strict=True):
        if h["error"] is None and not listed:
            try:
                listed = members(n, timeout=timeout)
            except Unreachable as exc:
                h["error"] = str(exc)
    leaders = {h["leader_id"] for h in each if h["error"] is None and h["leader_id"]}
    leader = listed.get(next(iter(leaders))) if len(leaders) == 1 else None
    problems = [h["error"] or f"{label_of(n)}: not healthy ({h['reason'] or 'no reason'})"
                for n, h in zip(nodes, each, strict=True) if h["error"] or not h["healthy"]]
    if len(leaders) > 1:
        problems.append(f"members name different leaders: {sorted(leaders)}")
    elif not leaders:
        problems.append("no member names a leader")
    missing = sorted({n["name"] for n in nodes} - set(listed.values())) if listed else []
    if missing:
        problems.append(f"not in the member list: {', '.join(missing)}")
    return {"members": each, "leader": leader, "listed": sorted(listed.values()),
            "healthy": not problems, "problems": problems}


def label_of(node: dict) -> str:
    return label(node) if node.get("name") else f"etcd {url(node)}"


def wait_cluster(nodes: list[dict], *, timeout: float = 60.0) -> dict:
    """Wait until every member is healthy, lists all the others and names one leader.
    Returns {leader, members (names), waited_s}."""
    began = time.monotonic()

    def formed() -> dict | None:
        state = cluster_health(nodes)
        if not state["healthy"]:
            raise DatakitError("; ".join(state["problems"]))
        return state

    names = ", ".join(n["name"] for n in nodes)
    state = wait_until(formed, what=f"etcd cluster ({names})", timeout=timeout,
                       max_interval=0.2)
    return {"leader": state["leader"], "members": state["listed"],
            "waited_s": round(time.monotonic() - began, 3)}


def require_reachable(nodes: list[dict], *, needed_by: str, timeout: float = 2.0) -> str:
    """The URL of a healthy member (one that has a leader), or one line naming every
    member tried and what it answered: how a client of etcd fails before it starts."""
    tried = []
    for node in nodes:
        h = member_health(node, timeout=timeout)
        if h["healthy"]:
            return h["url"]
        tried.append(h["error"] or f"{label_of(node)}: {h['reason'] or 'not healthy'}")
    raise Unreachable(f"{needed_by}: no healthy etcd member ({'; '.join(tried)}); start the "
                      "etcd cluster first (`datakit up`) or fix etcd's hosts in the stack")


def key_exists(nodes: list[dict], key: str, *, timeout: float = 2.0) -> bool:
    """Whether `key` is in the store, asked of the first healthy member."""
    url_ = require_reachable(nodes, needed_by=f"reading {key} from etcd", timeout=timeout)
    member = next(n for n in nodes if url(n) == url_)
    answer = call(member, "/v3/kv/range", {"key": base64.b64encode(key.encode()).decode(),
                                           "count_only": True}, timeout=timeout)
    return int(answer.get("count", 0)) > 0


def delete_prefix(nodes: list[dict], prefix: str, *, timeout: float = 5.0) -> int:
    """Delete every key under `prefix` (e.g. a Patroni cluster's /datakit/<scope>/) through
    the first healthy member; the number of keys deleted."""
    member = {"name": "", "port": 0}
    for node in nodes:
        if member_health(node, timeout=timeout)["healthy"]:
            member = node
            break
    else:
        require_reachable(nodes, needed_by=f"deleting {prefix} from etcd", timeout=timeout)
    key = prefix.encode()
    end = key[:-1] + bytes([key[-1] + 1])  # the first key after every key with the prefix
    answer = call(member, "/v3/kv/deleterange",
                  {"key": base64.b64encode(key).decode(),
                   "range_end": base64.b64encode(end).decode()}, timeout=timeout)
    return int(answer.get("deleted", 0))
