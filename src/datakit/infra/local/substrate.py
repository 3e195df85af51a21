"""The local substrate: each node a native daemon on loopback, as a Pulumi dynamic resource.

Creation order is the only coordination: Patroni's members after the etcd cluster is
ready, then the Patroni cluster's ready wait, the migrations after that; Sentinels after
the Redis data nodes; the cluster-ready wait after every Kafka node, topics after that.
Each node's `create` returns when that node is ready, or, where members only form a
cluster together (etcd, Patroni), when it runs, and a group resource waits for the whole;
none waits on another's `create` (the dynamic provider serves at most four calls at once).

TLS: each node's props carry its certificate (`tls`, from the stack's CA: infra/certs.py),
and the resources that act on nodes as their client (the group waits, the migrations) reach
them with a member's own files; the kit's client files go to `<data dir>/tls/`.
"""

from __future__ import annotations

import re
import uuid
from base64 import urlsafe_b64encode

import pulumi

from datakit.infra import outputs
from datakit.infra.certs import CLIENT, StackPki
from datakit.infra.local.node_resource import LocalNode
from datakit.infra.scrape import job_intervals, scrape_targets
from datakit.infra.secret import Secrets
from datakit.infra.substrate import Provisioned
from datakit.nodes import tls
from datakit.paths import PROJECT_DIR
from datakit.topology import Node, Topology

HOST = "127.0.0.1"  # where exporters and Prometheus listen; nodes have their own


def host(node: Node) -> str:
    """Where a node listens: its own loopback address (topology.local), else 127.0.0.1."""
    return node.host or HOST


def _rules(topo: Topology) -> str:
    from datakit.nodes.metrics import rules

    return rules.render(topo.baselines, for_s=topo.metrics.alert_for_s)


def _generation(nodes: list[LocalNode]) -> pulumi.Output:
    """Changes whenever a node is made anew (a recycled machine, a replaced node), so the
    resources that act through those nodes (cluster wait, topics, migrations) run again."""
    return pulumi.Output.all(*[n.state for n in nodes]).apply(
        lambda states: [f"{s.get('pid')}:{s.get('start_time') or s.get('started')}"
                        for s in states])


