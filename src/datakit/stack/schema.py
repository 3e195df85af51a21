"""The stack outputs as typed models: the one schema whatever the substrate.

`infra` writes it (infra/outputs.py exports `StackOutputs`' fields); migrate, verify, load,
drills and status read it through `stack.outputs.read()`, never as a raw dict. A stack
that datakit did not make can be described by a JSON file of the same shape
(`$DATAKIT_OUTPUTS_FILE`): `StackOutputs.model_json_schema()` is its contract.

    endpoints.postgres  write_dsn, read_dsn (libpq multi-host), database, users, Patroni's
                        cluster name and namespace, its DCS endpoints (etcd), REST user
    endpoints.redis     mode, master_name, sentinels ["host:port"], seeds ["host:port"]
    endpoints.kafka     bootstrap_servers, security_protocol, sasl_mechanism, usernames
    nodes               [{service, role, name, host, port, ports, handle, testinfra, rest_url}]
    tls                 enabled, ca_path, ca_pem, cert_path/key_path (the kit's client
                        certificate: etcd and Patroni's REST API want one), generation
    secrets             {postgres: {superuser, replication, app, rest}, redis, kafka}
    stack, substrate, disposable
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datakit.errors import DatakitError


class Model(BaseModel):
    # Outputs written by a newer datakit may carry more: readers take what they know.
    model_config = ConfigDict(extra="allow")


class PostgresEndpoints(Model):
    write_dsn: str  # target_session_attrs=read-write; read() adds the app password
    read_dsn: str  # target_session_attrs=prefer-standby
    database: str
    app_user: str
    superuser: str = "postgres"
    replication_user: str = "replicator"
    cluster: str | None = None  # Patroni's scope: the cluster's name
    namespace: str = "/datakit/"  # its keys in etcd live under <namespace><cluster>/
    dcs: list[str] = []  # host:port of the etcd members Patroni uses
    rest_user: str = "patroni"  # Patroni's REST API asks for it on every POST

    @property
    def dcs_prefix(self) -> str:
        return f"{self.namespace}{self.cluster}/"


class RedisEndpoints(Model):
    mode: Literal["sentinel", "cluster"] = "sentinel"
    master_name: str = ""
    sentinels: list[str] = []  # host:port
    seeds: list[str] = []  # host:port of the data nodes
    tls: bool = False  # every data node and Sentinel takes TLS only (the stack's CA)


class KafkaEndpoints(Model):
    bootstrap_servers: str
    security_protocol: str
    sasl_mechanism: str
    username: str
    admin_username: str = "admin"
    group_prefix: str = ""  # the app may consume only in groups whose ids start with it


class MetricsTarget(Model):
    job: str  # postgres, redis, sentinel, kafka, patroni, etcd, prometheus
    node: str  # the node the metrics are about
    address: str  # host:port of its /metrics, as Prometheus scrapes it (its `instance`)


class MetricsEndpoints(Model):
    prometheus_url: str
    scrape_interval_s: float
    targets: list[MetricsTarget]
    postgres_user: str  # the exporters' role (secret postgres.monitor)


class Endpoints(Model):
    postgres: PostgresEndpoints
    redis: RedisEndpoints
    kafka: KafkaEndpoints
    metrics: MetricsEndpoints | None = None  # None when the stack runs no Prometheus


class Handle(Model):
    """How node control finds a node: a local process or a docker container."""

    kind: Literal["local", "docker"]
    pid: int | None = None  # local: the process when `up` last saw it
    start_time: int | None = None  # local: its start time, so a reused pid is not it
    data_dir: str | None = None  # local: the node's folder
    log: str | None = None  # local: the node's log file
    container: str | None = None  # docker
    docker_host: str | None = None  # docker: the engine's URL, None for the local one


class Node(Model):
    service: str  # postgres, redis, sentinel, kafka, etcd
    role: str  # the role it was made with; ask the node for its role now
    name: str
    host: str
    port: int
    ports: dict[str, int] = {}
    handle: Handle
    testinfra: str  # a testinfra host URL: local://, docker://NAME
    rest_url: str | None = None  # postgres: its Patroni's REST API (http://host:port)
    # How the kit's clients reach it over TLS ({ca, cert, key} paths), set when the outputs
    # are read (StackOutputs): derived, never written.
    client_tls: dict[str, str] | None = Field(default=None, exclude=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def rest_port(self) -> int | None:
        """The port of its Patroni REST API (PostgreSQL nodes), from `rest_url`."""
        return int(self.rest_url.rsplit(":", 1)[1].rstrip("/")) if self.rest_url else None


class PostgresSecrets(Model):
    superuser: str
    replication: str
    app: str
    rest: str | None = None  # Patroni's REST API (user endpoints.postgres.rest_user)
    monitor: str | None = None  # the exporters' role (endpoints.metrics.postgres_user)


class RedisSecrets(Model):
    default: str
    sentinel: str | None = None


class KafkaSecrets(Model):
    admin: str
    app: str


class Secrets(Model):
    postgres: PostgresSecrets
    redis: RedisSecrets
    kafka: KafkaSecrets


class TlsOutputs(Model):
    """The stack's CA and the kit's client files; `enabled: false` is a plaintext stack
    (outputs written before TLS existed read so too)."""

    enabled: bool = False
    ca_path: str | None = None  # the CA file for clients (sslrootcert, --cacert, ...)
    ca_pem: str | None = None  # the same CA, as text
    cert_path: str | None = None  # the kit's client certificate ...
    key_path: str | None = None  # ... and its key (0600)
    generation: int | None = None  # datakit:tls.generation the node certificates are of

    def client_files(self) -> dict[str, str] | None:
        """What nodes.tls takes as `client_tls`: None for a plaintext stack."""
        if not self.enabled:
            return None
        keys = ("ca_path", "cert_path", "key_path")
        if missing := [k for k in keys if not getattr(self, k)]:
            raise DatakitError(f"the stack's outputs have tls enabled but no tls.{missing[0]}: "
                               "run `datakit up` with this datakit")
        for key in keys:
            if not Path(getattr(self, key)).is_file():
                raise DatakitError(f"the stack's TLS file {getattr(self, key)} (outputs "
                                   f"tls.{key}) is missing: run `datakit up` to write it, or "
                                   "point the outputs at the stack's files")
        return {"ca": self.ca_path, "cert": self.cert_path, "key": self.key_path}


class StackOutputs(Model):
    stack: str
    substrate: str = "local"
    disposable: bool = False
    endpoints: Endpoints
    nodes: list[Node]
    secrets: Secrets | None = None  # None when read without them (redacted)
    tls: TlsOutputs = TlsOutputs()

    @model_validator(mode="after")
    def _nodes_know_their_tls(self) -> StackOutputs:
        """Each node carries the client files when its service speaks TLS, so a client in
        datakit.nodes given the node reaches it as it must."""
        t = self.tls
        if not (t.enabled and t.ca_path and t.cert_path and t.key_path):
            return self
        files = {"ca": t.ca_path, "cert": t.cert_path, "key": t.key_path}
        for node in self.nodes:
            if self.speaks_tls(node.service):
                node.client_tls = files
        return self

    def speaks_tls(self, service: str) -> bool:
        # The exporters and Prometheus serve plain HTTP on loopback; they dial over TLS.
        if not self.tls.enabled or service in ("exporter", "prometheus"):
            return False
        if service in ("redis", "sentinel"):
            return self.endpoints.redis.tls
        if service == "kafka":
            return self.endpoints.kafka.security_protocol in ("SASL_SSL", "SSL")
        return True  # postgres and etcd took TLS first: with the stack's tls

    def tls_for(self, service: str) -> dict[str, str] | None:
        """The client files for `service` when it speaks TLS, else None (plaintext)."""
        return self.client_tls() if self.speaks_tls(service) else None

    def kafka_config(self, *, admin: bool = False) -> dict[str, str]:
        """librdkafka settings for the app (or the admin): SASL/SCRAM, over TLS with the
        stack's CA when Kafka speaks it."""
        kf, secrets = self.endpoints.kafka, self.need_secrets().kafka
        conf = {"bootstrap.servers": kf.bootstrap_servers,
                "security.protocol": kf.security_protocol, "sasl.mechanism": kf.sasl_mechanism,
                "sasl.username": kf.admin_username if admin else kf.username,
                "sasl.password": secrets.admin if admin else secrets.app}
        if files := self.tls_for("kafka"):
            conf["ssl.ca.location"] = files["ca"]
        return conf

    def client_tls(self) -> dict[str, str] | None:
        """The kit's CA and client certificate files, as nodes.tls takes them (None for a
        plaintext stack); a file that is missing is one line naming it."""
        return self.tls.client_files()

    def reach(self, node: Node, **extra) -> dict:
        """A node as the kit's clients in datakit.nodes take it: its address, and the
        stack's client files when its links are TLS."""
        files = self.client_tls()
        return {"name": node.name, "host": node.host, "port": node.port,
                **({"client_tls": files} if files else {}), **extra}

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise DatakitError(f"stack {self.stack!r} has no node {name!r}")

    def of(self, service: str) -> list[Node]:
        """The nodes of one service, in the order the stack made them."""
        return [n for n in self.nodes if n.service == service]

    def data_dirs(self) -> list[Path]:
        return [Path(n.handle.data_dir) for n in self.nodes if n.handle.data_dir]

    def need_secrets(self) -> Secrets:
        if self.secrets is None:
            raise DatakitError(f"stack {self.stack!r}: its outputs were read without secrets")
        return self.secrets

    def with_passwords(self) -> StackOutputs:
        """A copy whose PostgreSQL DSNs carry the app password, for the kit's own clients;
        the stack keeps its DSNs without one, and the password as a secret."""
        password = self.secrets.postgres.app if self.secrets else ""
        if not password:
            return self
        pg = self.endpoints.postgres
        dsns = {key: dsn if "password=" in dsn else f"{dsn} password={password}"
                for key, dsn in (("write_dsn", pg.write_dsn), ("read_dsn", pg.read_dsn))}
        endpoints = self.endpoints.model_copy(update={"postgres": pg.model_copy(update=dsns)})
        return self.model_copy(update={"endpoints": endpoints})
