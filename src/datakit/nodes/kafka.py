"""Kafka KRaft nodes as native processes: format, start, stop, wait for the cluster, topics.

Plain functions for the local substrate's Pulumi dynamic resources (no Pulumi here): each
takes JSON-able `props` and returns JSON-able `outs`, and blocks until the thing is really
ready. Numbers may arrive as floats (Pulumi's wire), so every number is cast.

A node's `props`:
  home            Kafka built by tools/build-kafka (default: the cache, per versions.env)
  node_id         1..N
  roles           "broker,controller" (default), "broker" or "controller"
  host, port      the client listener, SASL_SSL (SASL_PLAINTEXT without tls) + SCRAM-SHA-512
  controller_port the controller listener, SSL with client certificates (PLAINTEXT without
                  tls; loopback only)
  tls             {ca, cert, key} PEM (nodes/tls.py); tls_principals: certificate names that
                  are super users (the other nodes, the kit's client)
  authorize       StandardAuthorizer: the admin (and with tls the nodes and the kit's client)
                  super users, everyone else only what ACLs grant (kafka_acls.py)
  voters          [{"id", "host", "port"}]: the static controller quorum
  cluster_id      one id shared by every node (new_cluster_id())
  data_dir        the node's own directory; must not exist or be this node's
  admin_user, admin_password, app_user, app_password: SCRAM users made at format time;
                  brokers talk to each other as the admin user
  heap_mb         JVM heap (default 1024), settings: extra server.properties
  run_as          the system user when running as root (default "kafka")
  jvm_options, format_jvm_options: extra JVM flags of the broker and of its format run
                  (benchmarks; tools/kafka/cds.py, which makes the CDS archives)
  metrics_port    the JMX exporter javaagent in the broker's JVM serves /metrics here

The JVMs map the class-data-sharing archives of kafka_runtime.py when there are some.

Starting a node returns when its process listens; it does not wait for the other voters
(a lone controller never elects a leader). `wait_cluster_ready` waits for the quorum and
every broker; call it after all nodes were started.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
import uuid
from base64 import urlsafe_b64encode
from pathlib import Path

from datakit.errors import DatakitError
from datakit.nodes import kafka_runtime, process, rolling, tls
from datakit.nodes.kafka_cluster import (  # the cluster side; re-exported here
    SCRAM,
    bootstrap,
    client_config,
    cluster_health,
    delete_topic,
    describe_topic,
    ensure_topic,
    node_running,
    wait_cluster_ready,
    wait_in_sync,
)
from datakit.nodes.kafka_conf import keystore, server_properties
from datakit.nodes.kafka_conf import roles as _roles
from datakit.nodes.kafka_runtime import default_home, home_for
from datakit.nodes.process import RunAs
from datakit.nodes.readiness import wait_until

# StorageTool's --add-scram syntax has no escaping we rely on: keep credentials plain.
_PLAIN = re.compile(r"^[A-Za-z0-9._~-]+$")


# ---------------------------------------------------------------- layout

def new_cluster_id() -> str:
    """A KRaft cluster id, as `kafka-storage random-uuid` makes one (base64url, 22 chars)."""
    while True:
        cid = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka avoids ids that look like a CLI flag
            return cid


def _layout(props: dict) -> dict[str, Path]:
    root = Path(props["data_dir"])
    return {"root": root, "config": root / "server.properties", "data": root / "data",
            "logs": root / "logs", "log": root / "logs" / "process.log",
            "server_log": root / "logs" / "server.log",
            "meta": root / "data" / "meta.properties", "format_args": root / "format.args"}


def _check_credentials(props: dict) -> None:
    for key in ("admin_user", "admin_password", "app_user", "app_password"):
        value = str(props.get(key) or "")
        if not _PLAIN.match(value):
            raise DatakitError(f"Kafka node {props.get('node_id')}: {key} must be non-empty "
                               "and use only letters, digits and ._~-")


# ---------------------------------------------------------------- node lifecycle

def format_node(props: dict) -> dict:
    """Write the config and format the node's storage with the cluster id and SCRAM users,
    in a JVM of its own (create_node formats in the node's own JVM instead).

    A node already formatted for this cluster is left alone (formatted=False); one
    formatted for another cluster or node id is an error that names its directory.
    """
    outs, format_args = _prepare_storage(props)
    if not format_args:
        return outs
    home, paths = home_for(props), _layout(props)
    argv = kafka_runtime.command(home, "kafka.tools.StorageTool", format_args, role="format",
                                 logs=paths["logs"], memory=["-Xmx256m"],
                                 extra=props.get("format_jvm_options"))
    began = time.monotonic()
    RunAs.service(props.get("run_as") or "kafka").run(
        argv, what=f"formatting Kafka node {outs['node_id']} in {paths['root']}")
    return {**outs, "format_s": round(time.monotonic() - began, 3)}


def _prepare_storage(props: dict) -> tuple[dict, list[str]]:
    """Check the node's storage and write its config: (outs, kafka-storage format's
    arguments, or [] when it is formatted for this cluster already)."""
    _check_credentials(props)
    paths = _layout(props)
    account = RunAs.service(props.get("run_as") or "kafka")
    node_id, cluster_id = int(props["node_id"]), str(props["cluster_id"])
    outs = {"node_id": node_id, "cluster_id": cluster_id, "data_dir": str(paths["root"]),
            "config": str(paths["config"])}
    if paths["meta"].exists():
        meta = _read_properties(paths["meta"])
        if meta.get("cluster.id") != cluster_id or meta.get("node.id") != str(node_id):
            raise DatakitError(
                f"Kafka node {node_id}: {paths['root']} holds node {meta.get('node.id')} of "
                f"cluster {meta.get('cluster.id')}, not node {node_id} of {cluster_id}: "
                "delete that directory or point data_dir elsewhere")
        _write_config(props, account)
        return {**outs, "formatted": False}, []
    _write_config(props, account)
    scram = [arg for user in ("admin", "app") for arg in (
        "--add-scram",
        f"{SCRAM}=[name={props[user + '_user']},password={props[user + '_password']}]")]
    # `=`: an id may start with "-", which a separate argument would not survive
    return {**outs, "formatted": True}, ["format", f"--cluster-id={cluster_id}",
                                         f"--config={paths['config']}", *scram]


def _write_config(props: dict, account: RunAs) -> None:
    """The node's dirs and server.properties (0600: it holds the admin password)."""
    paths = _layout(props)
    for key in ("root", "data", "logs"):
        account.own(paths[key], 0o700)
    if tls.write(props, account):  # Kafka's PEM keystore: the key and its certificate
        material = props["tls"]
        tls.write_file(keystore(props), f"{material['key']}{material['cert']}", account)
    tmp = paths["config"].with_suffix(".tmp")
    tmp.write_text(server_properties(props))
    os.chown(tmp, account.uid, account.gid)
    tmp.chmod(0o600)
    tmp.replace(paths["config"])


