"""The standard exporters beside a stack's servers: one postgres_exporter per PostgreSQL
server, one redis_exporter per Redis server or Sentinel (Debian's packages), and the
Prometheus JMX exporter javaagent inside each Kafka JVM.

Passwords never reach a command line (where `ps` shows them to every user):
postgres_exporter reads its password from a 0600 file owned by its account
(DATA_SOURCE_PASS_FILE; the rest of the DSN is in DATA_SOURCE_URI and DATA_SOURCE_USER),
redis_exporter from its environment (REDIS_PASSWORD), which only its own account and root
can read. The PostgreSQL account is a login role with `pg_monitor` and nothing else
(`ensure_monitor_role`, run on the primary; replicas get it by replication).

postgres_exporter adds datakit's queries (PG_QUERIES) to its defaults: the WAL position,
whether the server is in recovery (leader changes), and each standby's replay lag in
seconds as the primary measures it, which 0.11 does not export by itself. One default is
replaced: 0.11's slot query calls pg_current_wal_lsn() on every row, which fails on a
replica holding slots (Patroni keeps its peers' there), so the slots are the primary's.

props keys (both exporters): kind ("postgres" or "redis"), name, port (its /metrics),
host (default 127.0.0.1), dir (the exporter's own dir: removed on delete), target
({host?, port}: the server), password, user (postgres: the monitor role, required; redis:
an ACL user, optional), dbname (postgres, default "postgres"), run_as (default
"prometheus", the account Debian's package makes), timeout_s (how long a scrape waits for
the server, default 0.8: below a 1 s scrape interval, so a hung server reads as down
rather than as a dead exporter).
outs keys: kind, name, host, port, url, target, pid, start_time, log_path, start_s.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from pathlib import Path

import psycopg
import yaml
from psycopg import sql

from datakit.errors import DatakitError
from datakit.nodes import process, tls
from datakit.nodes.metrics import daemon
from datakit.nodes.postgres_client import ensure_role
from datakit.nodes.process import RunAs
from datakit.nodes.readiness import NotReady, wait_until
from datakit.paths import cache_dir
from datakit.toolchain.versions import jmx_exporter_version

BINARIES = {"postgres": "prometheus-postgres-exporter", "redis": "prometheus-redis-exporter"}
UP_METRIC = {"postgres": "pg_up", "redis": "redis_up"}
# The monitor role's connections per server: postgres_exporter 0.11 holds one and opens
# another for each scrape, a slow scrape overlaps the next, and an operator may look in
# too. A bound, so a stuck exporter cannot use up max_connections; not a tight one (at 3,
# a busy primary refused a fourth session).
MONITOR_CONNECTION_LIMIT = 10
_OURS = {"exporter.log", "pg-password", "queries.yml", tls.DIR}

PG_QUERIES = {
    "pg_node": {
        "query": (
            "SELECT pg_is_in_recovery()::int AS in_recovery, "
            "pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
            "ELSE pg_current_wal_lsn() END, '0/0')::float8 AS wal_position_bytes"),
        "metrics": [
            {"in_recovery": {"usage": "GAUGE",
                             "description": "1 on a replica, 0 on the primary"}},
            {"wal_position_bytes": {"usage": "COUNTER", "description":
                                    "WAL written (primary) or replayed (replica), bytes"}},
        ],
    },
    # Same name and columns as the built-in query it replaces (queries.yml overrides it).
    "pg_replication_slots": {
        "query": (
            "SELECT slot_name, database, active, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS pg_wal_lsn_diff "
            "FROM pg_replication_slots WHERE NOT pg_is_in_recovery()"),
        "metrics": [
            {"slot_name": {"usage": "LABEL", "description": "the slot's name"}},
            {"database": {"usage": "LABEL", "description": "its database (logical slots)"}},
            {"active": {"usage": "GAUGE", "description": "1 while a receiver uses it"}},
            {"pg_wal_lsn_diff": {"usage": "GAUGE",
                                 "description": "WAL the primary keeps for it, bytes"}},
        ],
    },
    "pg_standby": {
        # As the primary measures it; NULL once a standby has caught up and WAL is idle.
        "query": (
            "SELECT application_name, "
            "COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8 AS replay_lag_seconds, "
            "COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::float8 "
            "AS replay_lag_bytes FROM pg_stat_replication"),
        "metrics": [
            {"application_name": {"usage": "LABEL", "description": "the standby's name"}},
            {"replay_lag_seconds": {"usage": "GAUGE",
                                    "description": "time to replay on the standby, s"}},
            {"replay_lag_bytes": {"usage": "GAUGE",
                                  "description": "WAL not yet replayed on the standby"}},
        ],
    },
}


def pg_queries_yaml() -> str:
    """postgres_exporter's --extend.query-path file: datakit's queries (PG_QUERIES)."""
    return yaml.safe_dump(PG_QUERIES, sort_keys=False)


def queries_digest() -> str:
    """A short digest of pg_queries_yaml(): an exporter input, so new queries restart it."""
    return hashlib.sha256(pg_queries_yaml().encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- PostgreSQL role


def ensure_monitor_role(conn: psycopg.Connection, user: str, password: str) -> None:
    """The exporter's role: LOGIN with `pg_monitor` (read statistics and settings), no
    other grant, a few connections at most. Run as a superuser on the primary."""
    ensure_role(conn, user, password, attributes="LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                f"NOREPLICATION CONNECTION LIMIT {MONITOR_CONNECTION_LIMIT}")
    conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(user)))


# --------------------------------------------------------------------------- exporters


def label(props: dict) -> str:
    target = props.get("target") or {}
    return (f"{props['kind']}_exporter {props['name']} ({_host(props)}:{int(props['port'])} "
            f"-> {target.get('host') or daemon.HOST}:{target.get('port')})")


def _host(props: dict) -> str:
    return props.get("host") or daemon.HOST


def metrics_url(props: dict) -> str:
    return f"http://{_host(props)}:{int(props['port'])}/metrics"


def _marker(props: dict) -> str:
    dash = "--" if props["kind"] == "postgres" else "-"
    return f"{dash}web.listen-address={_host(props)}:{int(props['port'])}"


def _account(props: dict) -> RunAs:
    return RunAs.service(props.get("run_as") or "prometheus")


def _binary(kind: str) -> str:
    found = shutil.which(BINARIES[kind])
    if not found:
        raise DatakitError(f"{BINARIES[kind]} not found: apt-get install {BINARIES[kind]} "
                           "(tools/bootstrap installs it)")
    return found


def _timeout_s(props: dict) -> float:
    return float(props.get("timeout_s") or 0.8)


def _postgres_command(props: dict, root: Path, account: RunAs) -> tuple[list[str], dict]:
    if not props.get("user"):
        raise DatakitError(f"{label(props)}: no monitor user given; make one with "
                           "ensure_monitor_role and pass it as `user`")
    target = props["target"]
    password_file = root / "pg-password"
    process.write_private(password_file, props["password"], account)
    queries = root / "queries.yml"
    queries.write_text(pg_queries_yaml())
    queries.chmod(0o644)
    # lib/pq counts connect_timeout in whole seconds
    wait = max(1, math.ceil(_timeout_s(props)))
    paths = _tls_files(props, root, account)
    ssl = f"sslmode=verify-full&sslrootcert={paths['ca']}" if paths else "sslmode=disable"
    env = {"DATA_SOURCE_URI": f"{target.get('host') or daemon.HOST}:{int(target['port'])}/"
                              f"{props.get('dbname') or 'postgres'}?{ssl}"
                              f"&connect_timeout={wait}",
           "DATA_SOURCE_USER": props["user"], "DATA_SOURCE_PASS_FILE": str(password_file)}
    argv = [_binary("postgres"), _marker(props), f"--extend.query-path={queries}",
            "--log.level=warn"]
    return argv, env


def _redis_command(props: dict, root: Path, account: RunAs) -> tuple[list[str], dict]:
    target = props["target"]
    env = {"REDIS_PASSWORD": props.get("password") or ""}
    if props.get("user"):
        env["REDIS_USER"] = props["user"]
    paths = _tls_files(props, root, account)
    scheme = "rediss" if paths else "redis"
    argv = [_binary("redis"), _marker(props),
            f"-redis.addr={scheme}://{target.get('host') or daemon.HOST}:{int(target['port'])}",
            f"-connection-timeout={int(_timeout_s(props) * 1000)}ms"]
    if paths:  # the server's certificate checked against the stack's CA
        argv.append(f"-tls-ca-cert-file={paths['ca']}")
    return argv, env


def _tls_files(props: dict, root: Path, account: RunAs) -> dict[str, str] | None:
    """The stack's CA (and a certificate of the exporter's own) when its server speaks
    TLS: props["tls"], as every node gets it."""
    return tls.write({"tls": props.get("tls"), "data_dir": str(root)}, account)


def start(props: dict, *, wait_server: bool = True, timeout: float = daemon.START_TIMEOUT
          ) -> dict:
    """Start the exporter (if it does not run already) and wait until it serves /metrics;
    with `wait_server`, also until it reaches its server (pg_up/redis_up 1), so a wrong
    password or port fails here, in one line, rather than as a target that never comes up.
    """
    if props.get("kind") not in BINARIES:
        raise DatakitError(f"exporter {props.get('name')}: kind must be one of "
                           f"{', '.join(BINARIES)}, not {props.get('kind')!r}")
    account = _account(props)
    root = account.own(Path(props["dir"]), 0o700)
    if not daemon.live(_marker(props)):
        process.require_free(int(props["port"]), label(props), _host(props))
    if props["kind"] == "postgres":
        argv, env = _postgres_command(props, root, account)
    else:
        argv, env = _redis_command(props, root, account)
    # Ready when its landing page answers: /metrics would already query the server.
    started = daemon.start(what=label(props), argv=argv, marker=_marker(props),
                           account=account, log=root / "exporter.log", env=env, cwd=root,
                           ready_url=metrics_url(props).removesuffix("metrics"),
                           timeout=timeout)
    outs = {"kind": props["kind"], "name": props["name"], "host": _host(props),
            "port": int(props["port"]), "url": metrics_url(props),
            "target": dict(props["target"]), **started}
    if wait_server:
        try:
            wait_until(lambda: server_up(props), what=f"{label(props)} reaching its server",
                       timeout=timeout)
        except NotReady:
            stop(props, outs)
            said = process.log_tail(root / "exporter.log", 1).strip() or "nothing logged"
            raise DatakitError(
                f"{label(props)} does not reach its server ({UP_METRIC[props['kind']]} is "
                f"not 1 after {timeout:g} s; its log: {said}): check the server's port and "
                "the exporter's user and password") from None
        except BaseException:
            stop(props, outs)
            raise
    return outs


def stop(props: dict, outs: dict | None = None) -> None:
    daemon.stop(_marker(props), outs)


def kill(props: dict, outs: dict | None = None) -> None:
    daemon.kill(_marker(props), outs)


def running(props: dict, outs: dict | None = None) -> tuple[int, int] | None:
    """(pid, start time) of the exporter, or None."""
    return daemon.live(_marker(props), outs)


def alive(props: dict, outs: dict | None = None) -> bool:
    return running(props, outs) is not None


def delete(props: dict, outs: dict | None = None) -> None:
    """Stop the exporter and remove its dir, if it holds only what datakit put there."""
    stop(props, outs)
    daemon.remove_dir(Path(props["dir"]), _OURS)


def sample(text: str, name: str) -> float | None:
    """The value of the first sample of metric `name` in a /metrics page (e.g. `pg_up`,
    or `pg_node_in_recovery{server="..."}`: its labels are not looked at)."""
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    return None


def server_up(props: dict) -> bool:
    """Whether the exporter answers and reaches its server (its `pg_up`/`redis_up`)."""
    status, body = daemon.get(metrics_url(props), timeout=2.0)
    return status == 200 and sample(body.decode(), UP_METRIC[props["kind"]]) == 1


def health(props: dict) -> dict:
    """{up: the exporter answers, server_up: it reaches its server, samples: lines}."""
    out = {"name": props["name"], "url": metrics_url(props), "up": False,
           "server_up": False, "samples": 0, "error": None}
    try:
        status, body = daemon.get(metrics_url(props), timeout=2.0)
    except OSError as exc:
        out["error"] = f"{label(props)} does not answer: {getattr(exc, 'reason', exc)}"
        return out
    text = body.decode(errors="replace")
    out.update(up=status == 200, server_up=sample(text, UP_METRIC[props["kind"]]) == 1,
               samples=sum(1 for line in text.splitlines() if line and line[0] != "#"))
    return out


# --------------------------------------------------------------------------- Kafka's JVM

# MBeans read (others are never queried: a scrape of a broker stays small) and how they
# are named. Names follow the exporter project's Kafka examples, lower-cased.
JMX_CONFIG = {
    "lowercaseOutputName": True,
    "lowercaseOutputLabelNames": True,
    "includeObjectNames": [
        "kafka.server:type=BrokerTopicMetrics,*",
        "kafka.server:type=ReplicaManager,*",
        "kafka.controller:type=KafkaController,*",
        "kafka.server:type=raft-metrics",
    ],
    "rules": [
        # all topics together only: per-topic series would grow with the topic count
        {"pattern": r"kafka.server<type=BrokerTopicMetrics, name=(\w+)PerSec><>Count",
         "name": "kafka_server_brokertopicmetrics_$1_total", "type": "COUNTER"},
        {"pattern": r"kafka.server<type=ReplicaManager, name=(\w+)PerSec><>Count",
         "name": "kafka_server_replicamanager_$1_total", "type": "COUNTER"},
        {"pattern": r"kafka.server<type=ReplicaManager, name=(\w+)><>Value",
         "name": "kafka_server_replicamanager_$1", "type": "GAUGE"},
        {"pattern": r"kafka.controller<type=KafkaController, name=(\w+)><>Value",
         "name": "kafka_controller_kafkacontroller_$1", "type": "GAUGE"},
        {"pattern": r"kafka.server<type=raft-metrics><>(current-leader|current-epoch"
                    r"|high-watermark|commit-latency-avg)",
         "name": "kafka_raft_$1", "type": "GAUGE"},
    ],
}


def agent_jar() -> Path:
    """The javaagent tools/build-jmx-exporter cached at the pinned version."""
    jar = cache_dir() / f"jmx-exporter-{jmx_exporter_version()}" / "jmx_prometheus_javaagent.jar"
    if not jar.is_file():
        raise DatakitError(f"the JMX exporter javaagent is missing ({jar}): run tools/bootstrap "
                           f"(or tools/build-jmx-exporter {jar.parent})")
    return jar


def javaagent(dir: Path, port: int, *, account: RunAs, host: str = daemon.HOST,
              jar: Path | None = None) -> str:
    """Write the agent's config into `dir` (made for `account`, the JVM's), put the jar
    there too, and return the JVM flag `-javaagent:JAR=HOST:PORT:CONFIG`.

    The jar is linked (or copied) beside the config: as root the tool cache lies under
    /root, which the `kafka` account cannot enter.
    """
    root = account.own(Path(dir), 0o755)
    source = Path(jar) if jar else agent_jar()
    placed = root / "jmx_prometheus_javaagent.jar"
    if not placed.exists() or placed.stat().st_size != source.stat().st_size:
        tmp = placed.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        tmp.chmod(0o644)
        tmp.replace(placed)  # whole or not at all: a running JVM keeps its own inode
    config = root / "jmx-exporter.yml"
    config.write_text(jmx_config_yaml())
    config.chmod(0o644)
    return agent_flag(placed, host, port, config)


def jmx_config_yaml() -> str:
    """The agent's config file (JMX_CONFIG): which MBeans it reads and how it names them."""
    return "# Written by datakit; edits are overwritten.\n" + yaml.safe_dump(
        JMX_CONFIG, sort_keys=False)


def agent_flag(jar: Path | str, host: str, port: int, config: Path | str) -> str:
    """The JVM flag that loads the agent, serving /metrics on HOST:PORT."""
    return f"-javaagent:{jar}={host}:{int(port)}:{config}"
