"""`datakit logs NODE [-f]` reads a node's log files where its handle in the stack outputs
says they are. The outputs come from $DATAKIT_OUTPUTS_FILE (no stack is up): the nodes'
folders are made here, with log files written as the daemons would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.stack_outputs import raw

DATAKIT = str(Path(sys.executable).parent / "datakit")


def _node(name: str, service: str, root: Path, log: str) -> dict:
    return {"service": service, "role": "primary", "name": name, "host": "127.0.0.1",
            "port": 1, "testinfra": "local://",
            "handle": {"kind": "local", "data_dir": str(root / name),
                       "log": str(root / name / log)}}


@pytest.fixture
def outputs_file(tmp_path):
    (tmp_path / "pg-1").mkdir()
    (tmp_path / "pg-1" / "patroni.log").write_text("".join(f"pg line {i}\n" for i in range(50)))
    (tmp_path / "kafka-1" / "logs").mkdir(parents=True)
    (tmp_path / "kafka-1" / "logs" / "process.log").write_text("started\n")
    (tmp_path / "kafka-1" / "logs" / "server.log").write_text("a\nb\nc\n")
    doc = raw({"nodes": [_node("pg-1", "postgres", tmp_path, "patroni.log"),
                         _node("kafka-1", "kafka", tmp_path, "logs/process.log")]})
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(doc))
    return path


def _logs(outputs_file: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATAKIT_OUTPUTS_FILE": str(outputs_file)}
    return subprocess.run([DATAKIT, "logs", *args], capture_output=True, text=True,
                          env=env, timeout=30)


def test_the_last_lines_of_a_nodes_log(outputs_file):
    run = _logs(outputs_file, "pg-1", "-n", "2")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "pg line 48\npg line 49\n"


def test_every_log_file_of_a_node_with_several(outputs_file):
    run = _logs(outputs_file, "kafka-1", "--json", "-n", "2")
    files = json.loads(run.stdout)["files"]
    assert [Path(p).name for p in files] == ["process.log", "server.log"]
    assert list(files.values()) == [["started"], ["b", "c"]]


def test_follow_prints_what_the_node_writes_next(outputs_file):
    env = {**os.environ, "DATAKIT_OUTPUTS_FILE": str(outputs_file)}
    log = outputs_file.parent / "pg-1" / "patroni.log"
    proc = subprocess.Popen([DATAKIT, "logs", "pg-1", "-n", "0", "--follow"], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # tail is following the file once it has opened it
        with open(log, "a") as f:
            f.write("a new line\n")
        assert proc.stdout.readline() == "a new line\n"
    finally:
        proc.kill()
        proc.wait()


def test_an_unknown_node_is_refused_naming_the_nodes(outputs_file):
    run = _logs(outputs_file, "pg-9")
    assert run.returncode == 1
    assert "no node 'pg-9': choose one of pg-1, kafka-1" in run.stderr


def test_follow_cannot_be_json(outputs_file):
    run = _logs(outputs_file, "pg-1", "--follow", "--json")
    assert run.returncode == 1 and "drop --follow or --json" in json.loads(run.stdout)["error"]
