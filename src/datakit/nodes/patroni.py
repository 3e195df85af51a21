"""PostgreSQL members run by Patroni, as native daemons on loopback: start, readiness, REST.

Patroni owns each member's PostgreSQL: initdb and bootstrap on whichever member takes the
cluster's initialise key in etcd, the replicas' clones, replication slots, the synchronous
quorum, failover, and pg_rewind when a former leader rejoins. datakit writes patroni.yml
(see patroni_conf), starts Patroni as the node's account from the venv, and watches through
Patroni's REST API (`GET /patroni`); the cluster as a whole is patroni_cluster's.

props keys: name, port (PostgreSQL), rest_port, data_dir (the node's own dir: patroni.yml,
pgdata/, patroni.log, pgpass; removed on delete), scope (the cluster's name), namespace
(default /datakit/), etcd ([{name, port, host?}]: the store's members), superuser
(default "postgres"), superuser_password, replication_user (default "replicator"),
replication_password, app_user, app_password, app_database (all three or none), settings
(server settings, dict), synchronous_standbys (the quorum count; 0 = asynchronous),
patroni ({ttl, loop_wait, retry_timeout, failsafe_mode, maximum_lag_on_failover,
primary_start_timeout, synchronous_mode_strict}), version (PostgreSQL major; default the
newest installed), archive_dir (optional), rest_user/rest_password (optional: Patroni then
asks for them on every POST), sync_bootstrap (default false: initdb and basebackup skip fsync),
join (a fresh member starts only once another member initialised the cluster), host,
listen_host, client_networks (see patroni_conf), tls ({ca, cert, key} PEM: see nodes/tls.py;
a caller's dict may instead carry client_tls, file paths).
outs keys: name, host, port, rest_port, rest_url, pid, start_time (Patroni's process),
data_dir, pgdata, config, log_path.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from datakit.errors import DatakitError
from datakit.nodes import etcd, process, tls
from datakit.nodes.executables import venv_program
from datakit.nodes.patroni_conf import etcd_nodes, host, paths, problems, render, rest_auth
from datakit.nodes.process import RunAs
from datakit.nodes.readiness import wait_until
from datakit.topology.patroni import NAMESPACE

START_TIMEOUT = 90.0
_OURS = {"patroni.yml", "patroni.yml.tmp", "pgdata", "patroni.log", "pgpass", "bootstrap.json",
         tls.DIR}
# The member's own states that end a wait at once: retrying cannot help.
_FAILED = {"start failed", "bootstrap failed", "crashed"}


def label(props: dict) -> str:
    return f"patroni node {props['name']} ({host(props)}:{int(props['port'])})"


def rest_url(props: dict) -> str:
    return f"{tls.scheme(tls.client_files(props))}://{host(props)}:{int(props['rest_port'])}"


def account() -> RunAs:
    return RunAs.service("postgres")


# --------------------------------------------------------------------------- REST API


def rest(props: dict, path: str, *, body: dict | None = None, method: str | None = None,
         timeout: float = 2.0) -> tuple[int, object]:
    """(HTTP status, answer: JSON when it is JSON, else text) of one REST call; POSTs carry
    the REST credentials when the node has them. A node that does not answer raises."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(rest_url(props) + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if props.get("rest_password") and (method or ("POST" if data else "GET")) != "GET":
        auth = rest_auth(props)
        token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        ctx = tls.context(tls.client_files(props), what=label(props))
        with urllib.request.urlopen(request, timeout=timeout, context=ctx) as reply:
            status, raw = reply.status, reply.read()
    except urllib.error.HTTPError as exc:  # 503 from /patroni on a sick node: still an answer
        status, raw = exc.code, exc.read()
    except (OSError, ValueError) as exc:
        raise DatakitError(f"{label(props)}: its REST API at {rest_url(props)} does not "
                           f"answer: {getattr(exc, 'reason', exc)}") from None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace").strip()


def member_status(props: dict, *, timeout: float = 2.0) -> dict:
    """`GET /patroni`: the member's own view (state, role, timeline, replication...)."""
    return _json(props, "/patroni", timeout)


def cluster_status(props: dict, *, timeout: float = 2.0) -> dict:
    """`GET /cluster`: Patroni's view of every member (role, state, lag, timeline)."""
    return _json(props, "/cluster", timeout)


def _json(props: dict, path: str, timeout: float) -> dict:
    status, answer = rest(props, path, timeout=timeout)
    if not isinstance(answer, dict):
        raise DatakitError(f"{label(props)}: GET {path} answered {status} {answer!r}")
    return answer


# --------------------------------------------------------------------------- processes


