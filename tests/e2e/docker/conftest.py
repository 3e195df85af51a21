"""A real Docker engine of the test session's own, a local image, and containers shaped
like the docker substrate's nodes.

`dockerd` (Debian's docker.io) runs as root with its own data root, exec root (where its
containerd lives), config file and unix socket under one temp dir, no bridge and no
iptables rules: nothing of the machine's own engine or network is touched. No registry is
reachable, so the image is a root filesystem of the static busybox, imported through the
API. Every container, the image, the engine and its dirs go at the end, even on failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import docker
import pytest
from docker.errors import DockerException, NotFound

from datakit.infra.docker.network import Placement
from datakit.stack import schema
from datakit.topology import Node

IMAGE = "datakit-test/busybox:1"
STACK = f"dkt{os.getpid()}"
BUSYBOX = "/bin/busybox"  # busybox-static: no libc needed inside the image
READY_S = 60


def _skip(why: str):
    pytest.skip(f"no Docker engine can start here: {why}")


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class Engine:
    """A dockerd started for the session and everything it must leave behind."""

    def __init__(self) -> None:
        # A short path: the unix sockets below it must stay under 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="dk-", dir="/tmp"))
        self.socket = self.root / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.log = self.root / "dockerd.log"
        self.proc: subprocess.Popen | None = None
        self.client: docker.DockerClient | None = None

    def start(self) -> docker.DockerClient:
        # Not the machine's /etc/docker/daemon.json, and its ID key (which dockerd 20.10
        # would otherwise create as /etc/docker/key.json) in our own dir.
        config = {"deprecated-key-path": f"{self.root}/key.json"}
        (self.root / "daemon.json").write_text(json.dumps(config))
        argv = ["dockerd", f"--data-root={self.root}/data", f"--exec-root={self.root}/exec",
                f"--pidfile={self.root}/dockerd.pid", f"--config-file={self.root}/daemon.json",
                f"--host={self.url}", "--bridge=none", "--iptables=false", "--log-level=warn"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + READY_S
        while True:
            if self.proc.poll() is not None:
                _skip(f"dockerd exited with code {self.proc.returncode}: {_tail(self.log)}")
            try:
                client = docker.DockerClient(base_url=self.url, timeout=30)
                client.ping()
                self.client = client
                return client
            except (DockerException, OSError) as exc:
                if time.monotonic() > deadline:
                    pytest.fail(f"dockerd did not answer on {self.url} in {READY_S}s: {exc}; "
                                f"log: {_tail(self.log)}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(DockerException, OSError):
                for container in self.client.containers.list(all=True):
                    container.remove(force=True, v=True)
                for image in self.client.images.list(all=True):
                    self.client.images.remove(image.id, force=True)
            self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # dockerd stops its containerd itself
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._kill_strays()
        self._unmount()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_strays(self) -> None:
        """containerd shims outlive a killed dockerd; ours name our exec root."""
        mark = str(self.root).encode()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ProcessLookupError):
                    if mark in (entry / "cmdline").read_bytes():
                        os.kill(int(entry.name), signal.SIGKILL)

    def _unmount(self) -> None:
        """A dockerd that died mid-way leaves overlay and netns mounts under its dirs."""
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounts if m.startswith(f"{self.root}/")), reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@pytest.fixture(scope="session")
def engine():
    if os.geteuid() != 0:
        _skip("dockerd needs root, and this session is not root")
    if shutil.which("dockerd") is None:
        _skip("dockerd is not installed (Debian's docker.io, listed in tools/apt-packages)")
    made = Engine()
    try:
        made.start()
        yield made
    finally:
        made.stop()


def busybox_rootfs() -> bytes:
    """A root filesystem as a tar: the static busybox and a link per applet."""
    if not Path(BUSYBOX).exists():
        _skip(f"{BUSYBOX} is missing, so no image can be made (busybox-static, listed in "
              "tools/apt-packages)")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for folder, mode in (("bin", 0o755), ("tmp", 0o1777), ("data", 0o755),
                             ("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("etc", 0o755)):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)
    return buf.getvalue()


@pytest.fixture(scope="session")
def image(engine):
    repository, tag = IMAGE.split(":")
    engine.client.api.import_image_from_data(busybox_rootfs(), repository=repository, tag=tag)
    return engine.client.images.get(IMAGE)


# A node's main process: it leaves on SIGTERM with code 0 (`wait` lets the trap run at
# once), and its health check passes once it has written /tmp/healthy.
SERVE = ("trap 'echo got TERM; rm -f /tmp/healthy; exit 0' TERM; touch /tmp/healthy; "
         "while true; do sleep 1 & wait $!; done")
HEALTHY = {"test": ["CMD-SHELL", "test -f /tmp/healthy"], "interval": 1_000_000_000,
           "timeout": 5_000_000_000, "retries": 3, "start_period": 0}


def node_row(service: str, name: str, role: str, docker_host: str, port: int) -> schema.Node:
    """One entry of the stack outputs' `nodes`, with the substrate's own handle."""
    node = Node(service, name, 1, role, port)  # type: ignore[arg-type]
    container = f"datakit-{STACK}-{name}"
    place = Placement(node, container, docker_host, False, container, "127.0.0.1", True)
    return schema.Node(service=service, role=role, name=name, host=place.client_host,
                       port=port, ports=node.ports(), handle=place.handle,
                       testinfra=place.testinfra)


@pytest.fixture
def make_node(engine, image):
    """Makes a running container for a node row (as `pulumi up` would) and removes it
    after the test."""
    made: list[str] = []

    def make(service: str = "postgres", name: str = "pg-1", *, role: str = "primary",
             port: int = 63001, command: str = SERVE, health: dict | None = HEALTHY,
             files: dict[str, str] | None = None) -> schema.Node:
        row = node_row(service, name, role, engine.url, port)
        container = engine.client.containers.create(
            IMAGE, ["sh", "-c", command], name=row.handle.container,
            network_mode="none", healthcheck=health,
            restart_policy={"Name": "unless-stopped"},  # as the substrate makes them
            labels={"datakit.stack": STACK, "datakit.node": name})
        made.append(container.name)
        for path, text in (files or {}).items():
            _put(container, path, text)
        container.start()
        return row

    yield make
    for name in made:
        with contextlib.suppress(NotFound):
            engine.client.containers.get(name).remove(force=True, v=True)


def _put(container, path: str, text: str) -> None:
    data = text.encode()
    folder, name = path.rsplit("/", 1)
    info = tarfile.TarInfo(name)
    info.size = len(data)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(info, io.BytesIO(data))
    container.put_archive(folder or "/", buf.getvalue())
