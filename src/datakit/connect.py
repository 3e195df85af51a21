"""`datakit connect`: reach a stack with everyday clients.

Without a target, shell exports for `eval "$(datakit connect --stack S)"`: libpq's PG*
variables (a multi-host list with `target_session_attrs`, so psql itself finds the
primary) and DATABASE_URL, the Redis Sentinels, master name and a REDIS_URL of the current
master, and Kafka's client properties. Passwords appear only when asked for. With a
target, the argv and environment that open psql on the primary or redis-cli on the
master; passwords go through the environment (PGPASSWORD, REDISCLI_AUTH), never argv.
"""

from __future__ import annotations

import shlex
from urllib.parse import quote

from redis.sentinel import Sentinel

from datakit.errors import DatakitError
from datakit.nodes import tls
from datakit.stack.schema import StackOutputs

TARGETS = ("postgres", "redis")
HIDDEN = "<hidden: add --show-secrets>"


def _dsn_fields(dsn: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(dsn) if "=" in part)


def postgres_env(outputs: StackOutputs, *, show_secrets: bool) -> dict[str, str]:
    pg = outputs.endpoints.postgres
    fields = _dsn_fields(pg.write_dsn)
    password = outputs.need_secrets().postgres.app if show_secrets else None
    hosts = fields["host"].split(",")
    ports = fields["port"].split(",")
    netloc = ",".join(f"{h}:{p}" for h, p in zip(hosts, ports, strict=True))
    auth = f"{quote(pg.app_user)}:{quote(password)}@" if password else f"{quote(pg.app_user)}@"
    # TLS as the DSN has it: the server must show a certificate of the stack's CA.
    ssl = {"PGSSLMODE": fields["sslmode"], "PGSSLROOTCERT": fields["sslrootcert"]} \
        if "sslrootcert" in fields else {}
    query = "".join(f"&{k}={quote(fields[k])}" for k in ("sslmode", "sslrootcert") if ssl)
    return {
        "PGHOST": fields["host"], "PGPORT": fields["port"], "PGDATABASE": pg.database,
        "PGUSER": pg.app_user, "PGTARGETSESSIONATTRS": "read-write",
        "PGCONNECT_TIMEOUT": fields.get("connect_timeout", "3"), **ssl,
        "PGPASSWORD": password or HIDDEN,
        "DATABASE_URL": f"postgresql://{auth}{netloc}/{quote(pg.database)}"
                        f"?target_session_attrs=read-write{query}",
    }


def _split(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host, int(port)


def redis_master(outputs: StackOutputs) -> tuple[str, int]:
    """The master the Sentinels name now (or the first seed of a Redis Cluster)."""
    rd = outputs.endpoints.redis
    if rd.mode == "cluster":
        return _split(rd.seeds[0])
    secrets = outputs.need_secrets().redis
    ssl = tls.redis(outputs.tls_for("sentinel"))
    sentinel = Sentinel([_split(s) for s in rd.sentinels], socket_timeout=2,
                        sentinel_kwargs={"password": secrets.sentinel, **ssl})
    try:
        return sentinel.discover_master(rd.master_name)
    except Exception as exc:  # noqa: BLE001 - MasterNotFoundError or a refused connection
        raise DatakitError(f"stack {outputs.stack}: no Sentinel of {', '.join(rd.sentinels)} "
                           f"names a master for {rd.master_name!r} ({exc}); see "
                           f"`datakit status --stack {outputs.stack}`") from None


def redis_env(outputs: StackOutputs, *, show_secrets: bool) -> dict[str, str]:
    rd = outputs.endpoints.redis
    host, port = redis_master(outputs)
    password = outputs.need_secrets().redis.default if show_secrets else None
    auth = f"default:{quote(password)}@" if password else ""
    files = outputs.tls_for("redis")
    # rediss://: TLS; the CA is named beside it, as redis-py and redis-cli take it.
    scheme, ca = ("rediss", {"REDIS_CA_CERT": files["ca"]}) if files else ("redis", {})
    return {"REDIS_MODE": rd.mode, "REDIS_SENTINELS": ",".join(rd.sentinels),
            "REDIS_MASTER_NAME": rd.master_name, "REDIS_SEEDS": ",".join(rd.seeds),
            "REDIS_URL": f"{scheme}://{auth}{host}:{port}/0", **ca,
            "REDIS_PASSWORD": password or HIDDEN}


def kafka_env(outputs: StackOutputs, *, show_secrets: bool) -> dict[str, str]:
    kf = outputs.endpoints.kafka
    password = outputs.need_secrets().kafka.app if show_secrets else None
    files = outputs.tls_for("kafka")
    return {"KAFKA_BOOTSTRAP_SERVERS": kf.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": kf.security_protocol,
            "KAFKA_SASL_MECHANISM": kf.sasl_mechanism, "KAFKA_SASL_USERNAME": kf.username,
            **({"KAFKA_SSL_CA_LOCATION": files["ca"]} if files else {}),
            "KAFKA_SASL_PASSWORD": password or HIDDEN}


def environment(outputs: StackOutputs, *, show_secrets: bool = False) -> dict[str, str]:
    """Every variable the exports set, by name; a hidden password's value says so."""
    return {**postgres_env(outputs, show_secrets=show_secrets),
            **redis_env(outputs, show_secrets=show_secrets),
            **kafka_env(outputs, show_secrets=show_secrets)}


def exports(outputs: StackOutputs, *, show_secrets: bool = False) -> str:
    """`export NAME=value` lines for a POSIX shell; hidden passwords are left unset."""
    env = environment(outputs, show_secrets=show_secrets)
    return "\n".join(f"# {k}: {HIDDEN}" if v == HIDDEN else f"export {k}={shlex.quote(v)}"
                     for k, v in env.items()) + "\n"


def client(outputs: StackOutputs, target: str) -> tuple[list[str], dict[str, str]]:
    """(argv, extra environment) that open an interactive client on `target`."""
    if target == "postgres":
        env = postgres_env(outputs, show_secrets=True)
        return ["psql"], {k: v for k, v in env.items() if k.startswith("PG")}
    if target == "redis":
        host, port = redis_master(outputs)
        cluster = ["-c"] if outputs.endpoints.redis.mode == "cluster" else []
        files = outputs.tls_for("redis")
        secure = ["--tls", "--cacert", files["ca"]] if files else []
        return (["redis-cli", *cluster, *secure, "-h", host, "-p", str(port)],
                {"REDISCLI_AUTH": outputs.need_secrets().redis.default})
    raise DatakitError(f"connect: no shell client for {target!r}: choose one of "
                       f"{', '.join(TARGETS)} (for Kafka, use the exports with a client on "
                       "librdkafka 2.6.1 or newer)")