def postmaster(props: dict) -> tuple[int, int] | None:
    """(pid, start time) of the postmaster serving this node's pgdata now, if any."""
    pgdata = paths(props)["pgdata"]
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        # PostgreSQL chdirs into its data dir: a recycled pid would not be there.
        if Path(f"/proc/{pid}/cwd").resolve() != pgdata.resolve():
            return None
    except (OSError, ValueError):
        return None
    started = process.start_time(pid)
    return (pid, started) if started is not None else None


def patroni_process(props: dict, outs: dict | None = None) -> tuple[int, int] | None:
    """(pid, start time) of this node's Patroni: the recorded one, or one started since on
    the same patroni.yml (by a drill or by hand)."""
    outs = outs or {}
    if outs.get("pid") and process.is_running(int(outs["pid"]), outs.get("start_time")):
        return int(outs["pid"]), int(outs.get("start_time") or 0)
    return process.find_by_argument(str(paths(props)["config"]))


def _outs(props: dict, pid: int, started: int | None) -> dict:
    node = paths(props)
    return {"name": props["name"], "host": host(props), "port": int(props["port"]),
            "rest_port": int(props["rest_port"]), "rest_url": rest_url(props), "pid": pid,
            "start_time": started, "data_dir": str(node["root"]), "pgdata": str(node["pgdata"]),
            "config": str(node["config"]), "log_path": str(node["log"])}


def _write_private(path: Path, text: str, account: RunAs) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    os.chown(tmp, account.uid, account.gid)
    tmp.replace(path)


def _write_tls(props: dict, account: RunAs) -> None:
    account.own(paths(props)["root"], 0o700)
    tls.write(props, account)


def write_files(props: dict, config: dict, account: RunAs) -> None:
    node = paths(props)
    _write_tls(props, account)
    if props.get("archive_dir"):
        account.own(Path(props["archive_dir"]), 0o700)
    _write_private(node["config"], "# Written by datakit; edits are overwritten.\n"
                   + yaml.safe_dump(config, sort_keys=False), account)
    if props.get("app_user"):
        _write_private(node["bootstrap"], json.dumps(
            {k: props.get(k) for k in ("app_user", "app_password", "app_database")}), account)


def start(props: dict, *, wait: bool = True, timeout: float = START_TIMEOUT) -> dict:
    """Start Patroni for this node (if it does not run already) and, with `wait`, return
    when the member serves: the leader running as primary, or a replica streaming.

    Before anything starts: the ports must be free, etcd must answer, and patroni.yml must
    be what Patroni takes as written; each failure is one line naming the node and key."""
    live = patroni_process(props)
    if live is None:
        user = account()
        program = venv_program("patroni", user)
        if postmaster(props) is None:  # a postmaster that outlived its Patroni is adopted
            process.require_free(int(props["port"]), f"{label(props)} PostgreSQL port",
                                 host(props))
        process.require_free(int(props["rest_port"]), f"{label(props)} REST API port",
                             host(props))
        if props.get("tls"):  # its certificate is how it reaches etcd
            _writing(props, lambda: _write_tls(props, user))
        etcd.require_reachable(etcd_nodes(props), needed_by=label(props))
        config = render(props)
        if refused := problems(config):
            raise DatakitError(f"{label(props)}: {'; '.join(refused)}; nothing was started: "
                               "fix the stack config")
        node = paths(props)
        if props.get("join") and not (node["pgdata"] / "PG_VERSION").exists():
            _await_initialised(props, timeout=timeout)
        _writing(props, lambda: write_files(props, config, user))
        pid = user.spawn([str(program), str(node["config"])], log=node["log"],
                         cwd=str(node["root"]), address=props.get("host"))
        live = (pid, process.start_time(pid) or 0)
    outs = _outs(props, *live)
    if wait:
        wait_member(props, outs, timeout=timeout)
    return outs


def _writing(props: dict, write) -> None:
    """Run `write`; an OSError (a file where the data dir should be, a read-only disk)
    becomes one line naming the node and the path."""
    root = paths(props)["root"]
    try:
        write()
    except OSError as exc:
        raise DatakitError(f"{label(props)}: cannot write its data dir {root}: "
                           f"{exc.strerror or exc} ({exc.filename or root}); make it a "
                           "writable directory (or change the stack's data_dir)") from None


def _await_initialised(props: dict, *, timeout: float) -> None:
    """A joining member starts once another has initialised the cluster: so the member
    the stack names first (pg-1) is the one that runs initdb, and the initial roles in the
    outputs are true. It costs nothing: a clone cannot start before the leader serves."""
    key = f"{props.get('namespace') or NAMESPACE}{props['scope']}/initialize"
    wait_until(lambda: etcd.key_exists(etcd_nodes(props), key),
               what=f"{label(props)} waiting for the cluster {props['scope']} to be "
               "initialised by its first member", timeout=timeout, max_interval=0.25)


