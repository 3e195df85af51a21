"""Kafka KRaft nodes (broker and controller in one process) as apache/kafka containers,
and a one-shot job that creates the topics once every node is healthy.

All nodes share one cluster id, derived from the stack's name (stable across runs, the
same as the local substrate's), and one static voter list. A node formats its volume on
its first start only, adding the SCRAM-SHA-512 users `admin` and `app` then; passwords
come from the secret environment into files under /tmp, never into a Pulumi input.

With metrics on, the broker's JVM loads the Prometheus JMX exporter javaagent, serving
/metrics on the node's metrics port. The jar goes into an image the program builds from the
pinned one (kafka_image/Dockerfile, tools/build-jmx-exporter's jar at its pinned digest),
not into an upload: an upload names the jar by its path on the deploying machine, so an
`up` from another machine would replace every broker at once. Its small config is uploaded.

Listeners: CONTROLLER (PLAINTEXT, peers only), CLIENT (SASL_PLAINTEXT, advertised at the
client address) and, on a bridge network, INTERNAL (SASL_PLAINTEXT on 19092, advertised at
the container name) for brokers and the topic job, so published and in-network addresses
never have to be the same one.
"""

from __future__ import annotations

import uuid
from base64 import urlsafe_b64encode
from pathlib import Path

import pulumi

from datakit.infra import outputs
from datakit.infra.docker.network import Layout, Placement
from datakit.infra.docker.node import NodeContainers, NodeSpec
from datakit.infra.secret import Secrets
from datakit.infra.substrate import Provisioned
from datakit.nodes.metrics.exporters import agent_flag, agent_jar, jmx_config_yaml
from datakit.toolchain.versions import jmx_exporter_sha256, jmx_exporter_version
from datakit.topology import Node, Topology

BIN = "/opt/kafka/bin"
DATA = "/var/lib/kafka/data"
CONF_DIR = "/tmp/datakit"
INTERNAL_PORT = 19092
JMX_DIR = "/opt/datakit/jmx"
JMX_JAR, JMX_CONFIG = f"{JMX_DIR}/jmx_prometheus_javaagent.jar", f"{JMX_DIR}/jmx-exporter.yml"
IMAGE_DOCKERFILE = Path(__file__).parent / "kafka_image" / "Dockerfile"
SCRAM = "SCRAM-SHA-512"
JAAS = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="{user}" password="${{DATAKIT_KAFKA_ADMIN_PASSWORD}}";')


def cluster_id(stack: str) -> str:
    """One id per stack, stable across runs: a UUID from the stack's name, base64 as Kafka
    writes it (the same derivation as the local substrate)."""
    raw = uuid.uuid5(uuid.NAMESPACE_URL, f"datakit:{stack}").bytes
    return urlsafe_b64encode(raw).decode().rstrip("=")


def broker_address(place: Placement) -> str:
    """Where brokers and the topic job reach a node."""
    port = place.node.port if place.host_network else INTERNAL_PORT
    return f"{place.peer_host}:{port}"


