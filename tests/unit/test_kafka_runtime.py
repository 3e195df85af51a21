"""A Kafka JVM's command line and its class-data archives: the archive is asked for only
when it exists and is wanted, the classpath has one order (the launcher last), a small
heap runs C1 only, the launcher formats only when asked, and a node's copy of the prefix
gets new archives whole (a JVM mapping the old one keeps it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from datakit.nodes import kafka, kafka_runtime
from datakit.toolchain import kafka_cds


@pytest.fixture
def home(tmp_path) -> Path:
    prefix = tmp_path / "kafka-9.9.9"
    (prefix / "libs").mkdir(parents=True)
    for jar in ("b.jar", "a.jar", "kafka_2.13-9.9.9.jar"):
        (prefix / "libs" / jar).write_bytes(b"")
    (prefix / ".datakit-build").write_text("abc123\n")
    return prefix


def _archive(home: Path, role: str = "broker", data: bytes = b"jsa") -> Path:
    path = kafka_cds.archive_path(home, role, kafka_runtime.java())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _command(home: Path, extra: list[str] | None = None) -> list[str]:
    return kafka_runtime.command(home, "kafka.Kafka", ["server.properties"], role="broker",
                                 logs=home / "logs", memory=["-Xmx512m"], extra=extra)


def test_archive_is_keyed_by_kafka_build_and_jvm(home):
    java = kafka_runtime.java()
    path = kafka_cds.archive_path(home, "format", java)
    assert path.name == "format.jsa"
    assert path.parent.name == f"abc123-{kafka_cds.runtime_version(java)}"
    said = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    assert f"(build {kafka_cds.runtime_version(java)})" in said  # the release file agrees


def test_command_maps_the_archive_only_when_there_is_one(home):
    assert not [a for a in _command(home) if "SharedArchiveFile" in a]
    archive = _archive(home)
    argv = _command(home)
    assert f"-XX:SharedArchiveFile={archive}" in argv and "-Xshare:auto" in argv
    assert argv.index("-Xshare:auto") < argv.index("kafka.Kafka")


def test_no_archive_when_turned_off_or_while_one_is_made(home, monkeypatch):
    _archive(home)
    dumping = _command(home, extra=["-XX:ArchiveClassesAtExit=/tmp/x.jsa"])
    assert not [a for a in dumping if "SharedArchiveFile" in a]
    monkeypatch.setenv("DATAKIT_KAFKA_CDS", "off")
    assert not [a for a in _command(home) if "SharedArchiveFile" in a]


def test_empty_archive_is_not_used(home):
    _archive(home, data=b"")
    assert not [a for a in _command(home) if "SharedArchiveFile" in a]


def test_classpath_lists_every_jar_sorted(home):
    cp = _command(home)[_command(home).index("-cp") + 1].split(":")
    assert [Path(p).name for p in cp] == ["a.jar", "b.jar", "kafka_2.13-9.9.9.jar"]


def test_copy_gets_new_archives_whole_and_old_mappings_keep_theirs(home, tmp_path):
    target = tmp_path / "copy"
    source = _archive(home, data=b"first")
    kafka_runtime._sync_archives(home, target)
    copied = target / source.relative_to(home)
    assert copied.read_bytes() == b"first"
    with open(copied, "rb") as held:  # as a JVM holds its mapping
        fresh = source.with_suffix(".tmp")
        fresh.write_bytes(b"second, longer")
        fresh.replace(source)
        kafka_runtime._sync_archives(home, target)
        assert copied.read_bytes() == b"second, longer"
        assert held.read() == b"first"
    assert sorted(p.name for p in copied.parent.iterdir()) == ["broker.jsa"]


def _node_argv(home: Path, tmp_path: Path, **extra) -> list[str]:
    props = {"home": str(home), "run_as": "root", "node_id": 1,
             "data_dir": str(tmp_path / "node"), "heap_mb": 512}
    format_file = extra.pop("format_file", None)
    return kafka.jvm_args({**props, **extra}, format_file=format_file)


def test_small_heaps_run_c1_only_and_larger_ones_the_full_jit(home, tmp_path):
    assert "-XX:TieredStopAtLevel=1" in _node_argv(home, tmp_path)
    assert "-XX:TieredStopAtLevel=1" not in _node_argv(home, tmp_path, heap_mb=2048)


def test_node_formats_in_its_jvm_only_when_asked(home, tmp_path):
    jar = home / "datakit" / "kafka-node.jar"
    jar.parent.mkdir()
    jar.write_bytes(b"")
    plain = _node_argv(home, tmp_path)
    assert plain[-2] == "kafka.Kafka"
    assert plain[plain.index("-cp") + 1].endswith(f":{jar}")  # the launcher last
    args_file = tmp_path / "node" / "format.args"
    formatting = _node_argv(home, tmp_path, format_file=args_file)
    assert formatting[-4:-1] == [kafka_runtime.LAUNCHER, "--format", str(args_file)]
    assert formatting[-1] == plain[-1] == str(tmp_path / "node" / "server.properties")