def wait_member(props: dict, outs: dict | None = None, *,
                timeout: float = START_TIMEOUT) -> dict:
    """Wait until the member serves (leader running, or replica streaming); its /patroni.
    With `outs` (a process datakit started), that process exiting ends the wait at once."""
    log = paths(props)["log"]
    alive = None if not (outs and outs.get("pid")) else \
        (lambda: process.exit_reason(outs["pid"], outs["start_time"], log))

    def up() -> dict | None:
        state = member_status(props)
        if state.get("state") in _FAILED:
            raise _Failed(f"{label(props)}: Patroni reports {state['state']!r}; last log "
                          f"lines:\n{process.log_tail(log)}\nfull log: {log}")
        return state if serving(state) else None

    return wait_until(up, what=f"{label(props)} serving", timeout=timeout,
                      max_interval=0.25, fatal=(_Failed,), alive=alive)


def serving(state: dict) -> bool:
    """A member's own /patroni says it serves: the leader running, or a replica streaming."""
    if state.get("role") == "primary":
        return state.get("state") == "running"
    return state.get("role") == "replica" and state.get("replication_state") == "streaming"


class _Failed(DatakitError):
    """The member says it failed: no point in waiting longer."""


def create(props: dict, *, wait: bool = True) -> dict:
    """Start a member; one that fails before its first cluster data exists leaves nothing
    half-made behind (its log stays for the error's sake)."""
    fresh = not (paths(props)["pgdata"] / "PG_VERSION").exists()
    try:
        return start(props, wait=wait)
    except BaseException:
        if fresh:
            kill(props)
            shutil.rmtree(paths(props)["pgdata"], ignore_errors=True)
        raise


def stop(props: dict, outs: dict | None = None, *, timeout: float = 60.0) -> None:
    """Stop Patroni, which shuts PostgreSQL down (fast) and hands the leader key over;
    then a postmaster that outlived its Patroni (after a kill) gets a fast shutdown too."""
    if live := patroni_process(props, outs):
        process.stop(*live, timeout=timeout)
    if pm := postmaster(props):
        process.stop(*pm, timeout=timeout, sig=signal.SIGINT)


def kill(props: dict, outs: dict | None = None, *, postmaster_only: bool = False) -> None:
    """SIGKILL the node, as a drill does: Patroni and its postmaster together (a node lost),
    or with `postmaster_only` the postmaster alone (a crash Patroni sees and handles)."""
    if postmaster_only:
        if pm := postmaster(props):
            process.kill(*pm)
        return
    # Patroni first, or it would restart the postmaster killed next; each with its group
    # (Patroni's pg_basebackup or pg_rewind, the postmaster's backends), as a lost machine.
    if live := patroni_process(props, outs):
        process.kill_group(*live)
    if pm := postmaster(props):
        process.kill_group(*pm)


def alive(props: dict, outs: dict | None = None) -> bool:
    """Patroni runs for this node (whether its postmaster does is `health`'s business)."""
    return patroni_process(props, outs) is not None


def delete(props: dict, outs: dict | None = None, *, graceful: bool = True) -> None:
    """Stop the node and remove its directory, if it holds only what datakit put there.
    `graceful=False` kills it instead: right when the whole cluster goes, where a clean
    stop only hands the leader key to members that are leaving too (about 4 s each).
    The cluster's keys in etcd stay: `etcd.delete_prefix` removes a whole cluster's."""
    if graceful:
        stop(props, outs)
    else:
        kill(props, outs)
    root = paths(props)["root"]
    if not root.exists():
        return
    process.await_gone_from(root, what=f"deleting {label(props)}")
    # A killed postmaster leaves its socket and lock file in the socket dir (the node's).
    strangers = {p.name for p in root.iterdir() if not p.name.startswith(".s.PGSQL.")} - _OURS
    if strangers:
        raise DatakitError(f"not removing {root}: it holds {sorted(strangers)}, which "
                           "datakit did not create; remove it by hand")
    shutil.rmtree(root)


def health(props: dict, outs: dict | None = None) -> dict:
    """Patroni alive? the postmaster alive? and the member's own view from its REST API."""
    result = {"name": props["name"], "port": int(props["port"]),
              "patroni_alive": alive(props, outs), "postmaster_alive": postmaster(props)
              is not None, "state": None, "role": None, "timeline": None,
              "replication_state": None, "error": None}
    try:
        state = member_status(props)
    except DatakitError as exc:
        result["error"] = str(exc)
        return result
    result.update(state=state.get("state"), role=state.get("role"),
                  timeline=state.get("timeline"),
                  replication_state=state.get("replication_state"))
    return result