def jvm_args(props: dict, *, format_file: Path | None = None) -> list[str]:
    """The node's java command line; `jvm_options` in props adds flags (benchmarks, and
    the run that makes the CDS archive). With `format_file` (kafka-storage format's
    arguments) the JVM formats the storage first, then serves (FormatThenServe)."""
    home, paths = home_for(props), _layout(props)
    heap = int(props.get("heap_mb") or 1024)
    main, args = "kafka.Kafka", [str(paths["config"])]
    if format_file is not None:
        main, args = kafka_runtime.LAUNCHER, ["--format", str(format_file), *args]
    small = kafka_runtime.SMALL_HEAP_FLAGS if heap <= kafka_runtime.SMALL_HEAP_MB else []
    return kafka_runtime.command(home, main, args, role="broker", logs=paths["logs"],
                                 extra=[*small, *_agent(props),
                                        *(props.get("jvm_options") or [])],
                                 memory=[f"-Xms{max(heap // 2, 64)}m", f"-Xmx{heap}m"])


def _agent(props: dict) -> list[str]:
    """The JMX exporter's -javaagent flag, its config beside the node's own files."""
    if not props.get("metrics_port"):
        return []
    from datakit.nodes.metrics.exporters import javaagent

    account = RunAs.service(props.get("run_as") or "kafka")
    return [javaagent(_layout(props)["root"] / "jmx", int(props["metrics_port"]),
                      account=account, host=props.get("host", "127.0.0.1"))]


