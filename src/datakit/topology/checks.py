"""Checks across services, run after each service's own: ports, the memory budget, and the
docker settings that refer to other parts of the topology.

A port already taken is checked when a node starts, not here.
"""

from __future__ import annotations

from pathlib import Path

from datakit.topology.model import Topology
from datakit.topology.patroni import TIMEOUT_FLOORS
from datakit.topology.problems import Problem, key_path
from datakit.topology.units import human_size

LOCAL_PORTS = range(61000, 65536)  # above the kernel's ephemeral range (32768-60999)
LOCAL_PORTS_ALLOWED = "ports in 61000-65535 (above the ephemeral range 32768-60999)"
WELL_KNOWN = (5432, 6379, 9092)


def port_sources(t: Topology) -> list[tuple[str, str, int]]:
    """(config key of the base, node name, port) for every port the stack listens on:
    the nodes', Patroni's REST APIs and etcd's members."""
    keys = {
        "postgres": "postgres.port_base",
        "redis": "redis.port_base",
        "sentinel": "redis.sentinel.port_base",
        "kafka": "kafka.port_base",
        "etcd": "etcd.port_base",
    }
    out = []
    for node in t.nodes():
        out.append((keys[node.service], node.name, node.port))
        if node.controller_port is not None:
            out.append(("kafka.controller_port_base", node.name, node.controller_port))
        if node.bus_port is not None:
            out.append(("redis.cluster.bus_port_base", node.name, node.bus_port))
    for name in t.postgres.node_names:
        out.append(("postgres.patroni.rest_port_base", name, t.postgres.rest_port(name)))
    keys_of = {"postgres": "metrics.postgres_exporter_port_base",
               "redis": "metrics.redis_exporter_port_base",
               "sentinel": "metrics.sentinel_exporter_port_base",
               "kafka": "metrics.kafka_jmx_port_base"}
    out += [(keys_of[n.service], n.name, t.exporter_port(n)) for n in t.exported()]
    if t.metrics.enabled:
        out.append(("metrics.port", "prometheus", t.metrics.port))
    if t.metrics.enabled and t.substrate == "local":
        out.append(("metrics.process_exporter_port", "process-exporter",
                    t.metrics.process_exporter_port))
    # Peer ports last: a collision is reported against the base that moved onto a client port.
    out += [("etcd.peer_port_base", n.name, n.peer_port) for n in t.nodes("etcd") if n.peer_port]
    return out


def port_problems(t: Topology) -> list[Problem]:
    out = []
    sources = port_sources(t)
    bad_range: dict[str, list[int]] = {}
    for key, _node, port in sources:
        outside = port not in LOCAL_PORTS if t.substrate == "local" else not 0 < port < 65536
        if outside or port in WELL_KNOWN:
            bad_range.setdefault(key, []).append(port)
    for key, ports in bad_range.items():
        allowed = LOCAL_PORTS_ALLOWED if t.substrate == "local" else "ports in 1-65535"
        out.append(
            Problem(
                key,
                f"ports {min(ports)}-{max(ports)} are not usable"
                if len(ports) > 1
                else f"port {ports[0]} is not usable",
                f"{allowed}, never {', '.join(map(str, WELL_KNOWN))}",
            )
        )
    owner: dict[int, tuple[str, str]] = {}
    reported: set[tuple[str, str]] = set()
    for key, node, port in sources:
        if port in owner:
            other_key, other_node = owner[port]
            if (other_key, key) not in reported:
                reported.add((other_key, key))
                out.append(
                    Problem(
                        key,
                        f"port {port} of {node} collides with {other_node} (datakit:{other_key})",
                        "bases far enough apart that every node's ports differ",
                    )
                )
        else:
            owner[port] = (key, node)
    return out


def memory_total(meminfo: Path = Path("/proc/meminfo")) -> int:
    """This machine's memory in bytes (MemTotal)."""
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no MemTotal in {meminfo}")


# Resident memory of the agents beside each server, rounded up from what bench/
# patroni_failover.py measured on this kind of machine (Patroni about 50 MB, etcd 32-45 MB).
PATRONI_RSS = 64 * 1024**2
ETCD_RSS = 64 * 1024**2


def memory_budget(t: Topology) -> dict[str, int]:
    """Bytes each part of the stack reserves, keyed by the config key that sizes it."""
    return {
        "postgres.settings.shared_buffers": t.postgres.nodes * t.postgres.settings.shared_buffers,
        "postgres.patroni": t.postgres.nodes * PATRONI_RSS,
        "kafka.heap": t.kafka.nodes * t.kafka.heap,
        "redis.settings.maxmemory": t.redis.data_nodes * t.redis.settings.maxmemory,
        "etcd.nodes": t.etcd.nodes * ETCD_RSS,
    }


