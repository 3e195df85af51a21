"""Talking to a running Kafka cluster as a client: readiness, health and topics.

Plain functions for the local substrate's Pulumi dynamic resources, like kafka.py (which
re-exports them). Clients authenticate with SASL/SCRAM-SHA-512 on the client listener;
the quorum is asked directly on the controller listeners (kafka_quorum.py).

Cluster `props`: brokers [{"id", "host", "port"}] (or bootstrap), controllers
[{"id", "host", "port"}] (the voters), admin_user/admin_password (and app_*), optionally
cluster_id and nodes (start_node outs).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from datakit.errors import DatakitError
from datakit.nodes import process, tls
from datakit.nodes.kafka_quorum import NOT_LEADER_OR_FOLLOWER, describe_quorum
from datakit.nodes.readiness import NotReady, wait_until

SCRAM = "SCRAM-SHA-512"


def node_running(outs: dict) -> bool:
    """Whether the node of these start_node outs still runs (pid and start time)."""
    pid, started = outs.get("pid"), outs.get("started")
    return bool(pid) and process.is_running(int(pid), int(started) if started else None)


def _value(v: Any) -> str:
    """A config value as Kafka reads it: Pulumi sends 3 as 3.0 and booleans as True."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def client_config(props: dict, *, user: str = "app") -> dict[str, Any]:
    """librdkafka settings for `user` ("app" or "admin") from cluster or node props:
    SASL_SSL checking the brokers against the CA when the props carry TLS files."""
    return {
        "bootstrap.servers": bootstrap(props),
        "sasl.mechanism": SCRAM,
        "sasl.username": props[f"{user}_user"],
        "sasl.password": props[f"{user}_password"],
        **librdkafka_tls(tls.client_files(props)),
    }


def librdkafka_tls(files: dict[str, str] | None) -> dict[str, str]:
    """librdkafka's security settings: SASL over TLS with the stack's CA, or plaintext."""
    if not files:
        return {"security.protocol": "SASL_PLAINTEXT"}
    tls.require({"ca": files["ca"]}, what="Kafka client")
    return {"security.protocol": "SASL_SSL", "ssl.ca.location": files["ca"],
            "ssl.endpoint.identification.algorithm": "https"}


def bootstrap(props: dict) -> str:
    if props.get("bootstrap"):
        return props["bootstrap"]
    return ",".join(f"{b.get('host', '127.0.0.1')}:{int(b['port'])}" for b in props["brokers"])


