"""The metrics nodes as containers: a postgres_exporter beside each PostgreSQL node, a
redis_exporter beside each Redis node and Sentinel, and one Prometheus that scrapes them
all and evaluates the stack's alert rules. Kafka's agent lives in its JVM (kafka.py).

An exporter runs on its server's Docker host and network and reaches the server at its
peer address; Prometheus reaches every target at its peer address too, from the one scrape
list (infra/scrape.py) the local substrate and the outputs use. Passwords reach the
exporters only as secret environment (DATA_SOURCE_PASS, REDIS_PASSWORD).

The PostgreSQL exporters log in as `datakit_monitor`, with pg_monitor and nothing else. A
one-shot job makes it on the primary once every member is healthy, and makes it again only
if it is missing or its password is stale. Patroni's post_bootstrap runs once, at initdb, so
it would miss a cluster bootstrapped before metrics were turned on. The job does not.
"""

from __future__ import annotations

import pulumi

from datakit.infra import outputs
from datakit.infra.docker import postgres
from datakit.infra.docker.network import Layout, Placement
from datakit.infra.docker.node import NodeContainers, NodeSpec
from datakit.infra.scrape import job_intervals, scrape_targets
from datakit.infra.secret import Secrets
from datakit.infra.substrate import Provisioned
from datakit.nodes.metrics import rules
from datakit.nodes.metrics.exporters import MONITOR_CONNECTION_LIMIT, pg_queries_yaml
from datakit.nodes.metrics.prometheus import duration, render_config
from datakit.topology import Node, Topology

QUERIES = "/etc/postgres_exporter/queries.yml"
PROMETHEUS_DIR = "/etc/prometheus"
PROMETHEUS_DATA = "/prometheus"  # the image's own data dir, owned by its user (nobody)

# Create or update, in one statement built by the server: psql variables do not reach
# into a DO block. The password travels inside the stack's network, as the app role's does.
MONITOR_ROLE_SCRIPT = """set -euo pipefail
psql "$DATAKIT_DSN" -v ON_ERROR_STOP=1 --set monitor_user="$DATAKIT_MONITOR_USER" \\
  --set monitor_pass="$DATAKIT_MONITOR_PASSWORD" <<'SQL'
SELECT format('%s ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
              'CONNECTION LIMIT {limit} PASSWORD %L',
              CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = :'monitor_user')
                   THEN 'ALTER' ELSE 'CREATE' END, :'monitor_user', :'monitor_pass') \\gexec
GRANT pg_monitor TO :"monitor_user";
SQL
""".replace("{limit}", str(MONITOR_CONNECTION_LIMIT))


def scrape_timeout_s(topo: Topology) -> float:
    """How long an exporter waits for its server: under one scrape interval, so a hung
    server reads as down (pg_up/redis_up 0) rather than as a dead exporter."""
    return topo.metrics.scrape_interval_s * 0.8


def wget_probe(port: int, path: str, expect: str | None = None) -> str:
    """A health check fetching the node's own page (the images have busybox's wget)."""
    fetch = f"wget -q -O - http://127.0.0.1:{port}{path}"
    return f"{fetch} | grep -q '^{expect}'" if expect else f"{fetch} > /dev/null"


def monitor_role(topo: Topology, secrets: Secrets, layout: Layout, containers: NodeContainers,
                 members: list[pulumi.Resource], parent: pulumi.Resource) -> pulumi.Resource:
    """The one-shot job that makes the exporters' role on whichever member leads."""
    nodes = topo.nodes("postgres")
    first = layout[nodes[0].name]
    dsn = outputs.postgres_dsn([(layout[n.name].peer_host, n.port) for n in nodes],
                               dbname="postgres", user=outputs.POSTGRES_SUPERUSER,
                               attrs="read-write")
    built = postgres.image(topo, containers, first.docker_host, parent)
    job = NodeSpec("postgres", ["bash", "-c", MONITOR_ROLE_SCRIPT], "true", None,
                   env={"DATAKIT_DSN": dsn, "DATAKIT_MONITOR_USER": outputs.POSTGRES_MONITOR_USER},
                   secret_env={"PGPASSWORD": secrets.get("postgres", "superuser"),
                               "DATAKIT_MONITOR_PASSWORD": secrets.get("postgres", "monitor")},
                   image=built.image_name)
    return containers.container(first, job, parent, depends_on=members,
                                name="postgres-monitor-role", one_shot=True)


