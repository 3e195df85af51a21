"""PostgreSQL nodes as native daemons on loopback: primary, replicas, settings, teardown.

Plain functions for the local substrate's dynamic resources: `props` (what the node should
be, JSON-able, passwords included) in, `outs` (what was started: pid, start time, dirs,
log, port) out. Each `create_*` returns only when the node really serves: the primary
accepts an authenticated connection, a replica shows `streaming` on the live primary.

Identity is not role: a node is its name, port and directory. Which node is primary is
asked of the servers (`live_primary`), so `delete`, `update` and new replicas do the right
thing after a failover.

props keys (all nodes): name, port, data_dir (the node's own dir: removed on delete),
superuser (default "postgres"), superuser_password, replication_user (default
"replicator"), replication_password, settings (dict of postgresql.conf parameters), version
(optional major; default the newest installed), sync_bootstrap (default false: initdb and
pg_basebackup skip their fsync, see `_no_sync`).
Primary also: app_user, app_password, app_database (optional; all three or none).
Replica also: peers, the other nodes ([{name, port, host?}]) among which the live primary
is found.
outs keys: name, host, port, pid, start_time, data_dir, pgdata, log_path, bin_dir, version,
slot (its replication slot while it is a replica, else None), and after an update
`applied` = {reloaded: [...], restarted: [...]}.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import psycopg

from datakit.errors import DatakitError
from datakit.nodes import process
from datakit.nodes.postgres_client import (
    connect,
    ensure_database,
    ensure_role,
    label,
    live_primary,
    replication_state,
)
from datakit.nodes.postgres_conf import (
    CONF_NAME,
    INCLUDE_LINE,
    bin_dir,
    pgpass_line,
    render_conf,
    render_hba,
    slot_name,
)
from datakit.nodes.process import RunAs
from datakit.nodes.readiness import wait_until

HOST = "127.0.0.1"
# Changing one of these makes a new node (Pulumi replaces it); anything else is an update.
# `peers` only says where to look for the live primary: a changed list is no reason.
REPLACE_KEYS = frozenset({"name", "port", "data_dir", "version"})
START_TIMEOUT = 60.0


def _account() -> RunAs:
    return RunAs.service("postgres")


def _su(props: dict) -> dict:
    return {"user": props.get("superuser") or "postgres",
            "password": props["superuser_password"]}


def _repl_user(props: dict) -> str:
    return props.get("replication_user") or "replicator"


def _node(props: dict) -> dict:
    return {"name": props["name"], "host": HOST, "port": int(props["port"])}


def _paths(props: dict) -> tuple[Path, Path, Path, Path]:
    node_dir = Path(props["data_dir"])
    return node_dir, node_dir / "pgdata", node_dir / "postgres.log", node_dir / "pgpass"


def _outs(props: dict, pid: int, started: int | None, **extra) -> dict:
    node_dir, pgdata, log, _ = _paths(props)
    bindir = bin_dir(props.get("version"))
    return {"name": props["name"], "host": HOST, "port": int(props["port"]), "pid": pid,
            "start_time": started, "data_dir": str(node_dir), "pgdata": str(pgdata),
            "log_path": str(log), "bin_dir": str(bindir), "version": int(bindir.parent.name),
            **extra}


def _write(path: Path, text: str, account: RunAs, mode: int = 0o600) -> None:
    path.write_text(text)
    path.chmod(mode)
    os.chown(path, account.uid, account.gid)


def _running_postmaster(pgdata: Path) -> tuple[int, int] | None:
    """(pid, start time) of a postmaster serving `pgdata` now, from postmaster.pid."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    try:
        # PostgreSQL chdirs into its data dir: a recycled pid would not be there.
        if Path(f"/proc/{pid}/cwd").resolve() != pgdata.resolve():
            return None
    except OSError:
        return None
    started = process.start_time(pid)
    return (pid, started) if started is not None else None