def server_properties(topo: Topology, layout: Layout, place: Placement) -> dict[str, str]:
    node = place.node
    voters = ",".join(f"{n.index}@{layout[n.name].peer_host}:{n.controller_port}"
                      for n in topo.nodes("kafka"))
    listeners = [f"CLIENT://0.0.0.0:{node.port}", f"CONTROLLER://0.0.0.0:{node.controller_port}"]
    advertised = [f"CLIENT://{place.client_host}:{node.port}"]
    protocols = ["CLIENT:SASL_PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    inter_broker = "CLIENT"
    if not place.host_network:
        listeners.append(f"INTERNAL://0.0.0.0:{INTERNAL_PORT}")
        advertised.append(f"INTERNAL://{place.peer_host}:{INTERNAL_PORT}")
        protocols.append("INTERNAL:SASL_PLAINTEXT")
        inter_broker = "INTERNAL"
    props = {
        "node.id": str(node.index),
        "process.roles": "broker,controller",
        "controller.quorum.voters": voters,
        "controller.listener.names": "CONTROLLER",
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(advertised),
        "listener.security.protocol.map": ",".join(protocols),
        "inter.broker.listener.name": inter_broker,
        "sasl.enabled.mechanisms": SCRAM,
        "sasl.mechanism.inter.broker.protocol": SCRAM,
        "log.dirs": DATA,
        **topo.kafka.server_properties(),
    }
    for listener in ("client", "internal") if not place.host_network else ("client",):
        props[f"listener.name.{listener}.{SCRAM.lower()}.sasl.jaas.config"] = JAAS.format(
            user=outputs.KAFKA_ADMIN_USER)
    return props


def admin_properties() -> str:
    """Client settings of the admin user (health probe, topic job); ${VAR} filled by sh."""
    return (f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism={SCRAM}\n"
            f"sasl.jaas.config={JAAS.format(user=outputs.KAFKA_ADMIN_USER)}\n")


def _write(path: str, text: str) -> str:
    return f"cat > {path} <<DATAKIT_EOF\n{text}DATAKIT_EOF\nchmod 600 {path}\n"


def start_script(props: dict[str, str], agent: str | None = None) -> str:
    """Write the node's config, format its volume once, start the broker (with `agent`, a
    -javaagent flag, in its JVM only)."""
    server = "".join(f"{k}={v}\n" for k, v in props.items())
    scram = " ".join(
        f'--add-scram "{SCRAM}=[name={user},password=${{{var}}}]"'
        for user, var in ((outputs.KAFKA_ADMIN_USER, "DATAKIT_KAFKA_ADMIN_PASSWORD"),
                          (outputs.KAFKA_APP_USER, "DATAKIT_KAFKA_APP_PASSWORD")))
    return (
        f"set -eu\numask 077\nmkdir -p {CONF_DIR}\n"
        + _write(f"{CONF_DIR}/server.properties", server)
        + _write(f"{CONF_DIR}/admin.properties", admin_properties())
        + f"if [ ! -f {DATA}/meta.properties ]; then\n"
        f'  {BIN}/kafka-storage.sh format -t "$DATAKIT_CLUSTER_ID" '
        f"-c {CONF_DIR}/server.properties {scram}\nfi\n"
        # Set here, not in the container's env: the format above and the health probe's
        # CLI run JVMs too, and a second agent would fail binding the same port.
        + (f'export KAFKA_OPTS="${{KAFKA_OPTS:-}} {agent}"\n' if agent else "")
        + f"exec {BIN}/kafka-server-start.sh {CONF_DIR}/server.properties\n")


def topics_script(topo: Topology, bootstrap: str) -> str:
    """Create each topic if missing, then set its configs (create or reconcile)."""
    lines = ["set -eu", "umask 077", f"mkdir -p {CONF_DIR}",
             _write(f"{CONF_DIR}/admin.properties", admin_properties()).rstrip("\n")]
    common = f"--bootstrap-server {bootstrap} --command-config {CONF_DIR}/admin.properties"
    for t in topo.kafka.topics:
        configs = t.configs()
        create_cfg = " ".join(f"--config {k}={v}" for k, v in configs.items())
        alter_cfg = ",".join(f"{k}=[{v}]" if "," in v else f"{k}={v}" for k, v in configs.items())
        lines.append(f"{BIN}/kafka-topics.sh {common} --create --if-not-exists --topic {t.name} "
                     f"--partitions {t.partitions} --replication-factor {t.replication_factor} "
                     f"{create_cfg}")
        lines.append(f"{BIN}/kafka-configs.sh --bootstrap-server {bootstrap} "
                     f"--command-config {CONF_DIR}/admin.properties --alter "
                     f"--entity-type topics --entity-name {t.name} --add-config {alter_cfg}")
    return "\n".join(lines) + "\n"


def image_name(topo: Topology) -> str:
    """The built image's name: its base tag and the agent's version."""
    base = topo.docker.images.kafka.split("/")[-1].replace(":", "-").replace("@", "-")
    return f"datakit/{base}-jmx:{jmx_exporter_version()}"


def image(topo: Topology, containers: NodeContainers, place: Placement,
          parent: pulumi.Resource) -> pulumi.Input[str] | None:
    """The image of a broker whose JVM loads the agent; None (the pinned image) without."""
    if not place.node.metrics_port:
        return None
    built = containers.built_image(
        "kafka-jmx", image_name(topo), agent_jar().parent,
        {"KAFKA_IMAGE": topo.docker.images.kafka, "JMX_EXPORTER_SHA256": jmx_exporter_sha256()},
        place.docker_host, parent, dockerfile=IMAGE_DOCKERFILE)
    return built.image_name


def jmx_agent(node: Node) -> tuple[str | None, dict[str, str]]:
    """(the -javaagent flag, the uploaded config) of a node; none without metrics."""
    if not node.metrics_port:
        return None, {}
    return (agent_flag(JMX_JAR, "0.0.0.0", node.metrics_port, JMX_CONFIG),
            {JMX_CONFIG: jmx_config_yaml()})


def build(topo: Topology, secrets: Secrets, layout: Layout, containers: NodeContainers,
          parent: pulumi.Resource) -> list[Provisioned]:
    spec = topo.kafka
    admin = secrets.get("kafka", "admin")
    made: list[Provisioned] = []
    brokers = []
    for node in topo.nodes("kafka"):
        place = layout[node.name]
        own = node.port if place.host_network else INTERNAL_PORT
        probe = (f"{BIN}/kafka-broker-api-versions.sh --bootstrap-server 127.0.0.1:{own} "
                 f"--command-config {CONF_DIR}/admin.properties > /dev/null")
        agent, uploads = jmx_agent(node)
        node_spec = NodeSpec(
            "kafka", ["bash", "-c", start_script(server_properties(topo, layout, place), agent)],
            probe, DATA,
            env={"DATAKIT_CLUSTER_ID": cluster_id(topo.name), "KAFKA_HEAP_OPTS": spec.heap_opts()},
            secret_env={"DATAKIT_KAFKA_ADMIN_PASSWORD": admin,
                        "DATAKIT_KAFKA_APP_PASSWORD": secrets.get("kafka", "app")},
            uploads=uploads, start_period_s=90, image=image(topo, containers, place, parent),
            extra_ports=[node.metrics_port] if node.metrics_port else [])
        res = containers.container(place, node_spec, parent)
        brokers.append(res)
        made.append(place.provisioned(res))

    if spec.topics:
        first = layout[topo.nodes("kafka")[0].name]
        bootstrap = ",".join(broker_address(layout[n.name]) for n in topo.nodes("kafka"))
        job = NodeSpec("kafka", ["bash", "-c", topics_script(topo, bootstrap)], "true", None,
                       secret_env={"DATAKIT_KAFKA_ADMIN_PASSWORD": admin})
        # Every broker is healthy (its create waited for that) before the job starts.
        containers.container(first, job, parent, depends_on=brokers, name="kafka-topics",
                             one_shot=True)
    return made
