"""Daemons started by datakit run as their service account, in their own session."""

import os
from pathlib import Path

import pytest

from datakit.nodes import process
from datakit.nodes.process import RunAs
from datakit.nodes.readiness import wait_until


@pytest.mark.skipif(os.geteuid() != 0, reason="switching accounts needs root")
def test_spawned_daemon_runs_as_the_account_without_our_groups(tmp_path):
    nobody = RunAs("nobody", 65534, 65534)
    log = tmp_path / "sleep.log"
    pid = nobody.spawn(["sleep", "30"], log=log)
    try:
        # setpriv switches, then execs: wait for the server itself
        wait_until(lambda: os.readlink(f"/proc/{pid}/exe").endswith("/sleep"),
                   what="sleep started", timeout=5)
        status = dict(line.split(":", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines())
        assert status["Uid"].split()[:2] == ["65534", "65534"]
        assert status["Gid"].split()[:2] == ["65534", "65534"]
        assert status["Groups"].strip() == ""
        assert os.getsid(pid) == pid  # its own session: the engine's group kill misses it
    finally:
        process.stop(pid)
    assert not process.is_running(pid)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching accounts needs root")
def test_a_failing_command_names_what_failed():
    nobody = RunAs("nobody", 65534, 65534)
    with pytest.raises(process.DatakitError, match="touching /root failed"):
        nobody.run(["touch", "/root/datakit-must-not-write-here"], what="touching /root")
