"""Redis data nodes and Sentinels (or a Redis Cluster) as containers of the Redis image.

A node's config file is written into its volume on its first start only, from a template
whose passwords are `${VARIABLES}` filled in by the shell from the secret environment; from
then on Redis owns the file (CONFIG REWRITE, Sentinel re-pointing a replica after a
failover), so a restarted container never undoes a failover. Clients and the health probe
authenticate with `REDISCLI_AUTH`.
"""

from __future__ import annotations

import pulumi

from datakit.infra.docker.network import Layout, Placement
from datakit.infra.docker.node import NodeContainers, NodeSpec
from datakit.infra.secret import Secrets
from datakit.infra.substrate import Provisioned
from datakit.topology import Topology

DATA = "/data"
SERVER_DEFAULTS = {
    "save": "3600 1 300 100 60 10000",
    "repl-diskless-sync": "yes",
    "repl-diskless-sync-delay": "0",
}


def start_script(conf_path: str, template: str, exec_line: str) -> str:
    """Write `template` to `conf_path` unless it exists (the shell expands ${VARS}), then
    hand over to the image's entrypoint (which drops to the redis user)."""
    return (f"set -eu\nif [ ! -s {conf_path} ]; then\n"
            f"  cat > {conf_path} <<DATAKIT_EOF\n{template}DATAKIT_EOF\n"
            f"  chmod 600 {conf_path}\nfi\nexec docker-entrypoint.sh {exec_line}\n")


def _quote(value: str) -> str:
    return value if value.replace("-", "").replace(".", "").isalnum() else f'"{value}"'


def server_conf(topo: Topology, place: Placement, upstream: Placement | None) -> str:
    node, spec = place.node, topo.redis
    lines = [
        f"port {node.port}",
        "bind * -::*",
        "protected-mode no",  # every connection must authenticate: requirepass below
        f"dir {DATA}",
        'requirepass "${DATAKIT_REDIS_PASSWORD}"',
        'masterauth "${DATAKIT_REDIS_PASSWORD}"',
    ]
    if place.host_network:
        lines += [f"replica-announce-ip {place.peer_host}", f"replica-announce-port {node.port}"]
    if spec.mode == "cluster":
        lines += ["cluster-enabled yes", "cluster-config-file nodes.conf",
                  f"cluster-node-timeout {spec.cluster.node_timeout_ms}",
                  f"cluster-port {node.bus_port}"]
        if place.host_network:
            lines += [f"cluster-announce-hostname {place.peer_host}",
                      "cluster-preferred-endpoint-type hostname"]
    settings = {**SERVER_DEFAULTS, **spec.settings.directives()}
    lines += [f"{k} {_quote(v)}" for k, v in settings.items()]
    if upstream is not None:
        lines.append(f"replicaof {upstream.peer_host} {upstream.node.port}")
    return "\n".join(lines) + "\n"


def sentinel_conf(topo: Topology, place: Placement, master: Placement) -> str:
    node, spec = place.node, topo.redis
    name, s = spec.master_name, spec.sentinel
    lines = [
        f"port {node.port}",
        f"dir {DATA}",
        'requirepass "${DATAKIT_SENTINEL_PASSWORD}"',
        'sentinel sentinel-pass "${DATAKIT_SENTINEL_PASSWORD}"',
        "sentinel resolve-hostnames yes",  # masters and peers are container or host names
        "sentinel announce-hostnames yes",
    ]
    if place.host_network:
        lines += [f"sentinel announce-ip {place.peer_host}",
                  f"sentinel announce-port {node.port}"]
    lines += [
        f"sentinel monitor {name} {master.peer_host} {master.node.port} {s.quorum}",
        f'sentinel auth-pass {name} "${{DATAKIT_REDIS_PASSWORD}}"',
        f"sentinel down-after-milliseconds {name} {s.down_after_ms}",
        f"sentinel failover-timeout {name} {s.failover_timeout_ms}",
        f"sentinel parallel-syncs {name} 1",
    ]
    return "\n".join(lines) + "\n"


def server_health(port: int, replica: bool) -> str:
    ping = f"redis-cli -p {port} ping | grep -q PONG"
    if not replica:
        return ping
    return f"{ping} && redis-cli -p {port} info replication | grep -q master_link_status:up"


def build(topo: Topology, secrets: Secrets, layout: Layout, containers: NodeContainers,
          parent: pulumi.Resource) -> list[Provisioned]:
    spec = topo.redis
    password = secrets.get("redis", "default")
    made: list[Provisioned] = []
    servers = []
    for node in topo.nodes("redis"):
        place = layout[node.name]
        upstream = layout[node.replica_of] if node.replica_of and spec.mode == "sentinel" else None
        conf = f"{DATA}/redis.conf"
        node_spec = NodeSpec(
            "redis", ["sh", "-c", start_script(conf, server_conf(topo, place, upstream),
                                               f"redis-server {conf}")],
            server_health(node.port, replica=upstream is not None), DATA,
            secret_env={"DATAKIT_REDIS_PASSWORD": password, "REDISCLI_AUTH": password})
        depends = [servers[0]] if upstream is not None else []
        res = containers.container(place, node_spec, parent, depends_on=depends)
        servers.append(res)
        made.append(place.provisioned(res))

    if spec.mode == "cluster":
        _cluster_create(topo, layout, containers, password, servers, parent)
        return made

    master = layout[topo.nodes("redis")[0].name]
    sentinel_password = secrets.get("redis", "sentinel")
    for node in topo.nodes("sentinel"):
        place = layout[node.name]
        conf = f"{DATA}/sentinel.conf"
        node_spec = NodeSpec(
            "sentinel", ["sh", "-c", start_script(conf, sentinel_conf(topo, place, master),
                                                  f"redis-server {conf} --sentinel")],
            f"redis-cli -p {node.port} ping | grep -q PONG", DATA,
            secret_env={"DATAKIT_SENTINEL_PASSWORD": sentinel_password,
                        "DATAKIT_REDIS_PASSWORD": password,
                        "REDISCLI_AUTH": sentinel_password})
        # After every data node: a Sentinel discovers the replicas from the master.
        res = containers.container(place, node_spec, parent, depends_on=servers)
        made.append(place.provisioned(res))
    return made


def _cluster_create(topo: Topology, layout: Layout, containers: NodeContainers,
                    password: pulumi.Input[str], servers: list, parent) -> None:
    """A one-shot job that joins the data nodes into a cluster, unless they already are."""
    nodes = [layout[n.name] for n in topo.nodes("redis")]
    first = nodes[0]
    script = (
        "set -eu\n"
        f"if redis-cli -h {first.peer_host} -p {first.node.port} cluster info "
        "| grep -q cluster_state:ok; then exit 0; fi\n"
        f"redis-cli --cluster create {' '.join(p.peer for p in nodes)} "
        f"--cluster-replicas {topo.redis.cluster.replicas_per_master} --cluster-yes\n")
    job = NodeSpec("redis", ["sh", "-c", script], "true", None,
                   secret_env={"REDISCLI_AUTH": password})
    containers.container(first, job, parent, depends_on=servers, name="redis-cluster-create",
                         one_shot=True)
