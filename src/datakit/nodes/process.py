"""Daemons that outlive `pulumi up`: start, identify, stop, and read their logs.

The Pulumi engine kills each plugin's process group on shutdown and reads its pipes until
they close, so a daemon gets a new session, no inherited pipes, and its own log file.
Servers refuse to run as root (PostgreSQL) or should not: when datakit runs as root, each
daemon runs as its service's unprivileged user.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from datakit.errors import DatakitError


@dataclass(frozen=True)
class RunAs:
    """The account a daemon runs as; `None` fields mean "the current user"."""

    name: str
    uid: int
    gid: int

    @classmethod
    def service(cls, user: str) -> RunAs:
        """`user` when running as root (it must exist), else the current user."""
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid())
            return cls(me.pw_name, me.pw_uid, me.pw_gid)
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise DatakitError(
                f"system user {user!r} does not exist: run tools/bootstrap, which creates it"
            ) from None
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def own(self, path: Path, mode: int = 0o700) -> Path:
        """Create `path` (and parents) owned by this account with `mode`."""
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        path.chmod(mode)
        return path

    def _as_me(self, argv: list[str]) -> list[str]:
        """`argv`, switched to this account by `setpriv` when datakit runs as root.

        Not Popen's `user=`/`group=`: those make Python fork() instead of vfork(), and a
        fork runs the pthread_atfork handlers of every library loaded, gRPC's among them
        (the engine, the automation API). gRPC restarts its poller thread in the child,
        `close_fds` then closes the poller's epoll descriptor under it, and the child can
        die before its exec. vfork runs no handlers; setpriv does the switch after exec.
        """
        if os.geteuid() == 0 and self.uid != 0:
            return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                    "--", *argv]
        return argv

    def run(self, argv: list[str], *, what: str, env: dict[str, str] | None = None,
            timeout: float = 120, cwd: str | None = None) -> str:
        """Run a short command as this account; a failure names `what` and its output."""
        proc = subprocess.run(
            self._as_me(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd or "/",
            env=_env(self, env), stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            out = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise DatakitError(f"{what} failed (exit {proc.returncode}): {' | '.join(out)}")
        return proc.stdout

    def spawn(self, argv: list[str], *, log: Path, env: dict[str, str] | None = None,
              cwd: str | None = None, address: str | None = None) -> int:
        """Start a daemon in its own session, output to `log`; return its pid. `address`: the
        node's own loopback address, which its connections then leave from (own_address)."""
        from datakit.nodes import own_address

        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            os.chown(log, self.uid, self.gid)
            proc = subprocess.Popen(
                own_address.command(address, self._as_me(argv)), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, close_fds=True, start_new_session=True,
                cwd=cwd or "/", env=_env(self, env),
            )
        _children.append(proc)
        return proc.pid


# Popen objects of daemons started by this process, kept so they can be reaped.
_children: list[subprocess.Popen] = []


def _env(account: RunAs, extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env.update(HOME=pwd.getpwuid(account.uid).pw_dir if account.uid else env.get("HOME", "/"),
               USER=account.name, LOGNAME=account.name)
    env.update(extra or {})
    return env


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if it is gone.

    Stored beside a pid so a recycled pid is never mistaken for our daemon.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z" and not _threads_left(pid):
        return None  # a zombie is dead for our purposes, once its threads are gone too
    return int(fields[19])


def state(pid: int) -> str | None:
    """The kernel's one-letter state of `pid` (R, S, D, T when stopped by a signal, Z...),
    or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def cwd_of(pid: int) -> Path | None:
    """The working directory of `pid`, or None if it is gone (or not ours to read)."""
    try:
        return Path(f"/proc/{pid}/cwd").resolve()
    except OSError:
        return None

def _threads_left(pid: int) -> bool:
    """A killed multithreaded server (a JVM, Redis) shows its main thread as a zombie while
    the other threads still unwind and hold its sockets: it is not gone until they are."""
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def is_running(pid: int, started: int | None = None) -> bool:
    """True when `pid` is alive and, if `started` is given, is the same process."""
    _reap()
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def stop(pid: int, started: int | None = None, *, timeout: float = 20.0,
         sig: int = signal.SIGTERM) -> None:
    """Send `sig`, wait up to `timeout`, then SIGKILL. A process already gone is fine."""
    if not is_running(pid, started):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(pid, started):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while is_running(pid, started):
        time.sleep(0.02)


def kill(pid: int, started: int | None = None) -> None:
    """SIGKILL, as a drill does: no chance to clean up."""
    if is_running(pid, started):
        os.kill(pid, signal.SIGKILL)
        while is_running(pid, started):
            time.sleep(0.01)


def kill_group(pid: int, started: int | None = None) -> None:
    """SIGKILL `pid` and, when it leads its process group (every daemon datakit starts
    does), everything in that group too: the children it started (a PostgreSQL's backends,
    a Patroni's pg_basebackup) die with it instead of writing on for a moment."""
    if not is_running(pid, started):
        return
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    kill(pid, started)


def await_gone_from(folder: Path, *, what: str, timeout: float = 30.0) -> None:
    """Wait until no process works in `folder` (its cwd there or below): a killed daemon's
    last children may still be writing its files."""
    want = folder.resolve()
    deadline = time.monotonic() + timeout
    while True:
        left = [e.name for e in Path("/proc").iterdir() if e.name.isdigit()
                and (cwd_of(int(e.name)) or Path("/")).is_relative_to(want)]
        if not left:
            return
        if time.monotonic() > deadline:
            raise DatakitError(f"{what}: processes {', '.join(left)} still work in {folder} "
                               f"after {timeout:g}s; stop them, then run the command again")
        time.sleep(0.05)


def _reap() -> None:
    for child in list(_children):
        if child.poll() is not None:
            _children.remove(child)


def find_by_argument(text: str) -> tuple[int, int] | None:
    """(pid, start time) of a live process with `text` in its command line, e.g. its config
    file's path: how a daemon restarted outside datakit (by a drill) is found again."""
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                started = start_time(int(entry.name))
                if started is not None:
                    return int(entry.name), started
        except OSError:
            continue
    return None


def exit_reason(pid: int, started: int | None, log: Path) -> str | None:
    """None while the daemon runs; else a reason with the tail of its log."""
    if is_running(pid, started):
        return None
    return f"process {pid} exited; last log lines:\n{log_tail(log)}\nfull log: {log}"


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def write_private(path: Path, text: str, account: RunAs) -> None:
    """Write `path` for `account` only (mode 0600, owned by it): files that hold passwords."""
    path.write_text(text)
    path.chmod(0o600)
    os.chown(path, account.uid, account.gid)

def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (a bind test, as the server would do)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free(port: int, what: str, host: str = "127.0.0.1") -> None:
    if not port_free(port, host):
        raise DatakitError(f"{what}: port {host}:{port} is already in use; "
                           "stop what holds it or choose another port in the stack config")
