"""The stack outputs: one schema whatever the substrate (DESIGN.md, "Stack outputs").

    endpoints.postgres  write_dsn, read_dsn (libpq multi-host, no password), database, users,
                        cluster (Patroni's scope), namespace, dcs (etcd "host:port"), rest_user
    endpoints.redis     mode, master_name, sentinels ["host:port"], seeds ["host:port"]
    endpoints.kafka     bootstrap_servers, security_protocol, sasl_mechanism, username
    nodes               [{service, role, name, host, port, ports, handle, testinfra, rest_url}]
                        (rest_url: a PostgreSQL node's Patroni REST API; etcd members are
                        nodes too)
    secrets             {postgres: {superuser, replication, app}, redis: {...}, kafka: {...}}
    stack, substrate, disposable
"""

from __future__ import annotations

import pulumi

from datakit.infra.secret import Secrets
from datakit.infra.substrate import Provisioned
from datakit.topology import Topology
from datakit.topology.patroni import NAMESPACE

POSTGRES_SUPERUSER = "postgres"
POSTGRES_REPLICATION_USER = "replicator"
PATRONI_REST_USER = "patroni"
KAFKA_ADMIN_USER = "admin"
KAFKA_APP_USER = "app"


def postgres_dsn(hosts: list[tuple[str, int]], *, dbname: str, user: str, attrs: str) -> str:
    return (f"host={','.join(h for h, _ in hosts)} port={','.join(str(p) for _, p in hosts)} "
            f"dbname={dbname} user={user} target_session_attrs={attrs} connect_timeout=3")


def endpoints(topo: Topology, nodes: list[Provisioned]) -> dict:
    by_service: dict[str, list[tuple[str, int]]] = {}
    for p in nodes:
        by_service.setdefault(p.node.service, []).append((p.host, p.node.port))
    pg = by_service.get("postgres", [])
    pg_spec = topo.postgres
    hostports = lambda service: [f"{h}:{port}" for h, port in by_service.get(service, [])]  # noqa: E731
    return {
        "postgres": {
            "write_dsn": postgres_dsn(pg, dbname=pg_spec.database, user=pg_spec.app_user,
                                      attrs="read-write"),
            "read_dsn": postgres_dsn(pg, dbname=pg_spec.database, user=pg_spec.app_user,
                                     attrs="prefer-standby"),
            "database": pg_spec.database,
            "app_user": pg_spec.app_user,
            "superuser": POSTGRES_SUPERUSER,
            "replication_user": POSTGRES_REPLICATION_USER,
            "cluster": topo.patroni_scope,
            "namespace": NAMESPACE,
            "dcs": hostports("etcd"),
            "rest_user": PATRONI_REST_USER,
        },
        "redis": {
            "mode": topo.redis.mode,
            "master_name": topo.redis.master_name,
            "sentinels": hostports("sentinel"),
            "seeds": hostports("redis"),
        },
        "kafka": {
            "bootstrap_servers": ",".join(hostports("kafka")),
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "username": KAFKA_APP_USER,
            "admin_username": KAFKA_ADMIN_USER,
        },
    }


def rest_url(topo: Topology, p: Provisioned) -> str | None:
    """A PostgreSQL node's Patroni REST API, on the address clients reach the node at."""
    if p.node.service != "postgres":
        return None
    return f"http://{p.host}:{topo.postgres.rest_port(p.node.name)}"


def node_rows(topo: Topology, nodes: list[Provisioned]) -> list[dict]:
    return [{
        "service": p.node.service, "role": p.node.initial_role, "name": p.node.name,
        "host": p.host, "port": p.node.port, "ports": p.node.ports(),
        "handle": p.handle, "testinfra": p.testinfra, "rest_url": rest_url(topo, p),
    } for p in nodes]


def export(topo: Topology, nodes: list[Provisioned], secrets: Secrets) -> None:
    pulumi.export("stack", topo.name)
    pulumi.export("substrate", topo.substrate)
    pulumi.export("disposable", topo.disposable)
    pulumi.export("endpoints", endpoints(topo, nodes))
    pulumi.export("nodes", node_rows(topo, nodes))
    pulumi.export("secrets", pulumi.Output.secret(secrets.as_output()))
