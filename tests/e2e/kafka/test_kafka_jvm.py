"""Kafka's JVMs and the class-data archives of tools/kafka/cds.py: a started node maps the
broker archive, and an archive that does not fit (garbage, other jars) never stops a JVM."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from datakit.nodes import kafka_runtime
from datakit.toolchain import kafka_cds


@pytest.fixture(scope="module")
def single(new_cluster):
    cluster = new_cluster(1, heap_mb=256)
    cluster.start()
    return cluster


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
