"""A Kafka node's server.properties, from its `props` (see kafka.py): SASL/SCRAM-SHA-512
for clients and between brokers on the client listener, a PLAINTEXT controller listener
on loopback, the static controller quorum, replication defaults for the cluster's size,
small thread counts, and the stack's own settings last."""

from __future__ import annotations

from pathlib import Path

from datakit.nodes.kafka_cluster import SCRAM, _value

CLIENT_LISTENER = "SASL_PLAINTEXT"
CONTROLLER_LISTENER = "CONTROLLER"
COMBINED = "broker,controller"


def roles(props: dict) -> set[str]:
    """The node's process.roles: broker, controller or both (the default)."""
    return set((props.get("roles") or COMBINED).replace(" ", "").split(","))


def _voters(props: dict) -> str:
    """controller.quorum.voters: id@host:port of each voter."""
    return ",".join(f"{int(v['id'])}@{v['host']}:{int(v['port'])}" for v in props["voters"])


def server_properties(props: dict) -> str:
    """The node's server.properties: SASL/SCRAM for clients and brokers, static quorum."""
    node_id, host = int(props["node_id"]), props.get("host", "127.0.0.1")
    node_roles = roles(props)
    brokers = int(props.get("broker_count") or len(props["voters"]))
    rf, isr = min(3, brokers), min(2, brokers)
    lines = {
        "process.roles": ",".join(r for r in ("broker", "controller") if r in node_roles),
        "node.id": node_id,
        "controller.quorum.voters": _voters(props),
        "controller.listener.names": CONTROLLER_LISTENER,
        "listener.security.protocol.map":
            f"{CLIENT_LISTENER}:SASL_PLAINTEXT,{CONTROLLER_LISTENER}:PLAINTEXT",
        "log.dirs": Path(props["data_dir"]) / "data",
        "sasl.enabled.mechanisms": SCRAM,
        "sasl.mechanism.inter.broker.protocol": SCRAM,
        "inter.broker.listener.name": CLIENT_LISTENER,
        f"listener.name.{CLIENT_LISTENER.lower()}.{SCRAM.lower()}.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{props["admin_user"]}" password="{props["admin_password"]}";',
        "num.partitions": 3,
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
        "unclean.leader.election.enable": "false",
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": 0,
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
        "background.threads": 4,
        # Upstream's 60 s makes a broker exit when the other voters start later than
        # that; the dynamic provider runs 4 creates at a time, so allow for a queue.
        "initial.broker.registration.timeout.ms": 300000,
    }
    listeners = []
    if "broker" in node_roles:
        listeners.append(f"{CLIENT_LISTENER}://{host}:{int(props['port'])}")
        lines["advertised.listeners"] = f"{CLIENT_LISTENER}://{host}:{int(props['port'])}"
    if "controller" in node_roles:
        listeners.append(f"{CONTROLLER_LISTENER}://{host}:{int(props['controller_port'])}")
    lines["listeners"] = ",".join(listeners)
    lines.update({k: _value(v) for k, v in (props.get("settings") or {}).items()})
    header = f"# written by datakit for Kafka node {node_id}; changes are overwritten\n"
    return header + "".join(f"{k}={v}\n" for k, v in lines.items())