def _ports(props: dict) -> list[tuple[str, int]]:
    roles, out = _roles(props), []
    if "controller" in roles:
        out.append(("controller listener", int(props["controller_port"])))
    if "broker" in roles:
        out.append(("client listener", int(props["port"])))
    return out


def _ready_ports(props: dict) -> list[int]:
    """The ports that show a started node: a broker binds its client listener only once
    it has caught up with the quorum, so a controller waits for its own listener alone."""
    return [port for _, port in _ports(props)][:1]


def start_node(props: dict, *, timeout: float = 90.0) -> dict:
    """Start a formatted node and wait until its process listens on its ports.

    It does not wait for the quorum or for other nodes (see wait_cluster_ready).
    """
    paths, node_id = _layout(props), int(props["node_id"])
    if not paths["meta"].exists():
        raise DatakitError(f"Kafka node {node_id}: {paths['root']} is not formatted; "
                           "format_node first")
    account = RunAs.service(props.get("run_as") or "kafka")
    _write_config(props, account)  # settings are read at start: a restart applies changes
    return _start(props, jvm_args(props), timeout=timeout)


def _start(props: dict, argv: list[str], *, timeout: float) -> dict:
    """Spawn the node's JVM and wait until it listens (see _ready_ports)."""
    paths, node_id = _layout(props), int(props["node_id"])
    host = props.get("host", "127.0.0.1")
    agent_port = [("JMX exporter agent", int(props["metrics_port"]))] \
        if props.get("metrics_port") else []
    for what, port in [*_ports(props), *agent_port]:
        process.require_free(port, f"Kafka node {node_id} {what}", host)
    account = RunAs.service(props.get("run_as") or "kafka")
    began = time.monotonic()
    pid = account.spawn(argv, log=paths["log"], cwd=str(paths["root"]), address=host)
    started = process.start_time(pid)
    what = f"Kafka node {node_id} ({paths['root']})"

    def alive() -> str | None:
        return process.exit_reason(pid, started, paths["log"])

    def listening() -> bool:
        for port in _ready_ports(props):
            with socket.create_connection((host, port), timeout=1):
                pass
        return True

    try:
        # Polled every 0.1 s, not up to 0.5: a loopback connect costs nothing, and each
        # node's start is on the stack's critical path.
        wait_until(listening, what=what, timeout=timeout, alive=alive, max_interval=0.1)
    except Exception:
        process.stop(pid, started, timeout=10)
        raise
    return {"node_id": node_id, "pid": pid, "started": started, "host": host,
            "ports": [port for _, port in _ports(props)],
            "data_dir": str(paths["root"]), "log": str(paths["log"]),
            "server_log": str(paths["server_log"]),
            "start_s": round(time.monotonic() - began, 3), "cds": _shared_archive(argv),
            "bootstrap": f"{host}:{int(props['port'])}" if "broker" in _roles(props) else None}


def _shared_archive(argv: list[str]) -> str | None:
    """The CDS archive a command line asks for (the JVM ignores one that does not fit)."""
    flag = "-XX:SharedArchiveFile="
    return next((a[len(flag):] for a in argv if a.startswith(flag)), None)


def create_node(props: dict, *, timeout: float = 90.0) -> dict:
    """Format the node's storage if it is new, start it, wait until it listens: what a
    node resource's `create` does. With datakit's launcher in the Kafka build the node's
    own JVM formats, so no JVM is started for formatting alone (kafka-node.jar); without
    it, format_node and start_node."""
    if kafka_runtime.launcher(home_for(props)) is None:
        return {**format_node(props), **start_node(props, timeout=timeout)}
    outs, format_args = _prepare_storage(props)
    if not format_args:
        return {**outs, **_start(props, jvm_args(props), timeout=timeout)}
    account = RunAs.service(props.get("run_as") or "kafka")
    # The SCRAM passwords go in a file only the node's account reads, which the JVM
    # deletes once read, not on a command line that any user's `ps` shows.
    args_file = _layout(props)["format_args"]
    process.write_private(args_file, "".join(f"{arg}\n" for arg in format_args), account)
    try:
        return {**outs, **_start(props, jvm_args(props, format_file=args_file),
                                 timeout=timeout)}
    finally:
        args_file.unlink(missing_ok=True)