def _pid_file_status(pgdata: Path) -> tuple[int | None, str | None]:
    """(pid, status) from postmaster.pid: status is starting, ready, standby or stopping."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        return int(lines[0]), lines[7].strip() if len(lines) > 7 else None
    except (OSError, ValueError, IndexError):
        return None, None


def _write_conf(props: dict, settings: dict | None = None) -> None:
    """Write datakit.conf and have PostgreSQL itself check every value (`postgres -C`,
    which parses the files as the server would); a refused file is put back as it was."""
    node_dir, pgdata, _, _ = _paths(props)
    if props.get("archive_dir"):  # the WAL archive the settings' archive_command copies to
        archive = Path(props["archive_dir"])
        archive.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(archive, _account().uid, _account().gid)
    text = render_conf(name=props["name"], port=int(props["port"]), socket_dir=str(node_dir),
                       settings=settings if settings is not None else props.get("settings") or {})
    conf = pgdata / CONF_NAME
    before = conf.read_text() if conf.exists() else None
    _write(conf, text, _account())
    try:
        _account().run([str(bin_dir(props.get("version")) / "postgres"), "-D", str(pgdata),
                        "-C", "port"], what="postgres -C")
    except DatakitError as exc:
        if before is not None:
            _write(conf, before, _account())
        problems = [part.split("LOG:", 1)[1].strip() for part in str(exc).split(" | ")
                    if "LOG:" in part] or [str(exc)]
        raise DatakitError(f"{label(_node(props))}: settings refused: {'; '.join(problems)}; "
                           "nothing was applied: fix postgres.settings in the stack config"
                           ) from None


def _start(props: dict) -> dict:
    """Start the postmaster of an existing data dir (if not already running); wait until it
    accepts an authenticated connection. Returns outs."""
    node_dir, pgdata, log, _ = _paths(props)
    running = _running_postmaster(pgdata)
    if running:
        pid, started = running
    else:
        process.require_free(int(props["port"]), label(_node(props)))
        postgres = bin_dir(props.get("version")) / "postgres"
        pid = _account().spawn([str(postgres), "-D", str(pgdata)], log=log, cwd=str(node_dir))
        started = process.start_time(pid)
    node = _node(props)

    def accepting() -> bool:
        # First the postmaster's own word (postmaster.pid, as pg_ctl -w reads it), so
        # probing does not fill the log with "the database system is starting up".
        if pid != _pid_file_status(pgdata)[0] or \
                _pid_file_status(pgdata)[1] not in ("ready", "standby"):
            return False
        with connect(node, **_su(props), timeout=2):
            return True

    _wait(accepting, props, pid, started, what=f"{label(node)} accepting connections")
    return _outs(props, pid, started)


def _wait(probe, props: dict, pid: int, started: int | None, *, what: str,
          timeout: float = START_TIMEOUT):
    """wait_until, ended at once by the process dying or by a refused password."""
    from datakit.nodes.postgres_client import WrongPassword

    # Probes are cheap (one local connection): poll at least every 0.1 s.
    return wait_until(probe, what=what, timeout=timeout, max_interval=0.1,
                      fatal=(WrongPassword,),
                      alive=lambda: process.exit_reason(pid, started, _paths(props)[2]))


def _admin(props: dict, node: dict | None = None) -> psycopg.Connection:
    """A superuser connection whose commits never wait for synchronous standbys."""
    conn = connect(node or _node(props), **_su(props))
    conn.execute("set synchronous_commit = local")
    return conn


# --------------------------------------------------------------------------- primary


def create_primary(props: dict) -> dict:
    """initdb (SCRAM, superuser password from a 0600 file), settings, pg_hba, start, and
    the replication and application roles. Idempotent: an existing data dir is started
    as whatever it is now (after a failover it may be a replica; see `_resume`)."""
    account = _account()
    node_dir, pgdata, log, _ = _paths(props)
    bindir = bin_dir(props.get("version"))
    if not _running_postmaster(pgdata):
        process.require_free(int(props["port"]), label(_node(props)))
    account.own(node_dir, 0o700)
    fresh = not (pgdata / "PG_VERSION").exists()
    try:
        if fresh:
            shutil.rmtree(pgdata, ignore_errors=True)
            _initdb(props, bindir, account)
            _write_conf(props)
            outs = {**_start(props), "slot": None}
        else:
            outs = _resume(props)
            if outs.get("slot"):  # a replica now: roles come from the primary
                return outs
        with _admin(props) as conn:
            ensure_role(conn, _repl_user(props), props["replication_password"],
                        attributes="LOGIN REPLICATION")
            if props.get("app_user"):
                ensure_role(conn, props["app_user"], props["app_password"])
                ensure_database(conn, props.get("app_database") or props["app_user"],
                                props["app_user"])
        return outs
    except BaseException:
        if fresh:
            _undo(props)
        raise


def _resume(props: dict) -> dict:
    """Start an existing data dir as whatever the node is now, asked of the server: a
    primary is ready when it accepts connections; a replica (the one made as a replica,
    or a former primary rejoined by a drill) when it streams from the live primary
    through its slot. Nothing is re-pointed or rebuilt because the stack's names say
    otherwise."""
    _write_conf(props)
    outs = _start(props)
    with connect(_node(props), **_su(props)) as conn:
        if not conn.execute("select pg_is_in_recovery()").fetchone()[0]:
            return {**outs, "slot": None}
    primary = _primary_of(props)
    slot = _ensure_slot(props, primary)
    _wait_streaming(props, outs, primary)
    return {**outs, "slot": slot}


def _ensure_slot(props: dict, primary: dict) -> str:
    slot = slot_name(props["name"])
    with _admin(props, primary) as conn:
        if not conn.execute("select 1 from pg_replication_slots where slot_name = %s",
                            [slot]).fetchone():
            conn.execute("select pg_create_physical_replication_slot(%s, true)", [slot])
    return slot


def _no_sync(props: dict) -> list[str]:
    """initdb and pg_basebackup skip their final fsync unless props.sync_bootstrap: a
    local node's files reach the disk with the OS's next writeback; only an OS crash in
    the first seconds could lose them (a killed process cannot). Seconds saved per node."""
    return [] if props.get("sync_bootstrap") else ["--no-sync"]


def _initdb(props: dict, bindir: Path, account: RunAs) -> None:
    node_dir, pgdata, _, _ = _paths(props)
    pwfile = node_dir / "initdb.pw"
    _write(pwfile, props["superuser_password"] + "\n", account)
    try:
        account.run([str(bindir / "initdb"), "-D", str(pgdata), "-U", _su(props)["user"],
                     f"--pwfile={pwfile}", "--auth-local=peer", "--auth-host=scram-sha-256",
                     "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions", *_no_sync(props)],
                    what=f"initdb of {label(_node(props))}", env={"LC_ALL": "C.UTF-8"})
    finally:
        pwfile.unlink(missing_ok=True)
    _write(pgdata / "pg_hba.conf",
           render_hba(superuser=_su(props)["user"], replication_user=_repl_user(props)), account)
    with open(pgdata / "postgresql.conf", "a") as conf:
        conf.write("\n# datakit's settings, last so they win over the lines above\n")
        conf.write(INCLUDE_LINE)


# --------------------------------------------------------------------------- replica


def create_replica(props: dict) -> dict:
    """A streaming replica of the live primary among `peers`: a slot named after the node,
    pg_basebackup -R -S as the replication role (password from a 0600 pgpass file), and
    ready when the primary shows it `streaming` under its name (application_name).
    Idempotent: an existing data dir is started as whatever it is now (`_resume`): after
    a failover this node may be the primary."""
    account = _account()
    node = _node(props)
    node_dir, pgdata, _, pgpass = _paths(props)
    bindir = bin_dir(props.get("version"))
    if not _running_postmaster(pgdata):
        process.require_free(node["port"], label(node))
    account.own(node_dir, 0o700)
    _write(pgpass, pgpass_line(_repl_user(props), props["replication_password"]), account)
    if (pgdata / "PG_VERSION").exists():
        return _resume(props)
    primary = _primary_of(props)
    try:
        slot = _ensure_slot(props, primary)
        shutil.rmtree(pgdata, ignore_errors=True)
        _basebackup(props, bindir, primary, slot, account)
        _write_conf(props)
        outs = _start(props)
        _wait_streaming(props, outs, primary)
        return {**outs, "slot": slot}
    except BaseException:
        _undo(props, drop_slot=True)
        raise


def _primary_of(props: dict) -> dict:
    peers = [p for p in props.get("peers") or [] if p.get("name") != props["name"]]
    primary = live_primary(peers, **_su(props))
    if primary is None:
        names = ", ".join(label(p) for p in peers) or "none given"
        raise DatakitError(f"{label(_node(props))}: no live primary to replicate from among "
                           f"its peers ({names}); start the primary first")
    return primary


def _basebackup(props: dict, bindir: Path, primary: dict, slot: str, account: RunAs) -> None:
    _, pgdata, _, pgpass = _paths(props)
    user = _repl_user(props)
    conninfo = f"application_name={props['name']}"
    try:
        account.run(
            [str(bindir / "pg_basebackup"), "-h", primary.get("host") or HOST,
             "-p", str(int(primary["port"])), "-U", user, "-d", conninfo, "-D", str(pgdata),
             "-R", "-S", slot, "-X", "stream", "-c", "fast", "-w", *_no_sync(props)],
            what=f"pg_basebackup of {label(_node(props))} from {label(primary)}",
            env={"PGPASSFILE": str(pgpass)}, timeout=600,
        )
    except DatakitError as exc:
        if "password authentication failed" in str(exc):
            raise DatakitError(
                f"{label(_node(props))}: {label(primary)} refused the password of the "
                f"replication role {user!r}: check replication_password in the stack's secrets"
            ) from None
        raise


def _wait_streaming(props: dict, outs: dict, primary: dict) -> None:
    name = props["name"]

    def streaming() -> bool:
        with connect(primary, **_su(props), timeout=2) as conn:
            return replication_state(conn, name) == "streaming"

    _wait(streaming, props, outs["pid"], outs["start_time"],
          what=f"{label(_node(props))} streaming from {label(primary)}")


# --------------------------------------------------------------------------- teardown


def stop(props: dict, outs: dict | None = None, *, sig: int = signal.SIGINT) -> None:
    """Stop the node (fast shutdown by default), found by pid + start time or by its
    data dir's postmaster.pid when it was restarted since `outs` were recorded."""
    outs = outs or {}
    if outs.get("pid"):
        process.stop(int(outs["pid"]), outs.get("start_time"), sig=sig, timeout=30)
    running = _running_postmaster(_paths(props)[1])
    if running:
        process.stop(running[0], running[1], sig=sig, timeout=30)