def postgres_exporter(topo: Topology, secrets: Secrets, node: Node, served: Placement,
                      image: pulumi.Input[str]) -> NodeSpec:
    # lib/pq counts connect_timeout in whole seconds
    wait = max(1, int(scrape_timeout_s(topo)))
    uri = (f"{served.peer_host}:{served.node.port}/postgres?sslmode=disable"
           f"&connect_timeout={wait}")
    return NodeSpec(
        "exporter", [f"--web.listen-address=:{node.port}", f"--extend.query-path={QUERIES}",
                     "--log.level=warn"],
        wget_probe(node.port, "/metrics", "pg_up 1"), None,
        env={"DATA_SOURCE_URI": uri, "DATA_SOURCE_USER": outputs.POSTGRES_MONITOR_USER},
        secret_env={"DATA_SOURCE_PASS": secrets.get("postgres", "monitor")},
        uploads={QUERIES: pg_queries_yaml()}, image=image)


def redis_exporter(topo: Topology, secrets: Secrets, node: Node, served: Placement,
                   image: pulumi.Input[str]) -> NodeSpec:
    # A Sentinel has its own password; redis_exporter tells a Sentinel by its INFO.
    role = "sentinel" if served.node.service == "sentinel" else "default"
    timeout_ms = int(scrape_timeout_s(topo) * 1000)
    return NodeSpec(
        "exporter", [f"-redis.addr=redis://{served.peer_host}:{served.node.port}",
                     f"-web.listen-address=:{node.port}", f"-connection-timeout={timeout_ms}ms"],
        wget_probe(node.port, "/metrics", "redis_up 1"), None,
        secret_env={"REDIS_PASSWORD": secrets.get("redis", role)}, image=image)


def prometheus_config(topo: Topology, layout: Layout) -> str:
    """prometheus.yml: every target at its peer address, the rules file, the stack label."""
    return render_config(
        targets=scrape_targets(topo, lambda name: layout[name].peer_host),
        scrape_interval_s=topo.metrics.scrape_interval_s, job_intervals=job_intervals(topo),
        rules_file=f"{PROMETHEUS_DIR}/rules.yml", external_labels={"stack": topo.name})


def prometheus(topo: Topology, layout: Layout, node: Node) -> NodeSpec:
    """The server, its data on a named volume: a changed config replaces the container
    (uploads are written at create), and the samples stay."""
    spec = topo.metrics
    return NodeSpec(
        "prometheus",
        [f"--config.file={PROMETHEUS_DIR}/prometheus.yml",
         f"--storage.tsdb.path={PROMETHEUS_DATA}",
         f"--storage.tsdb.retention.time={duration(spec.retention, 'retention')}",
         f"--web.listen-address=0.0.0.0:{node.port}",
         "--web.enable-lifecycle",  # POST /-/reload after editing the config by hand
         "--log.level=warn"],
        wget_probe(node.port, "/-/ready"), PROMETHEUS_DATA,
        uploads={f"{PROMETHEUS_DIR}/prometheus.yml": prometheus_config(topo, layout),
                 f"{PROMETHEUS_DIR}/rules.yml": rules.render(topo.baselines,
                                                             for_s=spec.alert_for_s)},
        start_period_s=60)


def build(topo: Topology, secrets: Secrets, layout: Layout, containers: NodeContainers,
          made: list[Provisioned], parent: pulumi.Resource) -> list[Provisioned]:
    """An exporter beside each server once it is healthy (PostgreSQL's after their role),
    then Prometheus over every target."""
    by_name = {p.node.name: p.resource for p in made}
    members = [by_name[n.name] for n in topo.nodes("postgres")]
    role = monitor_role(topo, secrets, layout, containers, members, parent) if members else None
    out: list[Provisioned] = []
    for node in topo.metrics_nodes():
        if node.service != "exporter":
            continue
        place, served = layout[node.name], layout[node.serves]
        is_pg = served.node.service == "postgres"
        image = containers.image("postgres_exporter" if is_pg else "redis_exporter",
                                 place.docker_host, parent).image_id
        make = postgres_exporter if is_pg else redis_exporter
        after = [by_name[node.serves], *([role] if is_pg and role else [])]
        res = containers.container(place, make(topo, secrets, node, served, image), parent,
                                   depends_on=after)
        out.append(place.provisioned(res))
    server = layout["prometheus"]
    res = containers.container(server, prometheus(topo, layout, server.node), parent,
                               depends_on=[p.resource for p in out])
    return [*out, server.provisioned(res)]
