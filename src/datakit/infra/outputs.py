"""The stack outputs, exported in their one schema whatever the substrate: the models of
datakit.stack.schema (StackOutputs), which everything after provisioning reads.

The endpoints are plain values and are built as the schema's models; the node rows hold
each node's handle and the secrets are generated passwords, Pulumi Outputs resolved only
by the engine, so they are exported as the schema's fields. The docker substrate's mock
tests validate the whole export with `StackOutputs.model_validate`, so the writer and the
schema cannot drift apart.
"""

from __future__ import annotations

import pulumi

from datakit.infra.scrape import scrape_targets
from datakit.infra.secret import Secrets
from datakit.infra.substrate import Provisioned
from datakit.stack.schema import (
    Endpoints,
    KafkaEndpoints,
    MetricsEndpoints,
    MetricsTarget,
    PostgresEndpoints,
    RedisEndpoints,
    TlsOutputs,
)
from datakit.topology import Topology
from datakit.topology.patroni import NAMESPACE

POSTGRES_SUPERUSER = "postgres"
POSTGRES_REPLICATION_USER = "replicator"
PATRONI_REST_USER = "patroni"
POSTGRES_MONITOR_USER = "datakit_monitor"  # the exporters' role: pg_monitor only
KAFKA_ADMIN_USER = "admin"
KAFKA_APP_USER = "app"


def postgres_dsn(hosts: list[tuple[str, int]], *, dbname: str, user: str, attrs: str,
                 ca: str | None = None) -> str:
    """libpq's multi-host DSN; with `ca` (the CA file), TLS that checks the server's
    certificate against the stack's CA for the very host dialled."""
    ssl = f" sslmode=verify-full sslrootcert={ca}" if ca else ""
    return (f"host={','.join(h for h, _ in hosts)} port={','.join(str(p) for _, p in hosts)} "
            f"dbname={dbname} user={user} target_session_attrs={attrs} connect_timeout=3{ssl}")


def endpoints(topo: Topology, nodes: list[Provisioned],
              client_tls: dict[str, str] | None = None) -> Endpoints:
    by_service: dict[str, list[tuple[str, int]]] = {}
    for p in nodes:
        by_service.setdefault(p.node.service, []).append((p.host, p.node.port))
    pg = by_service.get("postgres", [])
    pg_spec = topo.postgres
    hostports = lambda service: [f"{h}:{port}" for h, port in by_service.get(service, [])]  # noqa: E731
    ca = client_tls["ca"] if client_tls else None
    return Endpoints(
        postgres=PostgresEndpoints(
            write_dsn=postgres_dsn(pg, dbname=pg_spec.database, user=pg_spec.app_user,
                                   attrs="read-write", ca=ca),
            read_dsn=postgres_dsn(pg, dbname=pg_spec.database, user=pg_spec.app_user,
                                  attrs="prefer-standby", ca=ca),
            database=pg_spec.database, app_user=pg_spec.app_user,
            superuser=POSTGRES_SUPERUSER, replication_user=POSTGRES_REPLICATION_USER,
            cluster=topo.patroni_scope, namespace=NAMESPACE, dcs=hostports("etcd"),
            rest_user=PATRONI_REST_USER),
        redis=RedisEndpoints(mode=topo.redis.mode, master_name=topo.redis.master_name,
                             sentinels=hostports("sentinel"), seeds=hostports("redis"),
                             tls=client_tls is not None),
        kafka=KafkaEndpoints(bootstrap_servers=",".join(hostports("kafka")),
                             security_protocol="SASL_SSL" if client_tls else "SASL_PLAINTEXT",
                             sasl_mechanism="SCRAM-SHA-512",
                             username=KAFKA_APP_USER, admin_username=KAFKA_ADMIN_USER,
                             group_prefix=topo.kafka.app_group_prefix),
        metrics=metrics_endpoints(topo, nodes),
    )


def metrics_endpoints(topo: Topology, nodes: list[Provisioned]) -> MetricsEndpoints | None:
    """Where Prometheus answers (on the address clients reach) and what it scrapes, at the
    addresses it scrapes them (its `instance` label, which verify matches targets by)."""
    server = next((p for p in nodes if p.node.service == "prometheus"), None)
    if server is None:
        return None
    hosts = {p.node.name: p.peer_host or p.host for p in nodes}
    targets = [MetricsTarget(job=job, node=t["labels"]["node"], address=t["address"])
               for job, members in scrape_targets(topo, hosts.__getitem__).items()
               for t in members]
    return MetricsEndpoints(prometheus_url=f"http://{server.host}:{server.node.port}",
                            scrape_interval_s=topo.metrics.scrape_interval_s,
                            targets=targets, postgres_user=POSTGRES_MONITOR_USER)


def rest_url(topo: Topology, p: Provisioned, secure: bool = False) -> str | None:
    """A PostgreSQL node's Patroni REST API, on the address clients reach the node at."""
    if p.node.service != "postgres":
        return None
    return f"{'https' if secure else 'http'}://{p.host}:{topo.postgres.rest_port(p.node.name)}"


def tls_outputs(topo: Topology, client_tls: dict[str, str] | None,
                ca_pem: pulumi.Output[str] | None) -> dict:
    """The outputs' `tls`: where the kit's CA and client files are, and the CA itself, so a
    user can point psql, redis-cli or a Kafka client at it."""
    if not client_tls:
        return TlsOutputs(enabled=False).model_dump()
    fields = TlsOutputs(enabled=True, ca_path=client_tls["ca"], cert_path=client_tls["cert"],
                        key_path=client_tls["key"], generation=topo.tls.generation).model_dump()
    return {**fields, "ca_pem": ca_pem}


def node_rows(topo: Topology, nodes: list[Provisioned], secure: bool = False) -> list[dict]:
    """The schema's `Node` fields per node; `handle` is still a Pulumi Output here."""
    return [{
        "service": p.node.service, "role": p.node.initial_role, "name": p.node.name,
        "host": p.host, "port": p.node.port, "ports": p.node.ports(),
        "handle": p.handle, "testinfra": p.testinfra, "rest_url": rest_url(topo, p, secure),
    } for p in nodes]


def export(topo: Topology, nodes: list[Provisioned], secrets: Secrets,
           client_tls: dict[str, str] | None = None,
           ca_pem: pulumi.Output[str] | None = None) -> None:
    pulumi.export("stack", topo.name)
    pulumi.export("substrate", topo.substrate)
    pulumi.export("disposable", topo.disposable)
    pulumi.export("endpoints", endpoints(topo, nodes, client_tls).model_dump())
    pulumi.export("nodes", node_rows(topo, nodes, secure=client_tls is not None))
    pulumi.export("tls", tls_outputs(topo, client_tls, ca_pem))
    pulumi.export("secrets", pulumi.Output.secret(secrets.as_output()))
