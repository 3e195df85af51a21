"""PostgreSQL nodes as containers of the official image: a primary, then replicas cloned
from it with pg_basebackup, each with its own replication slot.

The primary's first start runs the image's initdb with `POSTGRES_PASSWORD`, then
`/docker-entrypoint-initdb.d/10-datakit.sh` (uploaded, no secrets in it: it reads them from
the secret environment) creates the replication and app roles, the database, and a
pg_hba line for replication. A replica whose volume is empty waits for the primary, clones
it with `pg_basebackup -R -C -S <slot>` (slot created by the clone; reused if it exists),
then starts as a hot standby. Settings are `-c` arguments, so a change is a new container
on the same volume. Every node carries `synchronous_standby_names` as if it were the
primary, so a promoted replica keeps the configured quorum.
"""

from __future__ import annotations

import pulumi

from datakit.infra import outputs
from datakit.infra.docker.network import Layout
from datakit.infra.docker.node import NodeContainers, NodeSpec
from datakit.infra.secret import Secrets
from datakit.infra.substrate import Provisioned
from datakit.nodes.archive import archive_command
from datakit.topology import Node, Topology

VOLUME = "/var/lib/postgresql/data"
PGDATA = f"{VOLUME}/pgdata"
ARCHIVE = f"{VOLUME}/archive"
INIT_SCRIPT = "/docker-entrypoint-initdb.d/10-datakit.sh"

PRIMARY_INIT = f"""#!/bin/bash
# datakit: roles, database and replication access, on the primary's first start only.
set -euo pipefail
mkdir -p {ARCHIVE}
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \\
  --set repl_user="$DATAKIT_REPLICATION_USER" --set repl_pass="$DATAKIT_REPLICATION_PASSWORD" \\
  --set app_user="$DATAKIT_APP_USER" --set app_pass="$DATAKIT_APP_PASSWORD" \\
  --set db="$DATAKIT_DATABASE" <<'SQL'
CREATE ROLE :"repl_user" WITH LOGIN REPLICATION PASSWORD :'repl_pass';
CREATE ROLE :"app_user" WITH LOGIN PASSWORD :'app_pass';
CREATE DATABASE :"db" OWNER :"app_user";
SQL
echo "host replication $DATAKIT_REPLICATION_USER all scram-sha-256" >> "$PGDATA/pg_hba.conf"
"""

# $0 is a label; "$@" is the postgres command line handed on to the image's entrypoint.
REPLICA_START = f"""set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA" {ARCHIVE}
  chown -R postgres:postgres {VOLUME}
  chmod 700 "$PGDATA"
  until pg_isready -q -h "$DATAKIT_PRIMARY_HOST" -p "$DATAKIT_PRIMARY_PORT"; do sleep 1; done
  clone() {{
    gosu postgres pg_basebackup -h "$DATAKIT_PRIMARY_HOST" -p "$DATAKIT_PRIMARY_PORT" \\
      -U "$DATAKIT_REPLICATION_USER" -D "$PGDATA" -X stream -R -S "$DATAKIT_SLOT" "$@"
  }}
  clone -C || {{ find "$PGDATA" -mindepth 1 -delete; clone; }}
fi
exec docker-entrypoint.sh "$@"
"""


def slot_name(node: str) -> str:
    return node.replace("-", "_")


def server_args(topo: Topology, node: Node) -> list[str]:
    """The `postgres -c ...` command line of `node` (no secrets)."""
    spec = topo.postgres
    gucs = {
        "port": str(node.port),
        "listen_addresses": "*",
        "cluster_name": node.name,  # the WAL receiver's application_name
        "hot_standby": "on",
        **spec.settings.gucs(),
        "synchronous_standby_names": spec.synchronous_standby_names(node.name),
    }
    if spec.archive:
        gucs["archive_mode"] = "on"
        gucs["archive_command"] = archive_command(ARCHIVE)
    args = ["postgres"]
    for key, value in gucs.items():
        args += ["-c", f"{key}={value}"]
    return args


def health(node: Node, replica: bool) -> str:
    ready = f"pg_isready -q -h 127.0.0.1 -p {node.port} -U {outputs.POSTGRES_SUPERUSER}"
    if not replica:
        return ready
    # A replica is healthy once it is a standby that streams WAL from its upstream.
    query = "select status from pg_stat_wal_receiver"
    return (f'{ready} && [ "$(PGPASSWORD="$DATAKIT_SUPERUSER_PASSWORD" psql -h 127.0.0.1 '
            f"-p {node.port} -U {outputs.POSTGRES_SUPERUSER} -d postgres -Atc '{query}')\" "
            "= streaming ]")


def build(topo: Topology, secrets: Secrets, layout: Layout, containers: NodeContainers,
          parent: pulumi.Resource) -> list[Provisioned]:
    spec = topo.postgres
    nodes = topo.nodes("postgres")
    primary_node = nodes[0]
    primary_place = layout[primary_node.name]
    common_env = {"PGDATA": PGDATA, "POSTGRES_USER": outputs.POSTGRES_SUPERUSER,
                  "DATAKIT_REPLICATION_USER": outputs.POSTGRES_REPLICATION_USER}
    superuser = secrets.get("postgres", "superuser")
    made: list[Provisioned] = []
    primary = None
    for node in nodes:
        place = layout[node.name]
        env = {**common_env, "PGPORT": str(node.port)}  # initdb's temporary server too
        if node is primary_node:
            env.update(DATAKIT_APP_USER=spec.app_user, DATAKIT_DATABASE=spec.database)
            secret_env = {"POSTGRES_PASSWORD": superuser,
                          "DATAKIT_REPLICATION_PASSWORD": secrets.get("postgres", "replication"),
                          "DATAKIT_APP_PASSWORD": secrets.get("postgres", "app")}
            node_spec = NodeSpec("postgres", server_args(topo, node),
                                 health(node, replica=False), VOLUME, env, secret_env,
                                 uploads={INIT_SCRIPT: PRIMARY_INIT})
            res = containers.container(place, node_spec, parent)
            primary = res
        else:
            env.update(DATAKIT_PRIMARY_HOST=primary_place.peer_host,
                       DATAKIT_PRIMARY_PORT=str(primary_node.port),
                       DATAKIT_SLOT=slot_name(node.name))
            # pg_basebackup reads the replication password from PGPASSWORD (and -R writes
            # it into the standby's primary_conninfo, on the volume); the health probe's
            # psql logs in as the superuser with its own variable.
            secret_env = {"PGPASSWORD": secrets.get("postgres", "replication"),
                          "DATAKIT_SUPERUSER_PASSWORD": superuser}
            command = ["bash", "-c", REPLICA_START, "datakit-replica",
                       *server_args(topo, node)]
            node_spec = NodeSpec("postgres", command, health(node, replica=True), VOLUME,
                                 env, secret_env,
                                 start_period_s=120)
            res = containers.container(place, node_spec, parent, depends_on=[primary])
        made.append(Provisioned(node, res, place.client_host, place.handle, place.testinfra))
    return made
