"""Node control for drills: kill, stop, start a node, and the few host-side acts a
PostgreSQL rejoin needs (pg_rewind, standby files), keyed by the node's handle kind.

Drills talk to nodes through `control_for(node, outputs)` only, so they run unchanged on
any substrate that implements this small contract (as a testinfra backend does for
checks). `local` is the one implemented here: native daemons found by their data dir.
A `docker` control would stop/kill/start containers by name and run pg_rewind with
`docker exec`; it is not written yet and says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Protocol

from datakit.errors import DatakitError
from datakit.nodes.readiness import NotReady, wait_until


class NodeControl(Protocol):
    name: str
    service: str

    def running(self) -> bool: ...
    def kill(self) -> None: ...
    def stop(self) -> None: ...
    def start(self) -> None: ...


def control_for(node: dict, outputs: dict) -> Any:
    kind = (node.get("handle") or {}).get("kind")
    if kind == "local":
        return LocalControl(node, outputs)
    raise DatakitError(f"node {node['name']}: drills cannot control nodes of substrate "
                       f"{kind!r} yet (only 'local'); run the drill on a local stack")


def _proc_cwd(pid: int) -> Path | None:
    try:
        return Path(f"/proc/{pid}/cwd").resolve()
    except OSError:
        return None


class LocalControl:
    """A local node: a daemon whose working directory is its data dir (PostgreSQL chdirs
    into pgdata, Redis into its node dir, Kafka is started there). The process is found
    by that, not by the pid in the outputs, which is stale once a drill restarted it."""

    def __init__(self, node: dict, outputs: dict):
        from datakit.nodes import process

        self._process = process
        self.node, self.outputs = node, outputs
        self.name, self.service = node["name"], node["service"]
        self.data_dir = Path(node["handle"]["data_dir"])
        self._argv: list[str] | None = None

    # ------------------------------------------------------------------ processes
    @property
    def _cwd(self) -> Path:
        return self.data_dir / "pgdata" if self.service == "postgres" else self.data_dir

    def pid(self) -> int | None:
        """The pid of the node's main process now, or None."""
        handle = self.node["handle"]
        if handle.get("pid") and self._process.is_running(int(handle["pid"]),
                                                          handle.get("start_time")):
            return int(handle["pid"])
        want = self._cwd.resolve()
        if self.service == "postgres":
            try:
                pid = int((self._cwd / "postmaster.pid").read_text().split("\n", 1)[0])
            except (OSError, ValueError):
                return None
            return pid if _proc_cwd(pid) == want and self._process.is_running(pid) else None
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _proc_cwd(int(entry.name)) == want:
                pid = int(entry.name)
                try:
                    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if _proc_cwd(ppid) != want and self._process.is_running(pid):
                    return pid
        return None

    def running(self) -> bool:
        return self.pid() is not None

    def _remember(self, pid: int) -> None:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            self._argv = [a.decode() for a in argv if a]
        except OSError:
            pass

    def kill(self) -> None:
        """SIGKILL the node, as a crash; returns when it is gone."""
        pid = self.pid()
        if pid is None:
            return
        self._remember(pid)
        started = self._process.start_time(pid)
        self._process.kill(pid, started)
        if self.service == "kafka":  # a killed JVM's threads hold its sockets a moment
            for port in (self.node.get("ports") or {"client": self.node["port"]}).values():
                wait_until(lambda p=port: self._process.port_free(int(p)),
                           what=f"port {port} of {self.name} to close", timeout=15)

    def freeze(self) -> None:
        """SIGSTOP the node's whole process group (a PostgreSQL standby's WAL receiver is a
        child of its postmaster): it keeps its sockets but does nothing until `thaw`."""
        self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_group(signal.SIGCONT)

    def _signal_group(self, sig: int) -> None:
        pid = self.pid()
        if pid is None:
            return
        # datakit starts each daemon in a session of its own, so its group is its pid
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)

    def stop(self) -> None:
        """A clean stop (PostgreSQL: fast shutdown, which sends all WAL to the standbys)."""
        pid = self.pid()
        if pid is None:
            return
        self._remember(pid)
        sig = signal.SIGINT if self.service == "postgres" else signal.SIGTERM
        self._process.stop(pid, self._process.start_time(pid), sig=sig, timeout=60)

    def start(self, *, replica_of: dict | None = None) -> None:
        """Start the node again on its data, as whatever role it has now (a Redis node:
        as the replica of `replica_of`, if given); returns when it answers (PostgreSQL:
        accepts connections; Redis: PING; Kafka: client port)."""
        if self.running():
            return
        if self.service == "redis":
            self._start_redis(replica_of=replica_of)
        else:
            getattr(self, f"_start_{self.service}")()

    def _start_postgres(self) -> None:
        from datakit.nodes.postgres_conf import bin_dir

        version = int((self._cwd / "PG_VERSION").read_text().strip())
        self._await_reaped()
        pid = self._spawn("postgres", [str(bin_dir(version) / "postgres"), "-D",
                                       str(self._cwd)], log=self.data_dir / "postgres.log")
        self._wait_port(pid)

    def _await_reaped(self, timeout: float = 15.0) -> None:
        """A killed postmaster stays a zombie until init reaps it, and PostgreSQL takes its
        socket lock file for live while that pid exists: wait for the pid to go. (Measured
        times are not affected: this runs only when the node is started again.)"""
        for lock in self.data_dir.glob(".s.PGSQL.*.lock"):
            try:
                pid = int(lock.read_text().split("\n", 1)[0])
            except (OSError, ValueError):
                continue
            # A pid reused by another process never goes: then PostgreSQL says so itself.
            with contextlib.suppress(NotReady):
                wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists(),
                           what=f"the old postmaster {pid} of {self.name} to be reaped",
                           timeout=timeout)

    def _start_redis(self, sentinel: bool = False, replica_of: dict | None = None) -> None:
        from datakit.nodes import redis as rd

        password = self.outputs["secrets"]["redis"]["sentinel" if sentinel else "default"]
        props = {"name": self.name, "port": self.node["port"], "data_dir": str(self.data_dir),
                 "password": password, "sentinel": sentinel, "replicaof": replica_of}
        rd.start(props)

    def _start_sentinel(self) -> None:
        self._start_redis(sentinel=True)

    def _start_kafka(self) -> None:
        if not self._argv:
            raise DatakitError(f"{self.name}: no command line remembered to restart it "
                               "(datakit restarts only Kafka nodes it stopped itself)")
        pid = self._spawn("kafka", self._argv, log=self.data_dir / "logs" / "process.log")
        self._wait_port(pid, timeout=90)

    def _spawn(self, user: str, argv: list[str], log: Path) -> int:
        account = self._process.RunAs.service(user)
        return account.spawn(argv, log=log, cwd=str(self._cwd))

    def _wait_port(self, pid: int, timeout: float = 60.0) -> None:
        import socket

        def accepts() -> bool:
            with socket.create_connection((self.node["host"], int(self.node["port"])), 1):
                return True

        wait_until(accepts, what=f"{self.name} listening", timeout=timeout,
                   alive=lambda: None if self._process.is_running(pid) else
                   self._process.exit_reason(pid, None, self.data_dir / "postgres.log"
                                             if self.service == "postgres" else
                                             self.data_dir / "logs" / "process.log"))

    # ------------------------------------------------------------- PostgreSQL rejoin
    def rewind_as_standby(self, source: dict, *, conninfo: str, slot: str) -> str:
        """Make a stopped former primary a standby of `source`: pg_rewind (it runs crash
        recovery first when the node was killed), then this node's own settings file back
        (pg_rewind copies the source's), primary_conninfo and slot, standby.signal.
        Returns pg_rewind's last line."""
        from datakit.nodes.postgres_conf import CONF_NAME, bin_dir, pgpass_line

        if self.running():
            raise DatakitError(f"{self.name}: stop it before pg_rewind")
        pgdata = self._cwd
        # A killed postmaster's backends exit only when they notice; until then (and
        # while its postmaster.pid names a live, maybe recycled, pid) a single-user
        # crash recovery refuses the directory. Wait for them, then drop the stale file.
        want = pgdata.resolve()
        wait_until(lambda: not any(e.name.isdigit() and _proc_cwd(int(e.name)) == want
                                   for e in Path("/proc").iterdir()),
                   what=f"every process of the killed {self.name} to exit", timeout=60)
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
        account = self._process.RunAs.service("postgres")
        secrets = self.outputs["secrets"]["postgres"]
        version = int((pgdata / "PG_VERSION").read_text().strip())
        own_conf = (pgdata / CONF_NAME).read_text()
        # The replication password file the WAL receiver reads (a made-as-primary node
        # has none yet), and a superuser one for pg_rewind, removed after.
        pgpass = self.data_dir / "pgpass"
        _write_private(pgpass, pgpass_line("replicator", secrets["replication"]), account)
        su_pass = self.data_dir / "drill-rewind.pgpass"
        _write_private(su_pass, pgpass_line("postgres", secrets["superuser"]), account)
        try:
            out = account.run(
                [str(bin_dir(version) / "pg_rewind"), "-D", str(pgdata),
                 f"--source-server=host={source['host']} port={source['port']} "
                 "user=postgres dbname=postgres", "--progress"],
                what=f"pg_rewind of {self.name} from {source['name']}",
                env={"PGPASSFILE": str(su_pass)}, timeout=300)
        finally:
            su_pass.unlink(missing_ok=True)
        _write_private(pgdata / CONF_NAME, own_conf, account)
        auto = pgdata / "postgresql.auto.conf"
        kept = [line for line in (auto.read_text().splitlines() if auto.exists() else [])
                if line.split("=", 1)[0].strip() not in ("primary_conninfo",
                                                         "primary_slot_name")]
        kept += [f"primary_conninfo = '{conninfo.replace(chr(39), chr(39) * 2)}'",
                 f"primary_slot_name = '{slot}'"]
        _write_private(auto, "\n".join(kept) + "\n", account)
        _write_private(pgdata / "standby.signal", "", account)
        lines = [x for x in out.strip().splitlines() if x.strip()]
        return lines[-1] if lines else "done"

    @property
    def pgpass_path(self) -> str:
        return str(self.data_dir / "pgpass")