def kill(props: dict, outs: dict | None = None) -> None:
    """SIGKILL, as a failover drill does."""
    outs = outs or {}
    running = _running_postmaster(_paths(props)[1])
    if outs.get("pid"):
        process.kill(int(outs["pid"]), outs.get("start_time"))
    if running:
        process.kill(*running)


def start(props: dict, outs: dict | None = None) -> dict:
    """Start a stopped node from its data dir (whatever its role now); new outs."""
    if not (_paths(props)[1] / "PG_VERSION").exists():
        raise DatakitError(f"{label(_node(props))}: its data dir {_paths(props)[1]} is gone; "
                           "run `datakit up` to create the node again")
    _write_conf(props)
    new = _start(props)
    return {**(outs or {}), **new}


def delete(props: dict, outs: dict | None = None) -> None:
    """Stop the node, drop its replication slot on the live primary (if one answers),
    remove its directory. A node already gone is fine."""
    stop(props, outs)
    _drop_slot(props)
    shutil.rmtree(_paths(props)[0], ignore_errors=True)


def _drop_slot(props: dict) -> None:
    peers = [p for p in props.get("peers") or [] if p.get("name") != props["name"]]
    if not peers:
        return
    try:
        primary = live_primary(peers, **_su(props))
    except DatakitError:
        return
    if primary is None:
        return
    slot = slot_name(props["name"])
    deadline = time.monotonic() + 10
    with _admin(props, primary) as conn:
        while True:
            row = conn.execute("select active_pid from pg_replication_slots "
                               "where slot_name = %s", [slot]).fetchone()
            if row is None:
                return
            if row[0] is None:
                conn.execute("select pg_drop_replication_slot(%s)", [slot])
                return
            if time.monotonic() > deadline:  # a WAL sender still holds it: end it
                conn.execute("select pg_terminate_backend(%s)", [row[0]])
            time.sleep(0.05)


