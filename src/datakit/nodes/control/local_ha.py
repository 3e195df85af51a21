"""Node control for the local substrate's members of a cluster that heals itself: a
PostgreSQL node (Patroni and the postmaster it runs) and an etcd member.

A PostgreSQL node is two process groups: Patroni's, and the postmaster's, which Patroni
starts in a session of its own. `kill` is a node lost (both, Patroni first so it cannot
restart the postmaster); `kill_postmaster` is a crash Patroni sees and handles; `stop` is
Patroni's clean stop (a leader hands its key over); `start` starts Patroni again on its
patroni.yml, and Patroni brings the node back as whatever the cluster needs (pg_rewind
for a former leader). Both are found by their files, never by a pid in the outputs,
which is stale once Patroni or a drill restarted them.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from datakit.nodes import etcd, patroni, process
from datakit.nodes.control.local import LocalControl
from datakit.nodes.executables import venv_program
from datakit.nodes.patroni_conf import paths
from datakit.nodes.readiness import wait_until


def _groups(pids: list[int], sig: int, *, paused: bool, what: str) -> None:
    """Signal each process's group (each daemon leads its own session); wait until the
    kernel shows every one stopped or running again."""
    for pid in pids:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    wait_until(lambda: all((process.state(p) in ("T", "t")) == paused
                           or not process.is_running(p) for p in pids),
               what=f"{what} to be {'paused' if paused else 'resumed'}", timeout=10,
               interval=0.001, max_interval=0.01)


class PatroniControl(LocalControl):
    """A PostgreSQL node run by Patroni."""

    @property
    def props(self) -> dict:
        # client_tls: its REST API is asked over TLS, with the kit's certificate.
        tls = {"client_tls": t} if (t := getattr(self.node, "client_tls", None)) else {}
        return {"name": self.name, "port": self.node.port, "rest_port": self.node.rest_port,
                "host": self.node.host, "data_dir": str(self.data_dir), **tls}

    def pid(self) -> int | None:
        """Patroni's pid now (a node whose Patroni is gone counts as stopped)."""
        found = patroni.patroni_process(self.props)
        return found[0] if found else None

    def postmaster_pid(self) -> int | None:
        found = patroni.postmaster(self.props)
        return found[0] if found else None

    def kill(self) -> None:
        """The node lost: SIGKILL Patroni, then its postmaster; returns when both are gone."""
        patroni.kill(self.props)

    def kill_postmaster(self) -> None:
        """A crash of PostgreSQL alone: SIGKILL the postmaster; Patroni stays and acts."""
        patroni.kill(self.props, postmaster_only=True)

    def stop(self) -> None:
        patroni.stop(self.props)

    def pause(self) -> None:
        pids = [p for p in (self.pid(), self.postmaster_pid()) if p]
        if pids:
            _groups(pids, signal.SIGSTOP, paused=True, what=self.name)
        self._paused = pids

    def resume(self) -> None:
        pids = [p for p in getattr(self, "_paused", []) if process.is_running(p)]
        if pids:
            _groups(pids, signal.SIGCONT, paused=False, what=self.name)

    def start(self, *, replica_of=None) -> None:
        """Start Patroni again on its patroni.yml; returns when the member serves (the
        leader running, or a replica streaming: after pg_rewind for a former leader)."""
        props = self.props
        if self.running():
            return
        node = paths(props)
        account = patroni.account()
        pid = account.spawn([str(venv_program("patroni", account)), str(node["config"])],
                            log=node["log"], cwd=str(node["root"]), address=self.node.host)
        patroni.wait_member(props, {"pid": pid, "start_time": process.start_time(pid)})


class EtcdControl(LocalControl):
    """An etcd member: one process, started again on its own config file."""

    @property
    def props(self) -> dict:
        tls = {"client_tls": t} if (t := getattr(self.node, "client_tls", None)) else {}
        return {"name": self.name, "port": self.node.port,
                "peer_port": (self.node.ports or {}).get("peer", 0),
                "host": self.node.host, "data_dir": str(self.data_dir), **tls}

    def pid(self) -> int | None:
        found = etcd.live(self.props)
        return found[0] if found else None

    def kill(self) -> None:
        etcd.kill(self.props)

    def stop(self) -> None:
        etcd.stop(self.props)

    def start(self, *, replica_of=None) -> None:
        """Start the member again on its data; returns when it listens (it serves once a
        majority of the cluster runs)."""
        if self.running():
            return
        conf = Path(self.data_dir) / "etcd.yml"
        account = process.RunAs.service("etcd")
        pid = account.spawn([str(venv_program("etcd", account)), "--config-file", str(conf)],
                            log=Path(self.data_dir) / "etcd.log", cwd=str(self.data_dir),
                            address=self.node.host)

        def listening() -> bool:
            with socket.create_connection((self.node.host, self.node.port), timeout=1):
                return True

        wait_until(listening, what=f"etcd member {self.name} listening", timeout=30,
                   alive=lambda: process.exit_reason(pid, None,
                                                     Path(self.data_dir) / "etcd.log"))
