"""`datakit doctor`: each required tool, its version, where it came from, and the fix."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from datakit.paths import cache_dir
from datakit.toolchain import engine, kafka_cds
from datakit.toolchain.versions import (
    etcd_version,
    jmx_exporter_version,
    kafka_version,
    patroni_version,
    pulumi_version,
)

BOOTSTRAP = "run tools/bootstrap"


@dataclass
class Check:
    name: str
    ok: bool
    version: str
    source: str
    fix: str = ""
    required: bool = True  # False: reported, but needed only by stacks not being checked


DOCKER_FIX = ("install Docker Engine 20.10+ and start it, or point DOCKER_HOST at one "
              "(docs/docker.md)")


def _run(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"error: {exc}"
    return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr) else ""


def _binary(name: str, argv: list[str], fix: str, path: str | None = None) -> Check:
    found = shutil.which(name, path=path)
    if not found:
        return Check(name, False, "missing", "-", fix)
    text = _run([found, *argv])
    number = re.search(r"\d+\.\d+(\.\d+)?", text)
    return Check(name, True, number.group(0) if number else text, found)


def _pg_bin() -> str | None:
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    return str(roots[-1]) if roots else None


def checks(docker_stacks: Sequence[str] = (), docker_required: bool = False) -> list[Check]:
    """Every tool; with `docker_stacks` (stacks on the docker substrate) also the Docker
    engine and the pulumi-docker plugin, which fail doctor only if `docker_required`."""
    found = _tools()
    if docker_stacks:
        for check in (_docker_engine(), _docker_plugin()):
            check.required = docker_required
            check.source += f" (for {', '.join(docker_stacks)})"
            found.append(check)
    return found


def _docker_engine() -> Check:
    """The engine DOCKER_HOST names, else the local socket: where pulumi-docker and node
    control go for a stack without docker.host."""
    name = "Docker engine"
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        import docker  # here: the SDK costs 0.1-1 s to import, and only this check needs it

        client = docker.from_env(timeout=5)
        try:
            version = client.version()["Version"]
        finally:
            client.close()
    except Exception as exc:  # the SDK raises many kinds; each means "not reachable"
        reason = " ".join(str(exc).split())[:160]
        return Check(name, False, "unreachable", host, f"{DOCKER_FIX} ({reason})")
    return Check(name, True, version, host)


def _docker_plugin() -> Check:
    """pulumi-docker's resource plugin at the SDK's version, where the engine looks: its
    plugins folder, or PATH beside the engine. The engine never downloads it."""
    name = "pulumi-resource-docker"
    try:
        want = metadata.version("pulumi_docker")
    except metadata.PackageNotFoundError:
        return Check(name, False, "missing", "-", "pip install pulumi-docker: " + BOOTSTRAP)
    fix = (f"PULUMI_HOME={engine.pulumi_home()} .venv/bin/pulumi plugin install resource "
           f"docker v{want} (on a machine with network access)")
    folder = engine.pulumi_home() / "plugins" / f"resource-docker-v{want}"
    found = [*folder.glob(name), shutil.which(name, path=str(engine.venv_bin()))]
    path = next((str(f) for f in found if f), None)
    return Check(name, bool(path), want if path else "missing", path or str(folder),
                 "" if path else fix)


def _tools() -> list[Check]:
    want = pulumi_version()
    found = []
    try:
        sdk = metadata.version("pulumi")
        found.append(Check("pulumi SDK (Python)", sdk == want, sdk, "virtualenv",
                           "" if sdk == want else f"pip install pulumi=={want}: {BOOTSTRAP}"))
    except metadata.PackageNotFoundError:
        found.append(Check("pulumi SDK (Python)", False, "missing", "-", BOOTSTRAP))
    venv = str(engine.venv_bin())
    cli = _binary("pulumi", ["version"], BOOTSTRAP, venv)
    if cli.ok and cli.version != want:
        cli.ok, cli.fix = False, f"engine is {cli.version}, SDK wants {want}: {BOOTSTRAP}"
    if cli.ok:
        cli.source = f"{engine.engine_prefix()} (Go module proxy build)"
    found.append(cli)
    for plugin in ("pulumi-language-python", "pulumi-resource-pulumi-python",
                   "pulumi-language-python-exec"):
        path = shutil.which(plugin, path=venv)
        found.append(Check(plugin, bool(path), want if path else "missing", path or "-",
                           "" if path else BOOTSTRAP))
    pg = _pg_bin()
    for tool in ("initdb", "postgres", "pg_basebackup", "pg_rewind", "psql"):
        found.append(_binary(tool, ["--version"], "apt-get install postgresql: " + BOOTSTRAP,
                             pg))
    for tool in ("redis-server", "redis-sentinel", "redis-cli"):
        found.append(_binary(tool, ["--version"], "apt-get install redis: " + BOOTSTRAP))
    found.append(_binary("java", ["-version"], "install OpenJDK 17+"))
    found.append(_binary("ss", ["-V"], "apt-get install iproute2: " + BOOTSTRAP))
    found.append(_kafka())
    found.append(_kafka_cds())
    found += _etcd(venv)
    found += _patroni(venv)
    found += _metrics()
    for user in ("postgres", "redis", "kafka", "etcd"):
        found.append(_user(user))
    return found


def _kafka() -> Check:
    libs = cache_dir() / f"kafka-{kafka_version()}" / "libs"
    jars = list(libs.glob("kafka_*.jar")) if libs.is_dir() else []
    if not jars:
        return Check("kafka (KRaft jars)", False, "missing", str(libs), BOOTSTRAP)
    version = re.sub(r"^kafka_[\d.]+-|\.jar$", "", jars[0].name)
    return Check("kafka (KRaft jars)", True, version, f"{libs} (Maven Central)")


def _kafka_cds() -> Check:
    """The class-data archives Kafka's JVMs map (tools/kafka/cds.py), for this JVM."""
    name, home = "kafka CDS archives", cache_dir() / f"kafka-{kafka_version()}"
    java = kafka_cds.java_binary()
    if not java:
        return Check(name, False, "missing", "-", "install OpenJDK 17+")
    version = f"JVM {kafka_cds.runtime_version(java)}"
    if not all(kafka_cds.archive(home, role, java) for role in kafka_cds.ROLES):
        return Check(name, False, f"missing for {version}", "-",
                     f"{BOOTSTRAP} (nodes start without them, only slower)")
    return Check(name, True, version, str(kafka_cds.archive_path(home, "broker", java).parent))