def _write_private(path: Path, text: str, account) -> None:
    path.write_text(text)
    path.chmod(0o600)
    os.chown(path, account.uid, account.gid)


class LocalScratch:
    """Drill-owned scratch space on the drill's host: directories owned by the
    PostgreSQL account, its tools, a free loopback port, and daemons it started."""

    def __init__(self, root: Path):
        from datakit.nodes import process

        self._process = process
        self.account = process.RunAs.service("postgres")
        self.root = self.account.own(root, 0o700)
        self._daemons: list[tuple[int, int | None]] = []

    def dir(self, name: str) -> Path:
        return self.account.own(self.root / name, 0o700)

    def write(self, path: Path, text: str) -> Path:
        _write_private(path, text, self.account)
        return path

    def tool(self, version: int, name: str) -> str:
        from datakit.nodes.postgres_conf import bin_dir

        return str(bin_dir(version) / name)

    def run(self, argv: list[str], *, what: str, env: dict | None = None) -> str:
        return self.account.run(argv, what=what, env=env, timeout=600)

    def spawn(self, argv: list[str], *, log: Path, env: dict | None = None,
              cwd: Path | None = None) -> int:
        pid = self.account.spawn(argv, log=log, env=env, cwd=str(cwd or self.root))
        self._daemons.append((pid, self._process.start_time(pid)))
        return pid

    def alive(self, pid: int) -> bool:
        return self._process.is_running(pid)

    def free_port(self, start: int = 65000, end: int = 65500) -> int:
        for port in range(start, end):
            if self._process.port_free(port):
                return port
        raise DatakitError(f"no free loopback port in {start}-{end} for a restore")

    def stop(self, pid: int, sig: int = signal.SIGINT) -> None:
        for known, started in self._daemons:
            if known == pid:
                self._process.stop(pid, started, sig=sig, timeout=30)

    def cleanup(self, keep: bool = False) -> None:
        for pid, started in self._daemons:
            self._process.stop(pid, started, sig=signal.SIGINT, timeout=30)
        self._daemons.clear()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)


def wait(probe, *, what: str, timeout: float = 60.0, interval: float = 0.02):
    """readiness.wait_until with a short poll: drills time what they wait for."""
    return wait_until(probe, what=what, timeout=timeout, interval=interval, max_interval=0.1)


def sleep(seconds: float) -> None:
    time.sleep(seconds)
