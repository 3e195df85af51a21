"""Node control for the docker substrate: a node is a container, driven through the
Docker API (the `docker` SDK) on the engine its handle names.

The handle the substrate exports (`infra/docker/network.py`, `Placement.handle`) is
`{"kind": "docker", "container": NAME, "docker_host": URL-or-None}`; None is the default
engine (`DOCKER_HOST`, else the local socket), as for pulumi-docker and the CLI.

    >>> ctl = DockerControl(node, outputs)
    >>> ctl.stop(); ctl.status()
    'stopped'
    >>> ctl.start()           # returns once the container's health check passes
    >>> ctl.exec(["pg_controldata", "/var/lib/postgresql/data"])
    (0, 'pg_control version number: ...')

The containers run with `restart: unless-stopped`, and the engine counts both `docker stop`
and `docker kill` as a manual stop: a stopped or killed node stays down until `start`.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import docker
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container

from datakit.errors import DatakitError
from datakit.nodes.readiness import NotReady, wait_until

STOP_TIMEOUT_S = 60.0  # as the local control: a PostgreSQL fast shutdown flushes its WAL
START_TIMEOUT_S = 300.0  # the substrate's HEALTH_WAIT_S: `pulumi up` waits as long
ENGINE_TIMEOUT_S = 30  # one API call; stop adds its own grace period to this
# Where the substrate's Redis containers keep the config file Redis owns once written
# (infra/docker/redis.py: DATA + "/redis.conf").
REDIS_CONF = "/data/redis.conf"

# The engine's container states, as the contract names them.
STATES = {"running": "running", "paused": "paused", "restarting": "stopped",
          "created": "stopped", "exited": "stopped", "dead": "stopped", "removing": "stopped"}


class HealthCheck(Exception):
    """Not healthy yet; the message is the health status and what its last check said."""


# Where the docker substrate's PostgreSQL image keeps its cluster (infra/docker/postgres.py).
PGDATA = "/var/lib/postgresql/data/pgdata"


class DockerControl:
    """One node's container (a stack outputs Node, control/__init__.py): status, stop,
    kill, start, pause, resume, exec."""

    def __init__(self, node: Any, outputs: Any):
        self.node, self.outputs = node, outputs
        self.name, self.service = node.name, node.service
        self.container: str = node.handle.container
        self.docker_host: str | None = node.handle.docker_host
        self._client: docker.DockerClient | None = None

    # ------------------------------------------------------------------ the engine
    @property
    def _engine(self) -> str:
        return self.docker_host or "the default Docker engine (DOCKER_HOST or the local socket)"

    def _connect(self) -> docker.DockerClient:
        if self._client is None:
            if self.docker_host is None:
                self._client = docker.from_env(timeout=ENGINE_TIMEOUT_S)
            else:
                # ssh://: the system's ssh, so the user's ssh config and agent apply (as for
                # the CLI and pulumi-docker), not paramiko.
                self._client = docker.DockerClient(
                    base_url=self.docker_host, timeout=ENGINE_TIMEOUT_S,
                    use_ssh_client=self.docker_host.startswith("ssh://"))
        return self._client

    @contextmanager
    def _api(self, act: str) -> Iterator[None]:
        """Turns what the engine says into one line naming the node and the fix."""
        try:
            yield
        except NotFound:
            raise DatakitError(
                f"node {self.name}: container {self.container} is gone from {self._engine} "
                f"(cannot {act} it); make it again with `pulumi up`") from None
        except APIError as exc:
            raise DatakitError(f"node {self.name}: the Docker engine refused to {act} "
                               f"container {self.container}: {exc.explanation}") from None
        except (DockerException, OSError) as exc:  # requests' connection errors are OSErrors
            fix = ("fix docker.host / docker.node_hosts in the stack" if self.docker_host
                   else "point DOCKER_HOST at it")
            raise DatakitError(f"node {self.name}: no Docker engine answers at {self._engine} "
                               f"({_root_cause(exc)}); start it, or {fix}") from None

    def _get(self, act: str) -> Container:
        with self._api(act):
            return self._connect().containers.get(self.container)

    def _state(self) -> dict | None:
        """The container's State from the engine, or None if there is no such container."""
        with self._api("inspect"):
            try:
                return self._connect().api.inspect_container(self.container)["State"]
            except NotFound:
                return None

    def logs(self, *, lines: int, follow: bool) -> Iterator[bytes]:
        """The container's output (its node's log): the last `lines`, then, with `follow`,
        what it writes until interrupted. Not part of the contract: `datakit logs` only."""
        return self._get("read the logs of").logs(stream=True, follow=follow, tail=lines)

    # ------------------------------------------------------------------ the contract
    def status(self) -> str:
        """"running" | "paused" | "stopped" | "missing"."""
        state = self._state()
        return "missing" if state is None else STATES.get(state["Status"], "stopped")

    def running(self) -> bool:
        """Its processes exist: a paused container counts, as a frozen local process does."""
        return self.status() in ("running", "paused")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """A clean stop: the image's stop signal (SIGTERM; the postgres image says SIGINT, a
        fast shutdown), SIGKILL after `timeout`. Returns when the container has exited."""
        status = self.status()
        if status == "stopped":
            return
        container = self._get("stop")
        with self._api("stop"):
            if status == "paused":
                container.unpause()  # a frozen process would sit out the whole timeout
            container.stop(timeout=int(timeout))

    def kill(self) -> None:
        """SIGKILL, as a crash; returns when the container has exited."""
        if self.status() == "stopped":
            return
        container = self._get("kill")
        with self._api("kill"):
            container.kill(signal="SIGKILL")
        wait_until(lambda: self.status() == "stopped", what=f"node {self.name} to exit",
                   timeout=ENGINE_TIMEOUT_S, interval=0.02, max_interval=0.1)

    def pause(self) -> None:
        """Freeze every process of the container (cgroup freezer): it keeps its sockets but
        does nothing until `resume`."""
        if self.status() != "paused":
            container = self._get("pause")
            with self._api("pause"):
                container.pause()

    def resume(self) -> None:
        status = self.status()
        if status in ("paused", "missing"):  # missing: `_get` says it is gone
            container = self._get("resume")
            with self._api("resume"):
                container.unpause()

    def start(self, *, replica_of: Any = None,
              timeout: float = START_TIMEOUT_S) -> None:
        """Start the container on its volume, as whatever role it has now (a Redis node: as
        the replica of the node `replica_of`, if given); returns when it runs and, if it
        has a health check, passes it. A paused container is resumed."""
        status = self.status()
        if status == "paused":
            self.resume()
            return
        if status == "running":
            return
        container = self._get("start")
        if replica_of is not None and self.service == "redis":
            self._point_redis_at(container, replica_of)
        with self._api("start"):
            container.start()
        try:
            wait_until(self._healthy, what=f"node {self.name} (container {self.container})",
                       timeout=timeout, interval=0.05, max_interval=0.25,
                       alive=self._why_not, fatal=(DatakitError,))
        except NotReady as exc:
            raise DatakitError(f"{exc}; see `docker logs {self.container}`") from None

    def exec(self, argv: list[str], *, user: str = "",
             env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run `argv` inside the running container; its exit code and output (stdout and
        stderr together)."""
        status = self.status()
        if status in ("stopped", "paused"):  # missing: `_get` says it is gone
            raise DatakitError(f"node {self.name}: cannot run {argv[0]} in container "
                               f"{self.container}: it is {status}; start or resume it first")
        container = self._get("exec in")
        with self._api("exec in"):
            result = container.exec_run(argv, user=user, environment=env)
        return result.exit_code, result.output.decode(errors="replace")

    def postmaster_pid(self) -> int | None:
        """A PostgreSQL node's postmaster, as the container sees it (postmaster.pid)."""
        code, out = self.exec(["head", "-1", f"{PGDATA}/postmaster.pid"])
        return int(out.strip()) if code == 0 and out.strip().isdigit() else None

    def kill_postmaster(self) -> None:
        """A crash of PostgreSQL alone: SIGKILL its postmaster; Patroni (the container's
        main process) stays and acts."""
        pid = self.postmaster_pid()
        if pid is None:
            raise DatakitError(f"node {self.name}: no postmaster runs in {self.container}")
        code, out = self.exec(["kill", "-9", str(pid)], user="postgres")
        if code != 0:
            raise DatakitError(f"node {self.name}: kill -9 {pid} failed: {out.strip()}")

    # ------------------------------------------------------------------ start helpers
    def _healthy(self) -> bool:
        state = self._state()
        if state is None:
            raise DatakitError(f"node {self.name}: container {self.container} was removed "
                               "while starting; make it again with `pulumi up`")
        if not state["Running"] or state["Paused"]:
            return False
        health = state.get("Health")
        if health is None:  # no health check: running is all it can say
            return True
        if health["Status"] != "healthy":
            raise HealthCheck(f"{health['Status']}{_last_probe(health)}")
        return True

    def _why_not(self) -> str | None:
        """Why the container can no longer become healthy, or None while it still can."""
        state = self._state()
        if state is None:
            return "the container was removed"
        if state["Status"] in ("exited", "dead", "restarting"):
            return f"it exited with code {state['ExitCode']}{self._log_tail()}"
        health = state.get("Health") or {}
        if health.get("Status") == "unhealthy":
            return f"its health check fails{_last_probe(health)}"
        return None

    def _log_tail(self) -> str:
        container = self._get("read the logs of")
        with self._api("read the logs of"):
            lines = container.logs(tail=3).decode(errors="replace")
        lines = " | ".join(x.strip() for x in lines.splitlines() if x.strip())
        return f" (last output: {lines})" if lines else ""

    def _point_redis_at(self, container: Container, master: Any) -> None:
        """Rewrite the stopped Redis node's own config file in its volume to replicate
        `master`, so it never comes back as a second master taking writes (what the local
        control does by rendering the config). Peers reach a node by container name on
        the stack's network, or by machine name when containers use the host's network."""
        host_network = container.attrs["HostConfig"]["NetworkMode"] == "host"
        peer = master.host if host_network else master.handle.container
        try:
            info, text = _read_file(container, REDIS_CONF)
        except NotFound:
            raise DatakitError(
                f"node {self.name}: container {self.container} has no {REDIS_CONF} to point "
                f"at {master.name}; only Redis nodes the docker substrate made can be "
                "started as replicas") from None
        with self._api("reconfigure"):
            kept = [line for line in text.splitlines()
                    if (line.split() or [""])[0].lower() not in ("replicaof", "slaveof")]
            kept.append(f"replicaof {peer} {master.port}")
            _write_file(container, REDIS_CONF, info, "\n".join(kept) + "\n")


def _root_cause(exc: BaseException) -> str:
    """The socket error under the SDK's and requests' wrappers (`Connection refused`), or
    the wrapper's own message when there is none."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        for arg in getattr(seen, "args", ()):  # requests keeps urllib3's error as an arg
            if isinstance(arg, BaseException):
                inner = _root_cause(arg)
                if inner != str(arg):
                    return inner
        seen = seen.__cause__ or seen.__context__
    return str(exc)


def _last_probe(health: dict) -> str:
    log = health.get("Log") or []
    if not log:
        return ""
    last = log[-1]
    said = " ".join((last.get("Output") or "").split())
    return f" (last check exited {last['ExitCode']}{': ' + said if said else ''})"


def _read_file(container: Container, path: str) -> tuple[tarfile.TarInfo, str]:
    """One file of a (stopped or running) container, with its owner and mode."""
    stream, _ = container.get_archive(path)  # NotFound: no such file
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        info = tar.next()
        if info is None or not info.isfile():
            raise DatakitError(f"container {container.name}: {path} is not a file")
        reader = tar.extractfile(info)
        assert reader is not None
        return info, reader.read().decode()


def _write_file(container: Container, path: str, info: tarfile.TarInfo, text: str) -> None:
    """Replace `path` in the container, keeping the owner and mode `info` gives."""
    data = text.encode()
    folder, name = path.rsplit("/", 1)
    info.name, info.size = name, len(data)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(info, io.BytesIO(data))
    if not container.put_archive(folder or "/", buf.getvalue()):
        raise DatakitError(f"container {container.name}: could not write {path}")

