"""A Kafka node's JVM: it formats its own storage (datakit's launcher), with no password on
a command line, and a replay of its command line (a drill's restart) serves without
formatting again; it maps the broker archive of tools/kafka/cds.py, and an archive that
does not fit (garbage, other jars) never stops a JVM."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from datakit.nodes import kafka, kafka_runtime, process
from datakit.nodes.readiness import wait_until
from datakit.toolchain import kafka_cds


@pytest.fixture(scope="module")
def single(new_cluster):
    cluster = new_cluster(1, heap_mb=256)
    cluster.start()
    return cluster


def test_node_formats_in_its_own_jvm_with_no_password_on_a_command_line(single):
    props, outs = single.nodes[0], single.outs[1]
    assert outs["formatted"] is True
    cmdline = Path(f"/proc/{outs['pid']}/cmdline").read_bytes()
    assert kafka_runtime.LAUNCHER.encode() in cmdline
    assert props["admin_password"].encode() not in cmdline
    assert props["app_password"].encode() not in cmdline
    assert not (Path(props["data_dir"]) / "format.args").exists()
    assert kafka.wait_cluster_ready(single.props)["brokers"] == [1]  # SCRAM users work


def test_replayed_command_line_serves_without_formatting_again(single):
    props, outs = single.nodes[0], single.outs[1]
    argv = Path(f"/proc/{outs['pid']}/cmdline").read_bytes().decode().split("\0")[:-1]
    meta = Path(props["data_dir"]) / "data" / "meta.properties"
    before = meta.read_text()
    kafka.kill_node(outs)
    # As LocalControl restarts a node a drill stopped: its own command line, run again.
    pid = process.RunAs.service("kafka").spawn(argv, log=Path(outs["log"]),
                                               cwd=props["data_dir"])
    single.outs[1] = {**outs, "pid": pid, "started": process.start_time(pid)}
    wait_until(lambda: not process.port_free(props["port"]), what="replayed node listening",
               timeout=90, alive=lambda: process.exit_reason(pid, None, Path(outs["log"])))
    assert kafka.wait_cluster_ready(single.props)["brokers"] == [1]
    assert meta.read_text() == before


def test_started_node_maps_the_broker_archive(kafka_home, single):
    node_home = kafka_runtime.home_for({"home": kafka_home})
    archive = kafka_cds.archive(node_home, "broker", kafka_runtime.java())
    assert archive is not None, f"no broker archive in {node_home}/cds"
    outs = single.outs[1]
    assert outs["cds"] == str(archive)
    assert str(archive) in Path(f"/proc/{outs['pid']}/maps").read_text()


def _random_uuid(archive: Path, classpath: str) -> subprocess.CompletedProcess:
    return subprocess.run([kafka_runtime.java(), f"-XX:SharedArchiveFile={archive}",
                           "-Xshare:auto", "-cp", classpath, "kafka.tools.StorageTool",
                           "random-uuid"], capture_output=True, text=True, timeout=120)


def test_unfit_archive_never_stops_a_jvm(kafka_home, tmp_path):
    home = Path(kafka_home)
    garbage = tmp_path / "garbage.jsa"
    garbage.write_bytes(b"\x00not an archive" * 4096)
    proc = _random_uuid(garbage, kafka_runtime.classpath(home))
    assert proc.returncode == 0 and len(proc.stdout.strip()) == 22, proc.stderr

    # A real archive, other jars: the classpath it was made for, in another order.
    archive = kafka_cds.archive(home, "format", kafka_runtime.java())
    assert archive is not None
    reordered = ":".join(reversed(kafka_runtime.classpath(home).split(":")))
    proc = _random_uuid(archive, reordered)
    assert proc.returncode == 0, proc.stderr
    assert "Unable to use shared archive" in proc.stdout  # refused, and said so
    assert len(proc.stdout.strip().splitlines()[-1]) == 22
