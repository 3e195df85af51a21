"""Node control for the local substrate: a node is a native daemon on this host.

A daemon's working directory is its data dir (Redis chdirs into its node dir, Kafka is
started there), so its process is found by that, not by the pid in the outputs, which is
stale once a drill restarted it. PostgreSQL nodes (Patroni) and etcd members have their
own control (local_ha.py).
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

from datakit.errors import DatakitError
from datakit.nodes import process
from datakit.nodes import redis as rd
from datakit.nodes.readiness import wait_until


class LocalControl:
    """One local node (a stack outputs Node, control/__init__.py): status, stop, kill,
    start, pause, resume."""

    def __init__(self, node: Any, outputs: Any):
        self.node, self.outputs = node, outputs
        self.name, self.service = node.name, node.service
        self.data_dir = Path(node.handle.data_dir)
        self._argv: list[str] | None = None

    # ------------------------------------------------------------------ processes
    @property
    def _cwd(self) -> Path:
        return self.data_dir

    def pid(self) -> int | None:
        """The pid of the node's main process now, or None."""
        handle = self.node.handle
        if handle.pid and process.is_running(handle.pid, handle.start_time):
            return handle.pid
        want = self._cwd.resolve()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and process.cwd_of(int(entry.name)) == want:
                pid = int(entry.name)
                try:
                    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if process.cwd_of(ppid) != want and process.is_running(pid):
                    return pid
        return None

    def running(self) -> bool:
        """Its main process exists (a paused node counts)."""
        return self.pid() is not None

    def status(self) -> str:
        """"running" | "paused" (stopped by SIGSTOP) | "stopped" (no process)."""
        pid = self.pid()
        if pid is None:
            return "stopped"
        return "paused" if process.state(pid) in ("T", "t") else "running"

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
        started = process.start_time(pid)
        process.kill(pid, started)
        if self.service == "kafka":  # a killed JVM's threads hold its sockets a moment
            for port in (self.node.ports or {"client": self.node.port}).values():
                wait_until(lambda p=port: process.port_free(int(p), self.node.host),
                           what=f"port {port} of {self.name} to close", timeout=15)

    def pause(self) -> None:
        """SIGSTOP the node's whole process group: it keeps its sockets but does nothing
        until `resume`.
        Returns once the kernel shows it stopped (a signal is delivered, not awaited)."""
        self._signal_group(signal.SIGSTOP, paused=True)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT, paused=False)

    def _signal_group(self, sig: int, *, paused: bool) -> None:
        pid = self.pid()
        if pid is None:
            return
        # datakit starts each daemon in a session of its own, so its group is its pid
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
        wait_until(lambda: (process.state(pid) in ("T", "t")) == paused
                   or not process.is_running(pid),
                   what=f"{self.name} to be {'paused' if paused else 'resumed'}",
                   timeout=10, interval=0.001, max_interval=0.01)

    def stop(self) -> None:
        """A clean stop (SIGTERM); returns when the node is down."""
        pid = self.pid()
        if pid is None:
            return
        self._remember(pid)
        process.stop(pid, process.start_time(pid), sig=signal.SIGTERM, timeout=60)

    def start(self, *, replica_of: Any = None) -> None:
        """Start the node again on its data, as whatever role it has now (a Redis node:
        as the replica of `replica_of`, if given); returns when it answers (Redis: PING;
        Kafka: client port)."""
        if self.running():
            return
        if self.service == "redis":
            self._start_redis(replica_of=replica_of)
        else:
            getattr(self, f"_start_{self.service}")()

    def _start_redis(self, sentinel: bool = False, replica_of: Any = None) -> None:
        secrets = self.outputs.need_secrets().redis
        master = None if replica_of is None else {
            "name": replica_of.name, "host": replica_of.host, "port": replica_of.port}
        props = {"name": self.name, "host": self.node.host, "port": self.node.port,
                 "data_dir": str(self.data_dir),
                 "password": secrets.sentinel if sentinel else secrets.default,
                 "sentinel": sentinel, "replicaof": master}
        if files := getattr(self.node, "client_tls", None):  # readiness asked over TLS
            props["client_tls"] = files
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
        account = process.RunAs.service(user)
        return account.spawn(argv, log=log, cwd=str(self._cwd), address=self.node.host)

    def _wait_port(self, pid: int, timeout: float = 60.0) -> None:
        def accepts() -> bool:
            with socket.create_connection((self.node.host, self.node.port), 1):
                return True

        wait_until(accepts, what=f"{self.name} listening", timeout=timeout,
                   alive=lambda: None if process.is_running(pid) else
                   process.exit_reason(pid, None, self.data_dir / "logs" / "process.log"))