class _Admin:
    """An AdminClient whose fatal errors (bad credentials) end a wait at once."""

    def __init__(self, props: dict, user: str = "admin") -> None:
        from confluent_kafka.admin import AdminClient

        self.props, self.user = props, user
        self.errors: list[Any] = []
        conf = client_config(props, user=user)
        conf.update({"error_cb": self.errors.append, "socket.connection.setup.timeout.ms": 3000,
                     "reconnect.backoff.max.ms": 1000, "logger": _quiet_logger()})
        self.client = AdminClient(conf)

    def auth_failure(self) -> str | None:
        from confluent_kafka import KafkaError

        self.client.poll(0)
        for err in self.errors:
            if err.code() == KafkaError._AUTHENTICATION:
                return (f"Kafka at {bootstrap(self.props)} refused user "
                        f"{self.props[self.user + '_user']!r}: authentication failed "
                        f"({SCRAM}); check that user's password in the stack's secrets")
        return None

    def check(self) -> None:
        if reason := self.auth_failure():
            raise DatakitError(reason) from None

    def wait(self, probe, *, what: str, timeout: float, nodes: dict | None = None):
        """wait_until for an admin probe; bad credentials end it with their own message,
        and so does a node of `nodes["nodes"]` whose process is gone."""
        def alive() -> str | None:
            return self.auth_failure() or (_first_dead(nodes) if nodes else None)

        try:
            return wait_until(probe, what=what, timeout=timeout, alive=alive,
                              max_interval=0.2)
        except NotReady:
            self.check()
            raise

    def result(self, future, timeout: float = 10.0):
        """Wait for an admin future, failing at once on an authentication error."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            try:
                return future.result(timeout=0.2)
            except TimeoutError:  # concurrent.futures' timeout is this one since 3.11
                pass
            except Exception:
                self.check()
                raise
            if time.monotonic() > deadline:
                self.check()
                raise TimeoutError(f"no answer from Kafka at {bootstrap(self.props)} "
                                   f"in {timeout:g}s")

    def broker_ids(self, timeout: float = 5.0) -> tuple[set[int], str]:
        desc = self.result(self.client.describe_cluster(request_timeout=timeout), timeout)
        return {n.id for n in desc.nodes}, desc.cluster_id


def _quiet_logger():
    import logging

    logger = logging.getLogger("datakit.kafka.librdkafka")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    return logger


# ---------------------------------------------------------------- the cluster

def _quorum(controllers: list[dict]) -> dict:
    """The quorum as its leader reports it, asking each controller in turn."""
    seen = []
    for c in controllers:
        try:
            info = describe_quorum(c.get("host", "127.0.0.1"), int(c["port"]), timeout=2,
                                   context=tls.context(tls.client_files(c)))
        except OSError as exc:
            seen.append(f"controller {int(c['id'])}: {exc}")
            continue
        if info.error == 0 and info.leader_id >= 0:
            return {"leader_id": info.leader_id, "leader_epoch": info.leader_epoch,
                    "high_watermark": info.high_watermark,
                    "voters": {str(k): v for k, v in info.voters.items()}}
        if info.error != NOT_LEADER_OR_FOLLOWER:
            seen.append(f"controller {int(c['id'])}: error code {info.error}")
    raise RuntimeError("no controller leads the quorum" + (f" ({'; '.join(seen)})" if seen else ""))


def _first_dead(props: dict) -> str | None:
    """Why the first of `props["nodes"]` (start_node outs) that has exited is gone."""
    for node in props.get("nodes") or []:
        if node.get("pid") and not node_running(node):
            reason = process.exit_reason(int(node["pid"]), None, Path(node["log"]))
            return f"Kafka node {int(node['node_id'])}: {reason}"
    return None


def wait_cluster_ready(props: dict, *, timeout: float = 120.0) -> dict:
    """Wait until the quorum has a leader and every broker is in the cluster metadata.

    `props`: brokers [{"id", "host", "port"}], controllers [{"id", "host", "port"}]
    (the voters), admin_user/admin_password, optionally cluster_id to check against and
    nodes (start_node outs): a node whose process exits ends the wait with its log tail.
    """
    began = time.monotonic()
    want = {int(b["id"]) for b in props["brokers"]}
    what = f"Kafka cluster at {bootstrap(props)}"
    # Asked every 0.2 s at most (one small request per controller): the stack waits on it.
    quorum = wait_until(lambda: _quorum(props["controllers"]), what=f"{what}: controller quorum",
                        timeout=timeout, alive=lambda: _first_dead(props), max_interval=0.2)
    admin = _Admin(props)

    def all_brokers():
        ids, cluster_id = admin.broker_ids()
        missing = want - ids
        if missing:
            raise RuntimeError(f"brokers {sorted(missing)} not in the metadata yet")
        return ids, cluster_id

    ids, cluster_id = admin.wait(all_brokers, what=what, nodes=props,
                                 timeout=max(timeout - (time.monotonic() - began), 5))
    if props.get("cluster_id") and cluster_id != props["cluster_id"]:
        raise DatakitError(f"{what} has cluster id {cluster_id}, not {props['cluster_id']}: "
                           "another cluster holds these ports")
    return {"bootstrap": bootstrap(props), "cluster_id": cluster_id, "brokers": sorted(ids),
            "leader_id": quorum["leader_id"], "leader_epoch": quorum["leader_epoch"],
            "ready_s": round(time.monotonic() - began, 3)}


def wait_in_sync(props: dict, node_id: int, *, timeout: float = 120.0) -> float:
    """Wait until broker `node_id` is in the metadata and no partition misses a replica
    from its ISR: a restarted broker has caught up. Seconds waited."""
    began = time.monotonic()
    admin = _Admin(props)

    def caught_up() -> bool:
        meta = admin.client.list_topics(timeout=5)
        if node_id not in meta.brokers:
            raise RuntimeError(f"broker {node_id} is not in the metadata yet")
        behind = [f"{t}/{p}" for t, tm in meta.topics.items()
                  for p, pm in tm.partitions.items() if len(pm.isrs) < len(pm.replicas)]
        if behind:
            raise RuntimeError(f"partitions {behind[:3]} miss replicas from their ISR")
        return True

    admin.wait(caught_up, what=f"Kafka broker {node_id} back in sync", timeout=timeout)
    return round(time.monotonic() - began, 3)


def cluster_health(props: dict, *, timeout: float = 5.0) -> dict:
    """One look at the cluster, never waiting long: what is up and what is wrong.

    `props` as for wait_cluster_ready, plus optional `nodes` (start_node outs) whose
    processes are checked too. Returns healthy, problems (one line each), brokers
    (ids in the metadata), unreachable (ids whose client port refuses), quorum.
    """
    problems: list[str] = []
    unreachable = []
    for b in props["brokers"]:
        try:
            with socket.create_connection((b.get("host", "127.0.0.1"), int(b["port"])),
                                          timeout=1):
                pass
        except OSError as exc:
            unreachable.append(int(b["id"]))
            problems.append(f"broker {int(b['id'])} at port {int(b['port'])} unreachable: {exc}")
    for node in props.get("nodes") or []:
        if node.get("pid") and not node_running(node):
            problems.append(f"node {int(node['node_id'])} process {int(node['pid'])} is gone; "
                            f"log: {node.get('log')}")
    try:
        quorum = _quorum(props["controllers"])
        lagging = [v for v, end in quorum["voters"].items() if end < 0]
        if lagging:
            problems.append(f"controllers {lagging} do not follow the leader")
    except RuntimeError as exc:
        quorum = None
        problems.append(str(exc))
    brokers: list[int] = []
    try:
        admin = _Admin(props)
        ids, _ = admin.broker_ids(timeout=timeout)
        brokers = sorted(ids)
        missing = {int(b["id"]) for b in props["brokers"]} - ids
        if missing:
            problems.append(f"brokers {sorted(missing)} missing from the cluster metadata")
    except Exception as exc:  # noqa: BLE001 - any failure is a health finding
        problems.append(f"metadata: {exc}")
    return {"healthy": not problems, "problems": problems, "brokers": brokers,
            "unreachable": unreachable, "quorum": quorum}


# ---------------------------------------------------------------- topics

def _topic_config(props: dict) -> dict[str, str]:
    config = {"unclean.leader.election.enable": "false"}
    if props.get("min_insync_replicas") is not None:
        config["min.insync.replicas"] = str(int(props["min_insync_replicas"]))
    if props.get("retention_ms") is not None:
        config["retention.ms"] = str(int(props["retention_ms"]))
    config.update({k: _value(v) for k, v in (props.get("config") or {}).items()})
    return config


def describe_topic(props: dict, *, timeout: float = 10.0) -> dict | None:
    """The topic's partitions (leader, replicas, isr) and its topic-level configs, or None."""
    from confluent_kafka import KafkaException, TopicCollection
    from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType

    admin = props["_admin"] if "_admin" in props else _Admin(props)
    name = props["name"]
    try:
        desc = admin.result(admin.client.describe_topics(TopicCollection([name]))[name], timeout)
    except KafkaException as exc:
        if exc.args[0].code() == 3:  # UNKNOWN_TOPIC_OR_PARTITION
            return None
        raise
    resource = ConfigResource(ResourceType.TOPIC, name)
    try:
        entries = admin.result(admin.client.describe_configs([resource])[resource], timeout)
    except KafkaException as exc:
        if exc.args[0].code() == 3:  # deleted since the describe above
            return None
        raise
    return {
        "name": name, "topic_id": str(desc.topic_id),
        "partitions": [{"id": p.id, "leader": p.leader.id if p.leader else -1,
                        "replicas": [n.id for n in p.replicas], "isr": [n.id for n in p.isr]}
                       for p in sorted(desc.partitions, key=lambda p: p.id)],
        "config": {k: e.value for k, e in entries.items()
                   if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value},
        "effective": {k: e.value for k, e in entries.items()},
    }