def restart_node(props: dict, outs: dict) -> dict:
    """Apply changed settings (heap, server.properties, a reissued certificate) by a stop
    and a start on the same storage; also brings back a node whose process died."""
    stop_node(outs)
    return {**outs, **start_node(props)}


def roll_node(props: dict, outs: dict) -> dict:
    """restart_node, one node of the stack at a time (nodes/rolling.py): the next node
    restarts only once this broker is back in every ISR, so a topic with min.insync.replicas
    2 of 3 keeps taking acks=all writes through the roll."""
    name = f"Kafka node {int(props['node_id'])}"
    with rolling.one_at_a_time(props["data_dir"], what=name):
        outs = restart_node(props, outs)
        if "broker" in _roles(props):
            reach = {**props, "bootstrap": f"{props.get('host', '127.0.0.1')}:{int(props['port'])}"}
            outs["in_sync_s"] = wait_in_sync(reach, int(props["node_id"]))
    return outs


def live_process(outs: dict) -> tuple[int, int] | None:
    """(pid, start time) of the JVM serving this node now: the one datakit started, or one
    started since on the same config (a drill's restart)."""
    if node_running(outs):
        pid = int(outs["pid"])
        return pid, int(outs.get("started") or process.start_time(pid) or 0)
    if outs.get("data_dir"):
        return process.find_by_argument(str(Path(outs["data_dir"]) / "server.properties"))
    return None


def stop_node(outs: dict, *, timeout: float = 30.0) -> None:
    """SIGTERM (a controlled shutdown), then SIGKILL after `timeout`; returns when the
    process is gone and its ports are closed. Gone already is fine.

    A node that is the last of its quorum takes about 5-10 s: its broker and its raft
    client each wait for controllers that are gone.
    """
    if live := live_process(outs):
        process.stop(*live, timeout=timeout)
        _wait_ports_closed(outs)


def kill_node(outs: dict) -> None:
    """SIGKILL, as a broker-loss drill does; returns when its ports are closed."""
    if live := live_process(outs):
        process.kill(*live)
        _wait_ports_closed(outs)


def _wait_ports_closed(outs: dict, timeout: float = 10.0) -> None:
    # A killed JVM's main thread is a zombie while its other threads still unwind and
    # hold its sockets (about 0.15 s for a broker): wait for the listeners to go too.
    host = outs.get("host", "127.0.0.1")
    for port in outs.get("ports") or []:
        wait_until(lambda port=port: process.port_free(int(port), host),
                   what=f"port {port} of Kafka node {outs.get('node_id')} to close",
                   timeout=timeout)


def delete_node(outs: dict, *, timeout: float = 30.0, graceful: bool = True) -> None:
    """Stop the node and remove its data dir (only if it looks like a Kafka node's).

    `graceful=False` kills it instead: right when the whole cluster goes away, where a
    controlled shutdown only waits for controllers that are leaving too.
    """
    if graceful:
        stop_node(outs, timeout=timeout)
    else:
        kill_node(outs)
    root = Path(outs["data_dir"]) if outs.get("data_dir") else None
    if root is None or not root.exists():
        return
    known = {"server.properties", "data", "logs", "format.args", "jmx", tls.DIR}
    strangers = {p.name for p in root.iterdir()} - known
    if strangers:
        raise DatakitError(f"not removing {root}: it holds {sorted(strangers)}, "
                           "which datakit did not create; remove it by hand")
    shutil.rmtree(root)


def _read_properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


__all__ = [
    "bootstrap", "client_config", "cluster_health", "create_node", "default_home",
    "delete_node", "delete_topic", "describe_topic", "ensure_topic", "format_node",
    "jvm_args", "kill_node", "live_process", "new_cluster_id", "node_running", "restart_node",
    "server_properties", "start_node", "stop_node", "wait_cluster_ready",
]