def _etcd(venv: str) -> list[Check]:
    """etcd and etcdctl as the bootstrap links them into the venv's bin (where the `etcd`
    user can run them), at the pinned version."""
    want, out = etcd_version(), []
    for tool, argv in (("etcd", ["--version"]), ("etcdctl", ["version"])):
        check = _binary(tool, argv, BOOTSTRAP, venv)
        if check.ok and check.version != want:
            check.ok, check.fix = False, f"{tool} is {check.version}, pinned {want}: {BOOTSTRAP}"
        if check.ok:
            check.source = f"{check.source} ({cache_dir() / f'etcd-{want}'}, Go module proxy)"
        out.append(check)
    return out


def _patroni(venv: str) -> list[Check]:
    """Patroni's package at the pinned version, and its console script beside it."""
    want = patroni_version()
    try:
        have = metadata.version("patroni")
    except metadata.PackageNotFoundError:
        return [Check("patroni", False, "missing", "-", BOOTSTRAP)]
    script = _binary("patroni", ["--version"], BOOTSTRAP, venv)
    ok = have == want and script.ok and script.version == want
    fix = "" if ok else f"pip install 'patroni[etcd3,psycopg3]=={want}': {BOOTSTRAP}"
    return [Check("patroni", ok, have, f"{script.source} (PyPI)" if script.ok else "-", fix)]


def _metrics() -> list[Check]:
    """Prometheus, promtool and the exporters (Debian's packages), and the JMX exporter
    javaagent that tools/build-jmx-exporter fetched at the pinned version."""
    fix = "apt-get install {}: " + BOOTSTRAP
    found = [_binary(tool, [flag], fix.format(package)) for tool, flag, package in (
        ("prometheus", "--version", "prometheus"), ("promtool", "--version", "prometheus"),
        ("prometheus-postgres-exporter", "--version", "prometheus-postgres-exporter"),
        ("prometheus-redis-exporter", "-version", "prometheus-redis-exporter"),
        ("prometheus-process-exporter", "-version", "prometheus-process-exporter"))]
    want = jmx_exporter_version()
    home = cache_dir() / f"jmx-exporter-{want}"
    jar, stamp = home / "jmx_prometheus_javaagent.jar", home / ".datakit-build"
    have = stamp.read_text().split()[0] if stamp.is_file() and jar.is_file() else None
    found.append(Check("jmx_prometheus_javaagent", have == want, have or "missing",
                       f"{jar} (Maven Central)" if have else "-",
                       "" if have == want else BOOTSTRAP))
    found.append(_user("prometheus"))  # Debian's package makes it; the server runs as it
    return found


def _user(name: str) -> Check:
    label = f"system user {name}"
    if os.geteuid() != 0:
        return Check(label, True, "not needed", "servers run as the current user")
    try:
        pwd.getpwnam(name)
    except KeyError:
        return Check(label, False, "missing", "-", BOOTSTRAP)
    return Check(label, True, "present", "/etc/passwd")


def as_json(found: list[Check]) -> list[dict]:
    return [asdict(c) for c in found]