def _undo(props: dict, *, drop_slot: bool = False) -> None:
    """After a failed create: nothing half-done, but keep the log the error points to."""
    try:
        stop(props, None)
        if drop_slot:
            _drop_slot(props)
    except Exception:  # noqa: BLE001 - the original error is the one to report
        pass
    node_dir, pgdata, _, pgpass = _paths(props)
    shutil.rmtree(pgdata, ignore_errors=True)
    pgpass.unlink(missing_ok=True)


# --------------------------------------------------------------------------- health


def alive(props: dict, outs: dict) -> bool:
    """The recorded process runs (or one restarted on the same data dir)."""
    if outs.get("pid") and process.is_running(int(outs["pid"]), outs.get("start_time")):
        return True
    return _running_postmaster(_paths(props)[1]) is not None


def health(props: dict, outs: dict) -> dict:
    """Alive? accepting? and the live role, asked of the server."""
    result = {"name": props["name"], "port": int(props["port"]), "alive": alive(props, outs),
              "accepting": False, "role": None, "lsn": None, "error": None}
    if not result["alive"]:
        result["error"] = "not running"
        return result
    try:
        with connect(_node(props), **_su(props), timeout=2) as conn:
            in_recovery, lsn = conn.execute(
                "select pg_is_in_recovery(), case when pg_is_in_recovery() "
                "then coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) "
                "else pg_current_wal_lsn() end::text").fetchone()
    except (psycopg.Error, DatakitError) as exc:
        result["error"] = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        return result
    result.update(accepting=True, role="replica" if in_recovery else "primary", lsn=lsn)
    return result


