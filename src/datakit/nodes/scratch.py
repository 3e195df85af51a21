"""Scratch space on this host for work that starts its own PostgreSQL daemons (the
restore drills' restored server): directories owned by the PostgreSQL account, its tools,
a free loopback port, and the daemons it started, stopped by pid at cleanup."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

from datakit.errors import DatakitError
from datakit.nodes import process
from datakit.nodes.postgres_conf import bin_dir


class LocalScratch:
    """Drill-owned scratch space on the drill's host: directories owned by the
    PostgreSQL account, its tools, a free loopback port, and daemons it started."""

    def __init__(self, root: Path):
        self.account = process.RunAs.service("postgres")
        self.root = self.account.own(root, 0o700)
        self._daemons: list[tuple[int, int | None]] = []

    def dir(self, name: str) -> Path:
        return self.account.own(self.root / name, 0o700)

    def write(self, path: Path, text: str) -> Path:
        process.write_private(path, text, self.account)
        return path

    def tool(self, version: int, name: str) -> str:
        return str(bin_dir(version) / name)

    def run(self, argv: list[str], *, what: str, env: dict | None = None) -> str:
        return self.account.run(argv, what=what, env=env, timeout=600)

    def spawn(self, argv: list[str], *, log: Path, env: dict | None = None,
              cwd: Path | None = None) -> int:
        pid = self.account.spawn(argv, log=log, env=env, cwd=str(cwd or self.root))
        self._daemons.append((pid, process.start_time(pid)))
        return pid

    def alive(self, pid: int) -> bool:
        return process.is_running(pid)

    def free_port(self, start: int = 65000, end: int = 65500) -> int:
        for port in range(start, end):
            if process.port_free(port):
                return port
        raise DatakitError(f"no free loopback port in {start}-{end} for a restore")

    def stop(self, pid: int, sig: int = signal.SIGINT) -> None:
        for known, started in self._daemons:
            if known == pid:
                process.stop(pid, started, sig=sig, timeout=30)

    def cleanup(self, keep: bool = False) -> None:
        for pid, started in self._daemons:
            process.stop(pid, started, sig=signal.SIGINT, timeout=30)
        self._daemons.clear()
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)
