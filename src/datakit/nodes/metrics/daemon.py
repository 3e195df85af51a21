"""What the metrics daemons share: start one as its service user and wait until it answers
over HTTP, find it again by a flag only it has, stop it, and GET a URL of it.

Each daemon is identified by `marker`, one argument of its command line that no other
process can hold (its listen address, or its config file's path), so a daemon restarted
outside datakit, or recorded by an earlier run, is found again without a pid file.
"""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from datakit.errors import DatakitError
from datakit.nodes import process
from datakit.nodes.process import RunAs
from datakit.nodes.readiness import wait_until

HOST = "127.0.0.1"
START_TIMEOUT = 30.0


def get(url: str, *, timeout: float = 2.0) -> tuple[int, bytes]:
    """(HTTP status, body) of a GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def live(marker: str, outs: dict | None = None) -> tuple[int, int] | None:
    """(pid, start time) of the daemon: the recorded one if it still runs, else a process
    whose command line holds `marker`."""
    outs = outs or {}
    if outs.get("pid") and process.is_running(int(outs["pid"]), outs.get("start_time")):
        return int(outs["pid"]), int(outs.get("start_time") or 0)
    # NUL-terminated as in /proc/<pid>/cmdline: port 6349 must not match 63490
    return process.find_by_argument(marker + "\0")


def start(*, what: str, argv: list[str], marker: str, account: RunAs, log: Path,
          ready_url: str, env: dict[str, str] | None = None, cwd: Path,
          timeout: float = START_TIMEOUT) -> dict:
    """Spawn `argv` (unless a daemon with `marker` runs) and wait until `ready_url`
    answers 200; a daemon that exits first fails at once with its log's tail.
    Returns {pid, start_time, log_path, start_s}."""
    if running := live(marker):
        return {"pid": running[0], "start_time": running[1], "log_path": str(log),
                "start_s": 0.0}
    began = time.monotonic()
    pid = account.spawn(argv, log=log, env=env, cwd=str(cwd))
    started = process.start_time(pid)

    def answers() -> bool:
        status, body = get(ready_url, timeout=3.0)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
        return True

    try:
        wait_until(answers, what=what, timeout=timeout,
                   alive=lambda: process.exit_reason(pid, started, log))
    except BaseException:
        process.stop(pid, started, timeout=10)
        raise
    return {"pid": pid, "start_time": started, "log_path": str(log),
            "start_s": round(time.monotonic() - began, 3)}


def stop(marker: str, outs: dict | None = None, *, timeout: float = 10.0) -> None:
    """SIGTERM, SIGKILL after `timeout`; a daemon already gone is fine."""
    if running := live(marker, outs):
        process.stop(*running, timeout=timeout)


def kill(marker: str, outs: dict | None = None) -> None:
    """SIGKILL, as a drill does."""
    if running := live(marker, outs):
        process.kill(*running)


def remove_dir(root: Path, ours: set[str]) -> None:
    """Remove a daemon's dir if it holds only what datakit put there (`ours`)."""
    if not root.exists():
        return
    strangers = {p.name for p in root.iterdir()} - ours
    if strangers:
        raise DatakitError(f"not removing {root}: it holds {sorted(strangers)}, which "
                           "datakit did not create; remove it by hand")
    shutil.rmtree(root)


def rss_bytes(pid: int) -> int | None:
    """Resident memory of `pid` (VmRSS), for the benches' memory figures."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
