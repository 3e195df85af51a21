"""Build the class-data-sharing (AppCDS) archives of a Kafka prefix, once per Kafka build
and JVM: tools/bootstrap runs it after tools/build-kafka.

    .venv/bin/python tools/kafka/cds.py PREFIX [--force] [--base-port 62950]

A throwaway one-node KRaft cluster in a temporary directory is formatted with
`-XX:ArchiveClassesAtExit` (the format archive), started the same way (the broker
archive), made to do a broker's first work (quorum, SCRAM logins, a topic, produce,
consume in a group) and stopped gracefully, which is when the JVM writes its archive.
Each archive must then map with `-Xshare:on` before it is put in place, whole, by rename:
<PREFIX>/cds/<build stamp>-<JVM version>/{broker,format}.jsa (see datakit.nodes.kafka_runtime).

Idempotent: a stamp (this script and the Kafka build) beside the archives makes a rerun
a check. Ports: two free ones from --base-port up; data under /tmp, removed afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from datakit.errors import DatakitError
from datakit.nodes import kafka, kafka_runtime, process
from datakit.nodes.process import RunAs
from datakit.toolchain import kafka_cds

ROLES = kafka_cds.ROLES
MESSAGES = 200


def stamp_text(prefix: Path) -> str:
    build = prefix / ".datakit-build"
    made_by = Path(__file__).read_bytes() + (build.read_bytes() if build.exists() else b"")
    return hashlib.sha256(made_by).hexdigest()[:16]


def up_to_date(prefix: Path, java_bin: str) -> bool:
    folder = kafka_cds.archive_path(prefix, "broker", java_bin).parent
    stamp = folder / "stamp"
    return (stamp.exists() and stamp.read_text().strip() == stamp_text(prefix)
            and all(kafka_cds.archive(prefix, role, java_bin) for role in ROLES))


def free_ports(base: int, count: int = 2) -> list[int]:
    found = [p for p in range(base, min(base + 200, 65536)) if process.port_free(p)]
    if len(found) < count:
        raise DatakitError(f"cds: no {count} free ports from {base}: pass --base-port")
    return found[:count]


def exercise(cluster: dict) -> None:
    """A broker's first work, so that its classes are in the archive."""
    from confluent_kafka import Consumer, Producer

    kafka.ensure_topic({**cluster, "name": "cds.warmup", "partitions": 3,
                        "replication_factor": 1, "min_insync_replicas": 1})
    producer = Producer({**kafka.client_config(cluster), "acks": "all"})
    for i in range(MESSAGES):
        producer.produce("cds.warmup", value=b"x" * 100, key=str(i).encode())
    if producer.flush(30):
        raise DatakitError("cds: the warm-up broker did not take every message")
    consumer = Consumer({**kafka.client_config(cluster), "group.id": "cds.warmup",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 1000})
    consumer.subscribe(["cds.warmup"])
    seen, deadline = 0, time.monotonic() + 60
    while seen < MESSAGES and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            seen += 1
    if seen:
        consumer.commit(asynchronous=False)
    consumer.close()
    if seen < MESSAGES:
        raise DatakitError(f"cds: consumed {seen} of {MESSAGES} warm-up messages")


def train(prefix: Path, work: Path, base_port: int) -> dict[str, Path]:
    """Run the throwaway node; return the archives it wrote (in `work`)."""
    account = RunAs.service("kafka")
    dumps = account.own(work / "dumps", 0o755)
    port, controller = free_ports(base_port)
    creds = {"admin_user": "admin", "admin_password": secrets.token_hex(12),
             "app_user": "app", "app_password": secrets.token_hex(12)}
    voters = [{"id": 1, "host": "127.0.0.1", "port": controller}]
    node = {"home": str(prefix), "node_id": 1, "host": "127.0.0.1", "port": port,
            "controller_port": controller, "voters": voters,
            "cluster_id": kafka.new_cluster_id(), "data_dir": str(work / "node"),
            "heap_mb": 512, **creds,
            "jvm_options": [f"-XX:ArchiveClassesAtExit={dumps / 'broker.jsa'}"],
            "format_jvm_options": [f"-XX:ArchiveClassesAtExit={dumps / 'format.jsa'}"]}
    cluster = {"brokers": [{"id": 1, "host": "127.0.0.1", "port": port}],
               "controllers": voters, **creds}
    outs = kafka.create_node(node)
    try:
        kafka.wait_cluster_ready({**cluster, "nodes": [outs]})
        exercise(cluster)
        # The JVM writes its archive on the way out: a graceful stop, with time for it.
        kafka.stop_node(outs, timeout=180)
    finally:
        kafka.kill_node(outs)
    return {role: dumps / f"{role}.jsa" for role in ROLES}


def check_maps(archive: Path, node_home: Path) -> None:
    """The archive maps (-Xshare:on fails if it does not) for the account nodes run as."""
    argv = [kafka_runtime.java(), "-Xshare:on", f"-XX:SharedArchiveFile={archive}",
            "-cp", kafka_runtime.classpath(node_home), "kafka.tools.StorageTool", "random-uuid"]
    RunAs.service("kafka").run(argv, what=f"cds: mapping {archive}")


def install(made: dict[str, Path], prefix: Path, node_home: Path, java_bin: str) -> None:
    for role, dump in made.items():
        if not dump.exists() or dump.stat().st_size == 0:
            raise DatakitError(f"cds: the warm-up JVM wrote no {role} archive ({dump})")
        check_maps(dump, node_home)
    folder = kafka_cds.archive_path(prefix, "broker", java_bin).parent
    folder.mkdir(parents=True, exist_ok=True)
    for role, dump in made.items():
        tmp = folder / f".{role}.jsa.new"
        shutil.copyfile(dump, tmp)
        tmp.chmod(0o644)
        tmp.replace(folder / f"{role}.jsa")  # whole or not at all: see kafka_runtime
    (folder / "stamp").write_text(stamp_text(prefix) + "\n")
    for path in (folder.parent, folder):
        path.chmod(0o755)
    # Archives of earlier builds (another JVM's may still serve): a JVM that maps one of
    # them keeps its inode.
    current = kafka_cds.build_stamp(prefix) + "-"
    for old in folder.parent.iterdir():
        if not old.name.startswith(current):
            shutil.rmtree(old, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prefix", type=Path)
    ap.add_argument("--force", action="store_true", help="build even if up to date")
    ap.add_argument("--base-port", type=int, default=62950)
    args = ap.parse_args()
    prefix, java_bin = args.prefix.resolve(), kafka_runtime.java()
    version = kafka_cds.runtime_version(java_bin)
    if not args.force and up_to_date(prefix, java_bin):
        print(f"cds: archives for JVM {version} already in {prefix}/cds")
        return 0
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="datakit-kafka-cds-", dir="/tmp"))
    work.chmod(0o755)
    try:
        made = train(prefix, work, args.base_port)
        node_home = kafka_runtime.home_for({"home": str(prefix)})
        install(made, prefix, node_home, java_bin)
        kafka_runtime.home_for({"home": str(prefix)})  # a root's node copy gets them now
    except DatakitError as exc:
        print(f"cds: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sizes = ", ".join(f"{r} {kafka_cds.archive(prefix, r, java_bin).stat().st_size >> 20} MB"
                      for r in ROLES)
    print(f"cds: archives for JVM {version} in {prefix}/cds ({sizes}) "
          f"in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
