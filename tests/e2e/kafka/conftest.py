"""Fixtures for Kafka tests: real KRaft JVMs on 127.0.0.1:62000-62299, always cleaned up.

Kafka comes from tools/build-kafka and its CDS archives from tools/kafka/cds.py (stamp
checks when already made). As root, nodes run as the `kafka` system user (tools/system-users
creates it), so data dirs are made with tempfile.mkdtemp under /tmp and opened to 0755:
pytest's tmp_path sits under a 0700 dir.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from datakit.nodes import kafka, process
from datakit.paths import PROJECT_DIR

PORT_RANGE = range(62000, 62300)


@pytest.fixture(scope="session")
def kafka_home() -> str:
    home = kafka.default_home()
    subprocess.run([str(PROJECT_DIR / "tools" / "build-kafka"), home], check=True,
                   stdout=subprocess.DEVNULL)
    if os.geteuid() == 0:
        subprocess.run(["bash", str(PROJECT_DIR / "tools" / "system-users")], check=True)
    # The class-data archives, as tools/bootstrap makes them (a stamp check when made).
    subprocess.run([sys.executable, str(PROJECT_DIR / "tools" / "kafka" / "cds.py"), home],
                   check=True, stdout=subprocess.DEVNULL)
    return home


@pytest.fixture(scope="session")
def free_port():
    ports = iter(PORT_RANGE)

    def take() -> int:
        for port in ports:
            if process.port_free(port):
                return port
        raise RuntimeError("no free port left in 62000-62299")

    return take


class Cluster:
    """N combined KRaft nodes with one cluster id, started together as Pulumi would."""

    def __init__(self, home: str, base: Path, free_port, n: int, heap_mb: int) -> None:
        self.base = base
        ids = range(1, n + 1)
        ports = {i: (free_port(), free_port()) for i in ids}
        self.creds = {"admin_user": "admin", "admin_password": secrets.token_hex(12),
                      "app_user": "app", "app_password": secrets.token_hex(12)}
        voters = [{"id": i, "host": "127.0.0.1", "port": ports[i][1]} for i in ids]
        cluster_id = kafka.new_cluster_id()
        self.nodes = [{
            "home": home, "node_id": i, "host": "127.0.0.1", "port": ports[i][0],
            "controller_port": ports[i][1], "voters": voters, "cluster_id": cluster_id,
            "data_dir": str(base / f"kafka-{i}"), "heap_mb": heap_mb, **self.creds,
        } for i in ids]
        self.outs: dict[int, dict] = {}
        self.props = {
            "brokers": [{"id": i, "host": "127.0.0.1", "port": ports[i][0]} for i in ids],
            "controllers": voters, "cluster_id": cluster_id, **self.creds,
        }

    def start(self) -> None:
        """Create every node at once, at most 4 at a time like the dynamic provider."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [(p["node_id"], pool.submit(kafka.create_node, p)) for p in self.nodes]
        errors = []
        for node_id, future in futures:  # keep every started node, so teardown stops it
            try:
                self.outs[node_id] = future.result()
            except Exception as exc:  # noqa: BLE001 - re-raised below after all are known
                errors.append(exc)
        if errors:
            raise errors[0]

    def health(self) -> dict:
        return kafka.cluster_health({**self.props, "nodes": list(self.outs.values())})

    def client(self, user: str = "app") -> dict:
        return kafka.client_config(self.props, user=user)

    def destroy(self) -> None:
        """Kill every node we know of (by pid) and delete every data dir, in parallel:
        the whole cluster goes, so a controlled shutdown would only wait (5-10 s)."""
        targets = [{**props, **self.outs.get(props["node_id"], {})} for props in self.nodes]
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            list(pool.map(lambda t: _quietly(kafka.delete_node, t, graceful=False), targets))
        shutil.rmtree(self.base, ignore_errors=True)


def _quietly(fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - teardown goes on; the test already failed
        print(f"teardown: {exc}")


@pytest.fixture(scope="module")
def new_cluster(kafka_home, free_port):
    """Makes Clusters (not started); each is stopped and deleted when the module ends."""
    made: list[Cluster] = []

    def make(n: int, heap_mb: int = 512) -> Cluster:
        base = Path(tempfile.mkdtemp(prefix="datakit-kafka-", dir="/tmp"))
        base.chmod(0o755)
        made.append(Cluster(kafka_home, base, free_port, n, heap_mb))
        return made[-1]

    yield make
    for cluster in made:
        cluster.destroy()
