"""A Kafka node's server.properties, from its `props` (see kafka.py): SASL/SCRAM-SHA-512
for clients and between brokers on the client listener, the controller listener, the
static controller quorum, replication defaults for the cluster's size, small thread counts,
StandardAuthorizer, and the stack's own settings last.

With `tls` in props the client listener is SASL_SSL and the controller listener SSL with
client certificates required: brokers reach the controllers with their node certificate,
whose CN is their principal (a super user, as are the admin and the kit's own client);
without, SASL_PLAINTEXT and a PLAINTEXT controller listener on loopback, whose ANONYMOUS
principal must then be a super user for brokers to reach the controllers.
"""

from __future__ import annotations

from pathlib import Path

from datakit.nodes import tls
from datakit.nodes.kafka_cluster import SCRAM, _value

CONTROLLER_LISTENER = "CONTROLLER"
COMBINED = "broker,controller"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# A certificate's subject is "CN=<name>,O=datakit" (nodes/certs.py): its principal is <name>.
PRINCIPAL_RULES = "RULE:^CN=([^,]+),O=datakit$/$1/,DEFAULT"


def client_listener(props: dict) -> str:
    """The client listener's name, which is also its protocol."""
    return "SASL_SSL" if props.get("tls") else "SASL_PLAINTEXT"


def keystore(props: dict) -> Path:
    """The node's key and certificate in one PEM file, as Kafka's PEM keystore reads them."""
    return Path(tls.files(props["data_dir"])["key"]).with_name("keystore.pem")


def roles(props: dict) -> set[str]:
    """The node's process.roles: broker, controller or both (the default)."""
    return set((props.get("roles") or COMBINED).replace(" ", "").split(","))


def _voters(props: dict) -> str:
    """controller.quorum.voters: id@host:port of each voter."""
    return ",".join(f"{int(v['id'])}@{v['host']}:{int(v['port'])}" for v in props["voters"])


def server_properties(props: dict) -> str:
    """The node's server.properties: SASL/SCRAM for clients and brokers, static quorum."""
    node_id, host = int(props["node_id"]), props.get("host", "127.0.0.1")
    client = client_listener(props)
    node_roles = roles(props)
    brokers = int(props.get("broker_count") or len(props["voters"]))
    rf, isr = min(3, brokers), min(2, brokers)
    lines = {
        "process.roles": ",".join(r for r in ("broker", "controller") if r in node_roles),
        "node.id": node_id,
        "controller.quorum.voters": _voters(props),
        "controller.listener.names": CONTROLLER_LISTENER,
        "listener.security.protocol.map":
            f"{client}:{client},"
            f"{CONTROLLER_LISTENER}:{'SSL' if props.get('tls') else 'PLAINTEXT'}",
        "log.dirs": Path(props["data_dir"]) / "data",
        "sasl.enabled.mechanisms": SCRAM,
        "sasl.mechanism.inter.broker.protocol": SCRAM,
        "inter.broker.listener.name": client,
        f"listener.name.{client.lower()}.{SCRAM.lower()}.sasl.jaas.config":
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
        **_security(props),
    }
    listeners = []
    if "broker" in node_roles:
        listeners.append(f"{client}://{host}:{int(props['port'])}")
        lines["advertised.listeners"] = f"{client}://{host}:{int(props['port'])}"
    if "controller" in node_roles:
        listeners.append(f"{CONTROLLER_LISTENER}://{host}:{int(props['controller_port'])}")
    lines["listeners"] = ",".join(listeners)
    lines.update({k: _value(v) for k, v in (props.get("settings") or {}).items()})
    header = f"# written by datakit for Kafka node {node_id}; changes are overwritten\n"
    return header + "".join(f"{k}={v}\n" for k, v in lines.items())


def _security(props: dict) -> dict:
    """TLS on both listeners, and (props `authorize`) who may do what: StandardAuthorizer,
    the super users, and for everyone else only the ACLs the stack grants (kafka_acls.py)."""
    out: dict = {}
    supers = [props["admin_user"]]
    if props.get("tls"):
        own = tls.files(props["data_dir"])
        supers += list(props.get("tls_principals") or [])
        out.update({
            "ssl.keystore.type": "PEM", "ssl.keystore.location": keystore(props),
            "ssl.truststore.type": "PEM", "ssl.truststore.location": own["ca"],
            "ssl.endpoint.identification.algorithm": "https",
            f"listener.name.{CONTROLLER_LISTENER.lower()}.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": PRINCIPAL_RULES,
        })
    else:
        supers.append("ANONYMOUS")  # brokers on the PLAINTEXT controller listener (loopback)
    if props.get("authorize"):
        out.update({"authorizer.class.name": AUTHORIZER,
                    "super.users": ";".join(f"User:{u}" for u in supers)})
    return out
