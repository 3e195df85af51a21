"""The docker substrate: the topology's nodes as containers, made with pulumi-docker.

One module per service (etcd, postgres, redis, kafka, metrics) behind the Substrate
contract; `network` decides where each node runs and how it is reached, `node` builds the
container every service shares, `provider` makes one pulumi-docker provider per Docker host.
"""

from __future__ import annotations

import pulumi

from datakit.infra import outputs
from datakit.infra.docker import etcd, kafka, metrics, postgres, redis
from datakit.infra.docker.migrations import MigrationRun
from datakit.infra.docker.network import Layout
from datakit.infra.docker.node import NodeContainers
from datakit.infra.secret import Secrets
from datakit.infra.substrate import Provisioned
from datakit.nodes.metrics.exporters import agent_jar
from datakit.paths import PROJECT_DIR
from datakit.topology import Topology


class DockerSubstrate:
    name = "docker"

    def __init__(self) -> None:
        self._layouts: dict[str, tuple[Layout, NodeContainers]] = {}
        self._dcs: dict[str, list[pulumi.Resource]] = {}  # per stack: its etcd containers

    def _for(self, topo: Topology) -> tuple[Layout, NodeContainers]:
        """The stack's layout, made (and checked) at the first call, before any resource of
        this substrate; networks, images and providers are then shared by every service."""
        if topo.name not in self._layouts:
            if topo.metrics.enabled and topo.nodes("kafka"):
                agent_jar()  # uploaded into each broker: missing is one line, not half a stack
            layout = Layout(topo)
            self._layouts[topo.name] = (layout, NodeContainers(layout))
        return self._layouts[topo.name]

    def etcd(self, topo: Topology, secrets: Secrets, parent) -> list[Provisioned]:
        made = etcd.build(topo, *self._for(topo), parent)
        self._dcs[topo.name] = [p.resource for p in made]
        return made

    def postgres(self, topo: Topology, secrets: Secrets, parent) -> list[Provisioned]:
        # Patroni's members start once their store is healthy.
        return postgres.build(topo, secrets, *self._for(topo), parent,
                              after=self._dcs.get(topo.name, []))

    def redis(self, topo: Topology, secrets: Secrets, parent) -> list[Provisioned]:
        return redis.build(topo, secrets, *self._for(topo), parent)

    def kafka(self, topo: Topology, secrets: Secrets, parent) -> list[Provisioned]:
        return kafka.build(topo, secrets, *self._for(topo), parent)

    def client_tls(self, topo: Topology) -> None:
        """Containers do not take certificates yet: their links are plaintext (`up` warns)."""
        return None

    def migrations(self, topo: Topology, secrets: Secrets, after: list[pulumi.Resource],
                   parent: pulumi.Resource) -> pulumi.Resource | None:
        layout, _ = self._for(topo)
        nodes = topo.nodes("postgres")
        primary = layout[nodes[0].name]
        if not (primary.published or primary.host_network):
            pulumi.log.warn(
                f"stack {topo.name}: migrations not applied: PostgreSQL is not published, so "
                "`pulumi up` cannot reach it; add postgres to docker.publish")
            return None
        hosts = [(layout[n.name].client_host, n.port) for n in nodes]
        dsn = outputs.postgres_dsn(hosts, dbname=topo.postgres.database,
                                   user=topo.postgres.app_user, attrs="read-write")
        primary_id = after[0].id if after else ""
        return MigrationRun("migrations", dsn=dsn, password=secrets.get("postgres", "app"),
                            migrations_dir=PROJECT_DIR / topo.postgres.migrations,
                            primary=primary_id,
                            opts=pulumi.ResourceOptions(parent=parent, depends_on=after))

    def metrics(self, topo: Topology, secrets: Secrets, made: list[Provisioned],
                parent: pulumi.Resource) -> list[Provisioned]:
        return metrics.build(topo, secrets, *self._for(topo), made, parent)