def ensure_topic(props: dict, *, timeout: float = 60.0) -> dict:
    """Create the topic or reconcile it in place; return it once writable with acks=all.

    `props`: brokers or bootstrap, admin_user/admin_password, name, partitions,
    replication_factor, min_insync_replicas, retention_ms, config (more topic configs).
    Partitions only grow (Kafka cannot shrink them); a changed replication factor is
    refused; configs are set to exactly the wanted overrides (others revert to defaults).
    """
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewPartitions,
        NewTopic,
        ResourceType,
    )

    name, partitions = props["name"], int(props["partitions"])
    rf = int(props["replication_factor"])
    config = _topic_config(props)
    min_isr = int(config.get("min.insync.replicas", 1))
    if min_isr > rf:
        raise DatakitError(f"topic {name}: min.insync.replicas {min_isr} is larger than its "
                           f"replication factor {rf}")
    admin = _Admin(props)
    ids, _ = admin.broker_ids()
    if rf > len(ids):
        raise DatakitError(f"topic {name}: replication factor {rf} needs {rf} brokers, "
                           f"the cluster has {len(ids)} ({sorted(ids)})")
    changes: list[str] = []
    current = describe_topic({**props, "_admin": admin})
    if current is None:
        fut = admin.client.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=rf, config=config)],
            operation_timeout=timeout)[name]
        admin.result(fut, timeout)
        changes.append("created")
    else:
        have, have_rf = len(current["partitions"]), len(current["partitions"][0]["replicas"])
        if have_rf != rf:
            raise DatakitError(f"topic {name}: replication factor is {have_rf}, wanted {rf}; "
                               "changing it needs a partition reassignment, which datakit "
                               "does not do: keep the replication factor or recreate the topic")
        if partitions < have:
            raise DatakitError(f"topic {name}: has {have} partitions, wanted {partitions}; "
                               f"Kafka cannot remove partitions: keep {have} or recreate it")
        if partitions > have:
            fut = admin.client.create_partitions([NewPartitions(name, partitions)],
                                                 operation_timeout=timeout)[name]
            admin.result(fut, timeout)
            changes.append(f"partitions {have} -> {partitions}")
        ops = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
               for k, v in config.items() if current["config"].get(k) != v]
        ops += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE)
                for k in current["config"] if k not in config]
        if ops:
            resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=ops)
            admin.result(admin.client.incremental_alter_configs([resource])[resource], timeout)
            changes += [f"{op.name} {'reset' if op.value is None else '-> ' + op.value}"
                        for op in ops]

    def writable():
        desc = describe_topic({**props, "_admin": admin})
        if desc is None or len(desc["partitions"]) != partitions:
            return None
        if any(p["leader"] < 0 or len(p["isr"]) < min_isr for p in desc["partitions"]):
            return None
        if any(desc["config"].get(k) != v for k, v in config.items()):
            return None
        return desc

    desc = admin.wait(writable, what=f"topic {name}", timeout=timeout)
    return {"name": name, "topic_id": desc["topic_id"], "partitions": partitions,
            "replication_factor": rf, "config": desc["config"], "changes": changes}


def delete_topic(props: dict, *, timeout: float = 30.0) -> None:
    """Delete the topic and wait until no broker describes it (the controller acknowledges
    a delete before every broker's metadata has caught up); one already gone is fine."""
    from confluent_kafka import KafkaException

    admin = _Admin(props)
    try:
        admin.result(admin.client.delete_topics([props["name"]],
                                                operation_timeout=timeout)[props["name"]],
                     timeout)
    except KafkaException as exc:
        if exc.args[0].code() != 3:
            raise
    admin.wait(lambda: describe_topic({**props, "_admin": admin}) is None,
               what=f"topic {props['name']} deleted", timeout=timeout)