# --------------------------------------------------------------------------- settings


def update(old_props: dict, outs: dict, new_props: dict) -> dict:
    """Apply changed settings: rewrite datakit.conf, reload, and restart only when a
    changed parameter is `postmaster` context (pg_settings.pending_restart). Also brings
    role passwords up to date on the live primary and the replica's pgpass. Returns outs
    with `applied` = {reloaded: [...], restarted: [...]}."""
    node = _node(new_props)
    old_set, new_set = old_props.get("settings") or {}, new_props.get("settings") or {}
    changed = sorted(k for k in set(old_set) | set(new_set) if old_set.get(k) != new_set.get(k))
    outs = dict(outs)
    if not alive(new_props, outs):
        raise DatakitError(f"{label(node)} is not running: run `datakit up --refresh` "
                           "to bring it back before changing its settings")
    _update_passwords(old_props, new_props)
    if not changed:
        return {**outs, "applied": {"reloaded": [], "restarted": []}}
    _write_conf(new_props, new_set)
    with _admin(new_props) as conn:
        loaded = conn.execute("select pg_conf_load_time()").fetchone()[0]
        conn.execute("select pg_reload_conf()")

    def reloaded():
        with connect(node, **_su(new_props), timeout=2) as fresh:
            return fresh.execute("select pg_conf_load_time() > %s", [loaded]).fetchone()[0]

    _wait(reloaded, new_props, outs["pid"], outs["start_time"],
          what=f"{label(node)} reloading its configuration", timeout=15)
    with connect(node, **_su(new_props)) as conn:
        pending = {r[0] for r in conn.execute(
            "select name from pg_settings where pending_restart").fetchall()}
    restarted = [k for k in changed if k in pending]
    if pending:
        stop(new_props, outs)
        outs.update(_resume(new_props))
    applied = {"reloaded": [k for k in changed if k not in pending], "restarted": restarted}
    return {**outs, "applied": applied}


def _update_passwords(old: dict, new: dict) -> None:
    repl_changed = old.get("replication_password") != new.get("replication_password")
    if repl_changed:
        _write(_paths(new)[3], pgpass_line(_repl_user(new), new["replication_password"]),
               _account())
    su_changed = old.get("superuser_password") != new.get("superuser_password")
    app_changed = old.get("app_password") != new.get("app_password")
    if not (su_changed or repl_changed or app_changed):
        return
    # Log in with the password the server still has; change it only on the primary.
    with _admin(old) as conn:
        if conn.execute("select pg_is_in_recovery()").fetchone()[0]:
            return
        if repl_changed:
            ensure_role(conn, _repl_user(new), new["replication_password"],
                        attributes="LOGIN REPLICATION")
        if app_changed and new.get("app_user"):
            ensure_role(conn, new["app_user"], new["app_password"])
        if su_changed:
            ensure_role(conn, _su(new)["user"], new["superuser_password"],
                        attributes="SUPERUSER LOGIN")