def memory_problems(t: Topology, total: int) -> list[Problem]:
    """On the local substrate the whole stack shares this machine: its budget must fit."""
    if t.substrate != "local":
        return []
    budget = memory_budget(t)
    used = sum(budget.values())
    if used <= total:
        return []
    parts = (
        f"postgres {t.postgres.nodes} x shared_buffers "
        f"{human_size(t.postgres.settings.shared_buffers)} + kafka {t.kafka.nodes} x heap "
        f"{human_size(t.kafka.heap)} + redis {t.redis.data_nodes} x maxmemory "
        f"{human_size(t.redis.settings.maxmemory)} + Patroni {t.postgres.nodes} x "
        f"{human_size(PATRONI_RSS)} + etcd {t.etcd.nodes} x {human_size(ETCD_RSS)}"
    )
    biggest = max(budget, key=lambda k: budget[k])
    return [
        Problem(
            biggest,
            f"memory budget {human_size(used)} ({parts}) is larger than this "
            f"machine's {human_size(total)}",
            f"a total within {human_size(total)}",
        )
    ]


def docker_problems(t: Topology) -> list[Problem]:
    """Docker settings that must agree with the rest of the topology."""
    out = []
    d = t.docker
    # Prometheus may have a host of its own; an exporter always runs beside its server.
    names = {n.name for n in t.nodes()} | {
        n.name for n in t.metrics_nodes() if n.service == "prometheus"}
    for node in d.node_hosts:
        if node not in names:
            out.append(
                Problem(
                    key_path("docker", "node_hosts", node), "no such node", ", ".join(sorted(names))
                )
            )
    pg_tag, kafka_tag = d.images.tag("postgres"), d.images.tag("kafka")
    if pg_tag and pg_tag.split(".")[0] != str(t.postgres.version):
        out.append(
            Problem(
                "docker.images.postgres",
                f"image {d.images.postgres} is not PostgreSQL {t.postgres.version}",
                f"postgres:{t.postgres.version}.N (datakit:postgres.version)",
            )
        )
    if kafka_tag and kafka_tag != t.kafka.version:
        out.append(
            Problem(
                "docker.images.kafka",
                f"image {d.images.kafka} is not Kafka {t.kafka.version}",
                f"apache/kafka:{t.kafka.version} (datakit:kafka.version)",
            )
        )
    if t.substrate == "docker":
        needs = {
            "postgres": ("postgres.settings.shared_buffers", t.postgres.settings.shared_buffers),
            "redis": ("redis.settings.maxmemory", t.redis.settings.maxmemory),
            "kafka": ("kafka.heap", t.kafka.heap),
        }
        for service, (key, need) in needs.items():
            res = d.resources.get(service)  # type: ignore[call-overload]
            if res and res.memory is not None and res.memory <= need:
                out.append(
                    Problem(
                        key_path("docker", "resources", service, "memory"),
                        f"{human_size(res.memory)} does not hold {key} {human_size(need)}",
                        f"more than {human_size(need)}",
                    )
                )
    return out


def dcs_problems(t: Topology) -> list[Problem]:
    """etcd's raft timing against Patroni's: an etcd leader election must end well inside
    retry_timeout, or Patroni gives up on etcd during it and the primary demotes itself."""
    election_ms, retry_s = t.etcd.election_timeout_ms, t.postgres.patroni.retry_timeout
    if retry_s < TIMEOUT_FLOORS["retry_timeout"]:
        return []  # reported as under Patroni's floor already
    # An election takes about one election timeout, plus as much again for a split vote.
    if 2 * election_ms >= retry_s * 1000:
        return [Problem(
            "etcd.election_timeout_ms",
            f"{election_ms} ms leaves no margin inside Patroni's retry_timeout of {retry_s} s "
            "(an etcd election with one split vote takes about twice the timeout)",
            f"< {retry_s * 1000 // 2} (half of postgres.patroni.retry_timeout)")]
    return []


def topology_problems(t: Topology, total_memory: int | None) -> list[Problem]:
    """Every problem of a structurally valid topology (services' own checks included)."""
    out = [*t.postgres.problems(), *t.redis.problems(), *t.kafka.problems(),
           *t.etcd.problems(), *t.metrics.problems(), *dcs_problems(t),
           *t.tls.problems(t.disposable)]
    out += port_problems(t)
    out += docker_problems(t)
    if t.substrate == "local":
        out += memory_problems(t, memory_total() if total_memory is None else total_memory)
    return out
