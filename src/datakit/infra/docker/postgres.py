"""PostgreSQL nodes as containers run by Patroni, on the stack's etcd containers.

The image is built by the program (pulumi-docker's `Image`) from the stack's pinned
official PostgreSQL image plus Patroni from PyPI at the pinned version
(postgres_image/Dockerfile). Each container runs `patroni /etc/patroni/patroni.yml`: the
same patroni.yml the local substrate writes (patroni_conf.render), with the container's
addresses (it binds 0.0.0.0 and is reached at its peer address) and no password in it:
Patroni takes them from its PATRONI_*_PASSWORD environment, which is secret. Patroni owns
initdb, the replicas' clones, the slots, the synchronous quorum, failover and pg_rewind.

pg-1 starts first and initialises the cluster (its container is healthy once Patroni says
it is ready); the others depend on it and clone it. The application role and database come
from Patroni's post_bootstrap, an uploaded script that reads them from the environment.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import yaml

from datakit.infra import outputs
from datakit.infra.docker.network import Layout
from datakit.infra.docker.node import NodeContainers, NodeSpec
from datakit.infra.secret import Secrets
from datakit.infra.substrate import Provisioned
from datakit.nodes.archive import archive_command
from datakit.nodes.patroni_conf import render
from datakit.toolchain.versions import patroni_version
from datakit.topology import Node, Topology

VOLUME = "/var/lib/postgresql/data"
ARCHIVE = f"{VOLUME}/archive"
CONFIG = "/etc/patroni/patroni.yml"
POST_BOOTSTRAP = "/etc/patroni/post-bootstrap.sh"
IMAGE_CONTEXT = Path(__file__).parent / "postgres_image"

# Patroni runs it once, on the member that initialises, with the superuser's connection URL.
POST_BOOTSTRAP_SCRIPT = """#!/bin/bash
# datakit: the application role and database of a new cluster (no secret in this file).
set -euo pipefail
psql "$1" -v ON_ERROR_STOP=1 --set app_user="$DATAKIT_APP_USER" \\
  --set app_pass="$DATAKIT_APP_PASSWORD" --set db="$DATAKIT_DATABASE" <<'SQL'
CREATE ROLE :"app_user" WITH LOGIN PASSWORD :'app_pass';
CREATE DATABASE :"db" OWNER :"app_user";
SQL
"""


def image_name(topo: Topology) -> str:
    """The built image's name: its base tag and Patroni's version, so either changing makes
    a new image (and new containers on the same volumes)."""
    base = topo.docker.images.postgres.split("/")[-1].replace(":", "-").replace("@", "-")
    return f"datakit/{base}-patroni:{patroni_version()}"


def image(topo: Topology, containers: NodeContainers, docker_host: str | None,
          parent: pulumi.Resource):
    """The built PostgreSQL image on a Docker host (made once per host, shared by the
    members and by jobs that need psql)."""
    return containers.built_image(
        "postgres-patroni", image_name(topo), IMAGE_CONTEXT,
        {"POSTGRES_IMAGE": topo.docker.images.postgres, "PATRONI_VERSION": patroni_version()},
        docker_host, parent)


def patroni_yml(topo: Topology, layout: Layout, node: Node) -> str:
    """patroni.yml of `node`'s container, without passwords."""
    spec = topo.postgres
    props = {
        "name": node.name, "port": node.port, "rest_port": spec.rest_port(node.name),
        "data_dir": VOLUME, "scope": topo.patroni_scope,
        "host": layout[node.name].peer_host, "listen_host": "0.0.0.0",
        # SCRAM from anywhere on the stack's network (or the machines, on host networking).
        "client_networks": ["all"],
        "etcd": [{"name": n.name, "host": layout[n.name].peer_host, "port": n.port}
                 for n in topo.nodes("etcd")],
        "superuser": outputs.POSTGRES_SUPERUSER,
        "replication_user": outputs.POSTGRES_REPLICATION_USER,
        "settings": spec.settings.gucs(), "synchronous_standbys": spec.synchronous_standbys,
        "patroni": spec.patroni.model_dump(exclude={"rest_port_base"}),
        "bin_dir": f"/usr/lib/postgresql/{spec.version}/bin",
        "sync_bootstrap": True,  # a container's disk is the one to trust
    }
    if spec.archive:
        props["archive_dir"] = ARCHIVE
    config = render(props)
    config["postgresql"]["parameters"] = {
        "unix_socket_directories": "/var/run/postgresql",
        **({"archive_mode": "on", "archive_command": archive_command(ARCHIVE)}
           if spec.archive else {})}
    config["bootstrap"]["post_bootstrap"] = POST_BOOTSTRAP
    config["log"] = {"level": "INFO", "deduplicate_heartbeat_logs": True}  # to docker logs
    return "# Written by datakit; passwords come from the environment.\n" + yaml.safe_dump(
        config, sort_keys=False)


def health(topo: Topology, node: Node) -> str:
    """Ready as Patroni means it: the leader running, or a replica streaming and caught up."""
    rest = topo.postgres.rest_port(node.name)
    return (f"/opt/patroni/bin/python -c \"import urllib.request as u; "
            f"u.urlopen('http://127.0.0.1:{rest}/readiness', timeout=4)\"")


def build(topo: Topology, secrets: Secrets, layout: Layout, containers: NodeContainers,
          parent: pulumi.Resource, *, after: list[pulumi.Resource]) -> list[Provisioned]:
    """The members, after `after` (the etcd containers)."""
    spec = topo.postgres
    secret_env = {
        "PATRONI_SUPERUSER_PASSWORD": secrets.get("postgres", "superuser"),
        "PATRONI_REPLICATION_PASSWORD": secrets.get("postgres", "replication"),
        "PATRONI_RESTAPI_PASSWORD": secrets.get("postgres", "rest"),
        "DATAKIT_APP_PASSWORD": secrets.get("postgres", "app"),
    }
    env = {"PATRONI_RESTAPI_USERNAME": outputs.PATRONI_REST_USER,
           "DATAKIT_APP_USER": spec.app_user, "DATAKIT_DATABASE": spec.database}
    made: list[Provisioned] = []
    first = None
    for node in topo.nodes("postgres"):
        place = layout[node.name]
        built = image(topo, containers, place.docker_host, parent)
        node_spec = NodeSpec(
            "postgres", ["patroni", CONFIG], health(topo, node), VOLUME, env, secret_env,
            uploads={CONFIG: patroni_yml(topo, layout, node),
                     POST_BOOTSTRAP: POST_BOOTSTRAP_SCRIPT},
            start_period_s=120, user="postgres", image=built.image_name,
            extra_ports=[spec.rest_port(node.name)])
        # pg-1 initialises the cluster; the others start once it is ready, and clone it.
        res = containers.container(place, node_spec, parent,
                                   depends_on=[*after, *([first] if first else [])])
        first = first or res
        made.append(place.provisioned(res))
    return made