class LocalSubstrate:
    name = "local"

    def __init__(self, pki: StackPki | None = None) -> None:
        # Per stack: the etcd group resource (Patroni's members start after it) and the
        # Patroni group resource (the migrations run after it).
        self._dcs: dict[str, LocalNode] = {}
        self._ready: dict[str, LocalNode] = {}
        self._pki = pki
        self._client: dict[str, LocalNode] = {}

    def _tls(self, node: Node, parent) -> dict:
        """A node's `tls` props: its certificate for every address it is reached at."""
        if not (self._pki and self._pki.enabled):
            return {}
        names = dict.fromkeys([host(node), HOST, "localhost", node.name])  # once each, in order
        return {"tls": self._pki.issue(node.name, list(names), parent)}

    def _as_client(self, data_dir: str) -> dict:
        """How a group resource reaches a node: with that node's own files."""
        return {"client_tls": tls.files(data_dir)} if self._pki and self._pki.enabled else {}

    def client_tls(self, topo: Topology, parent=None) -> dict[str, str] | None:
        """The kit's client files (CA, certificate, key) for this stack, written once."""
        if not (self._pki and self._pki.enabled):
            return None
        folder = topo.data_path() / "tls"
        if topo.name not in self._client:
            material = self._pki.issue(CLIENT, [HOST, "localhost"], parent)
            self._client[topo.name] = LocalNode("tls-client", "tls-client", {
                "folder": str(folder), **material},
                opts=pulumi.ResourceOptions(parent=parent))
        return tls.client_paths(folder)

    def _provisioned(self, node: Node, resource: LocalNode, data_dir: str) -> Provisioned:
        handle = resource.state.apply(lambda s: {
            "kind": "local", "pid": s.get("pid"),
            "start_time": s.get("start_time") or s.get("started"),
            "data_dir": data_dir, "log": s.get("log_path") or s.get("log"),
        })
        return Provisioned(node=node, resource=resource, host=host(node),
                           handle=pulumi.Output.unsecret(handle), testinfra="local://")

    def _dir(self, topo: Topology, node: Node) -> str:
        return str(topo.data_path() / node.name)

    # ------------------------------------------------------------------------- etcd

    def etcd(self, topo: Topology, secrets: Secrets, parent) -> list[Provisioned]:
        """etcd members, then one group resource that waits for one leader over them all."""
        spec = topo.etcd
        nodes = topo.nodes("etcd")
        cluster = [{"name": n.name, "host": host(n), "peer_port": n.peer_port} for n in nodes]
        made, members = [], []
        for node in nodes:
            props = {"name": node.name, "host": host(node), "port": node.port,
                     "peer_port": node.peer_port,
                     "data_dir": self._dir(topo, node), "cluster": cluster,
                     # Two stacks on one machine must never join each other's cluster.
                     "cluster_token": f"datakit-{topo.name}",
                     "heartbeat_ms": spec.heartbeat_ms,
                     "election_timeout_ms": spec.election_timeout_ms,
                     **self._tls(node, parent)}
            res = LocalNode(node.name, "etcd-member", props,
                            opts=pulumi.ResourceOptions(parent=parent))
            members.append(res)
            made.append(self._provisioned(node, res, props["data_dir"]))
        self._dcs[topo.name] = LocalNode("etcd-cluster", "etcd-cluster", {
            "members": [{"name": n.name, "host": host(n), "port": n.port,
                         **self._as_client(self._dir(topo, n))} for n in nodes],
            "prefixes": [topo.patroni_prefix],
            "generation": _generation(members),
        }, opts=pulumi.ResourceOptions(parent=parent, depends_on=members))
        return made

    # ------------------------------------------------------------------- PostgreSQL

    def postgres(self, topo: Topology, secrets: Secrets, parent) -> list[Provisioned]:
        """Patroni members, started together (one initialises the cluster, the others clone
        it), then one group resource: the cluster ready and its settings as configured."""
        spec = topo.postgres
        nodes = topo.nodes("postgres")
        dcs = self._dcs[topo.name]
        cluster = {
            "scope": topo.patroni_scope,
            "etcd": [{"name": n.name, "host": host(n), "port": n.port}
                     for n in topo.nodes("etcd")],
            "superuser": outputs.POSTGRES_SUPERUSER,
            "superuser_password": secrets.get("postgres", "superuser"),
            "settings": spec.settings.gucs(),
            "synchronous_standbys": spec.synchronous_standbys,
            "patroni": spec.patroni.model_dump(exclude={"rest_port_base"}),
        }
        common = {
            **cluster,
            "replication_user": outputs.POSTGRES_REPLICATION_USER,
            "replication_password": secrets.get("postgres", "replication"),
            "rest_user": outputs.PATRONI_REST_USER,
            "rest_password": secrets.get("postgres", "rest"),
            "version": spec.version,
            # Every member may be the one that initialises: only that one runs
            # post_bootstrap, which makes the app role and database.
            "app_user": spec.app_user, "app_password": secrets.get("postgres", "app"),
            "app_database": spec.database,
            # Clients on 127.0.0.1, peers from their own addresses (nodes/own_address.py).
            "client_networks": ["127.0.0.0/8"],
        }
        if spec.archive:  # whichever member leads archives (archive_mode on) to one folder
            common["archive_dir"] = str(topo.archive_path())
        made, members, rest = [], [], []
        for node in nodes:
            props = {**common, "name": node.name, "host": host(node), "port": node.port,
                     "rest_port": spec.rest_port(node.name), "data_dir": self._dir(topo, node),
                     # The first member initialises; the others start once it has.
                     "join": bool(members), **self._tls(node, parent)}
            res = LocalNode(node.name, "patroni-member", props,
                            opts=pulumi.ResourceOptions(parent=parent,
                                                        depends_on=[dcs, *members[:1]]))
            members.append(res)
            rest.append({**{k: props[k] for k in ("name", "host", "port", "rest_port", "data_dir",
                                                  "rest_user", "rest_password")},
                         **self._as_client(props["data_dir"])})
            made.append(self._provisioned(node, res, props["data_dir"]))
        self._ready[topo.name] = LocalNode("postgres-ready", "patroni-cluster", {
            **cluster, "members": rest, "generation": _generation(members),
        }, opts=pulumi.ResourceOptions(parent=parent, depends_on=members))
        return made

    # ------------------------------------------------------------------------ Redis

    def redis(self, topo: Topology, secrets: Secrets, parent) -> list[Provisioned]:
        spec = topo.redis
        password = secrets.get("redis", "default")
        data_nodes = topo.nodes("redis")
        peers = [{"name": n.name, "host": host(n), "port": n.port} for n in data_nodes]
        made: list[Provisioned] = []
        servers: list[LocalNode] = []
        first = None
        for node in data_nodes:
            props = {"name": node.name, "host": host(node), "port": node.port,
                     "data_dir": self._dir(topo, node), "password": password,
                     "settings": spec.settings.directives(),
                     "peers": [p for p in peers if p["name"] != node.name],
                     **self._tls(node, parent)}
            depends = []
            if spec.mode == "cluster":
                props["cluster"] = {"node_timeout": spec.cluster.node_timeout_ms,
                                    "bus_port": node.bus_port}
            elif first is not None:
                props["replica"] = True
                depends = [first]
            res = LocalNode(node.name, "redis-server", props,
                            opts=pulumi.ResourceOptions(parent=parent, depends_on=depends))
            first = first or res
            servers.append(res)
            made.append(self._provisioned(node, res, props["data_dir"]))
        if spec.mode == "cluster":
            LocalNode("redis-cluster", "redis-cluster", {
                "name": f"{topo.name}-redis", "password": password,
                "nodes": [{**p, **self._as_client(self._dir(topo, n))}
                          for p, n in zip(peers, data_nodes, strict=True)],
                "replicas": spec.cluster.replicas_per_master,
                "generation": _generation(servers),
            }, opts=pulumi.ResourceOptions(parent=parent, depends_on=servers))
            return made
        sentinel_password = secrets.get("redis", "sentinel")
        sentinel_nodes, group = topo.nodes("sentinel"), []
        for node in sentinel_nodes:
            props = {"name": node.name, "host": host(node), "port": node.port,
                     "data_dir": self._dir(topo, node), "password": sentinel_password,
                     "master_password": password,
                     "master_name": spec.master_name, "quorum": spec.sentinel.quorum,
                     "settings": {"down-after-milliseconds": spec.sentinel.down_after_ms,
                                  "failover-timeout": spec.sentinel.failover_timeout_ms},
                     "peers": peers, **self._tls(node, parent)}
            res = LocalNode(node.name, "redis-sentinel", props,
                            opts=pulumi.ResourceOptions(parent=parent, depends_on=servers))
            group.append(res)
            made.append(self._provisioned(node, res, props["data_dir"]))
        LocalNode("redis-sentinels", "redis-sentinels", {
            "sentinels": [{"name": n.name, "host": host(n), "port": n.port,
                           **self._as_client(self._dir(topo, n))} for n in sentinel_nodes],
            "password": sentinel_password, "master_name": spec.master_name,
            "generation": _generation(group),
        }, opts=pulumi.ResourceOptions(parent=parent, depends_on=group))
        return made

    # ------------------------------------------------------------------------ Kafka

    def kafka(self, topo: Topology, secrets: Secrets, parent) -> list[Provisioned]:
        spec = topo.kafka
        nodes = topo.nodes("kafka")
        # The group resources reach the cluster with the first node's files (as root).
        reach = self._as_client(self._dir(topo, nodes[0]))
        voters = [{"id": n.index, "host": host(n), "port": n.controller_port} for n in nodes]
        brokers = [{"id": n.index, "host": host(n), "port": n.port} for n in nodes]
        # Certificate names that are super users: the brokers (to the controllers) and
        # the kit's own client (DescribeQuorum); everyone else has ACLs only.
        principals = [n.name for n in nodes] + [CLIENT]
        users = {
            "admin_user": outputs.KAFKA_ADMIN_USER,
            "admin_password": secrets.get("kafka", "admin"),
            "app_user": outputs.KAFKA_APP_USER,
            "app_password": secrets.get("kafka", "app"),
        }
        # One cluster id per stack, stable across runs: derived from the stack's name.
        cluster_id = urlsafe_b64encode(
            uuid.uuid5(uuid.NAMESPACE_URL, f"datakit:{topo.name}").bytes).decode().rstrip("=")
        made, servers = [], []
        for node in nodes:
            props = {**users, "name": node.name, "node_id": node.index, "host": host(node),
                     "port": node.port, "controller_port": node.controller_port,
                     "voters": voters, "cluster_id": cluster_id,
                     "data_dir": self._dir(topo, node), "heap_mb": spec.heap // 1024**2,
                     "settings": spec.server_properties(), "tls_principals": principals,
                     "authorize": True,
                     **self._tls(node, parent)}
            if node.metrics_port:
                props["metrics_port"] = node.metrics_port
            res = LocalNode(node.name, "kafka-node", props,
                            opts=pulumi.ResourceOptions(parent=parent))
            servers.append(res)
            made.append(self._provisioned(node, res, props["data_dir"]))
        ready = LocalNode("kafka-ready", "kafka-ready", {
            **users, **reach, "brokers": brokers, "cluster_id": cluster_id,
            "controllers": [{**v, **reach} for v in voters],
            "generation": _generation(servers),
        }, opts=pulumi.ResourceOptions(parent=parent, depends_on=servers))
        for topic in spec.topics:
            LocalNode(f"topic-{topic.name}", "kafka-topic", {
                **users, **reach, "brokers": brokers, "name": topic.name,
                "group_prefix": spec.app_group_prefix,
                "partitions": topic.partitions, "replication_factor": topic.replication_factor,
                "min_insync_replicas": topic.min_insync_replicas,
                "retention_ms": topic.retention_ms, "config": topic.configs(),
                "generation": ready.state,
            }, opts=pulumi.ResourceOptions(parent=parent, depends_on=[ready]))
        return made

    # ---------------------------------------------------------------------- metrics

    def metrics(self, topo: Topology, secrets: Secrets, made: list[Provisioned],
                parent) -> list[Provisioned]:
        """An exporter beside each server once it is ready (PostgreSQL's after the role they
        log in as), then Prometheus over every target, with the stack's alert rules."""
        by_name = {p.node.name: p for p in made}
        monitor = self._monitor_role(topo, secrets, parent) if topo.nodes("postgres") else None
        out, exporters = [], []
        for node in topo.metrics_nodes():
            if node.name == "process-exporter":
                res = self._processes(topo, node, parent)
                out.append(self._provisioned(node, res, self._dir(topo, node)))
                continue
            if node.service != "exporter":
                continue
            served = by_name[node.serves]
            props = self._exporter_props(topo, secrets, node, served.node, parent)
            after = [served.resource, *([monitor] if served.node.service == "postgres"
                                        else [])]
            res = LocalNode(node.name, "metrics-exporter", props,
                            opts=pulumi.ResourceOptions(parent=parent, depends_on=after))
            exporters.append(res)
            out.append(self._provisioned(node, res, props["dir"]))
        server = topo.metrics_nodes()[-1]
        placed = {n.name: n for n in (*topo.nodes(), *topo.metrics_nodes())}
        props = {"name": server.name, "port": server.port, "dir": self._dir(topo, server),
                 "scrape_interval_s": topo.metrics.scrape_interval_s,
                 "retention": topo.metrics.retention,
                 "targets": scrape_targets(topo, lambda name: host(placed[name])),
                 "job_intervals": job_intervals(topo),
                 "external_labels": {"stack": topo.name}, **self._tls(server, parent),
                 "rules": _rules(topo)}
        res = LocalNode(server.name, "metrics-prometheus", props,
                        opts=pulumi.ResourceOptions(parent=parent, depends_on=exporters))
        return [*out, self._provisioned(server, res, props["dir"])]

    def _processes(self, topo: Topology, node: Node, parent) -> LocalNode:
        """process-exporter, its groups told apart as processes.py says."""
        groups = []
        for n in topo.nodes():
            home = re.escape(self._dir(topo, n))
            if n.service == "postgres":
                groups += [{"name": f"{n.name}-patroni", "cmdline": f"{home}/patroni\\.yml"},
                           {"name": n.name, "cmdline": f"{home}/pgdata"}]
            elif n.service in ("redis", "sentinel"):
                groups.append({"name": n.name,
                               "cmdline": f"^\\S*redis-\\S+ {re.escape(host(n))}:{n.port}( |$)"})
            else:  # Kafka (server.properties) and etcd (etcd.yml): in the data dir
                groups.append({"name": n.name, "cmdline": f"{home}/"})
        for m in topo.metrics_nodes():
            if m.name != node.name:  # the exporters' and Prometheus's own share
                groups.append({"name": m.name, "cmdline": re.escape(
                    f"-listen-address={HOST}:{m.port}")})
        return LocalNode(node.name, "metrics-processes", {
            "name": node.name, "port": node.port, "dir": self._dir(topo, node),
            "groups": groups}, opts=pulumi.ResourceOptions(parent=parent))

    def _monitor_role(self, topo: Topology, secrets: Secrets, parent) -> LocalNode:
        from datakit.nodes.metrics import exporters  # psycopg: only when metrics are on

        return LocalNode("postgres-monitor-role", "metrics-pgmonitor", {
            "nodes": [{"name": n.name, "host": host(n), "port": n.port,
                       **self._as_client(self._dir(topo, n))} for n in topo.nodes("postgres")],
            "superuser": outputs.POSTGRES_SUPERUSER,
            "password": secrets.get("postgres", "superuser"),
            "user": outputs.POSTGRES_MONITOR_USER,
            "monitor_password": secrets.get("postgres", "monitor"),
            # an input, so that a new limit reaches an existing role on `up`
            "connection_limit": exporters.MONITOR_CONNECTION_LIMIT,
        }, opts=pulumi.ResourceOptions(parent=parent, depends_on=[self._ready[topo.name]]))

    def _exporter_props(self, topo: Topology, secrets: Secrets, node: Node,
                        served: Node, parent) -> dict:
        from datakit.nodes.metrics import exporters

        props = {"name": node.name, "port": node.port, "dir": self._dir(topo, node),
                 "target": {"host": host(served), "port": served.port},
                 **self._tls(node, parent),
                 # under one scrape interval: a hung server reads as down, not the exporter
                 "timeout_s": min(0.8, topo.metrics.scrape_interval_s * 0.8)}
        if served.service == "postgres":
            # the queries' digest: a datakit with new queries restarts the exporters
            return {**props, "kind": "postgres", "user": outputs.POSTGRES_MONITOR_USER,
                    "password": secrets.get("postgres", "monitor"),
                    "queries": exporters.queries_digest()}
        role = "sentinel" if served.service == "sentinel" else "default"
        return {**props, "kind": "redis", "password": secrets.get("redis", role)}

    # ------------------------------------------------------------------- migrations

    def migrations(self, topo: Topology, secrets: Secrets, after, parent):
        from datakit.infra.migration_run import migration_inputs

        migrations_dir = PROJECT_DIR / topo.postgres.migrations
        nodes = topo.nodes("postgres")
        hosts = [(host(n), n.port) for n in nodes]
        # As a client of the first member: its CA file is there before any migration runs.
        ca = tls.files(self._dir(topo, nodes[0]))["ca"] if self._pki and self._pki.enabled \
            else None
        dsn = pulumi.Output.concat(
            outputs.postgres_dsn(hosts, dbname=topo.postgres.database,
                                 user=topo.postgres.app_user, attrs="read-write", ca=ca),
            " password=", secrets.get("postgres", "app"))
        ready = [self._ready[topo.name]] if topo.name in self._ready else []
        return LocalNode("migrations", "migrations", {
            "dsn": dsn, "migrations_dir": str(migrations_dir),
            "files": migration_inputs(migrations_dir),
            "generation": _generation(after),
        }, opts=pulumi.ResourceOptions(parent=parent, depends_on=[*after, *ready]))
