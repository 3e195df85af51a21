"""librdkafka's log lines during a drill go to the run's clients.log and are counted for
the report, never to the terminal. A real librdkafka producer, configured as the drills'
clients are, is pointed at a loopback port nothing listens on: its reconnect failures are
the lines a lost broker causes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys


def _free_port() -> int:
    for port in range(64990, 64900, -1):  # above the ephemeral range, as the stacks' are
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 64900-64990")


PROBE = """
import json, sys, time
from pathlib import Path
from confluent_kafka import Producer
from datakit.drills import client_log

def producer():
    p = Producer({"bootstrap.servers": "127.0.0.1:%d", "logger": client_log.LOGGER,
                  "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 100})
    p.produce("t", b"v")
    for _ in range(10):
        p.poll(0.2)
    return p

producer()  # outside a capture: nowhere
with client_log.captured(Path(sys.argv[1])) as tally:
    producer()
print(json.dumps(tally.summary()))
"""


def test_librdkafka_lines_go_to_the_runs_log_and_are_counted(tmp_path):
    path = tmp_path / "clients.log"
    run = subprocess.run([sys.executable, "-c", PROBE % _free_port(), str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "rdkafka" not in run.stderr and "FAIL" not in run.stderr, run.stderr
    summary = json.loads(run.stdout)
    assert summary["lines"] >= 1 and summary["by_kind"].get("ERROR FAIL", 0) >= 1
    assert summary["file"] == str(path)
    text = path.read_text()
    assert "ERROR FAIL [rdkafka#producer-" in text and "Connection refused" in text
    assert text.count("\n") == summary["lines"]
