"""The Pulumi program: topology in, one component per service, outputs out.

It also chooses the substrate, so the substrate contract (substrate.py) never imports the
substrates that implement it.
"""

from __future__ import annotations

import pulumi

from datakit.infra import outputs
from datakit.infra.certs import StackPki
from datakit.infra.components import (
    EtcdCluster,
    KafkaCluster,
    Metrics,
    PostgresCluster,
    RedisGroup,
)
from datakit.infra.local.substrate import LocalSubstrate
from datakit.infra.secret import Secrets
from datakit.infra.substrate import Substrate
from datakit.topology import Topology, from_pulumi_config


def for_topology(topo: Topology, pki: StackPki | None = None) -> Substrate:
    if topo.substrate == "local":
        return LocalSubstrate(pki)
    # pulumi_docker takes about 0.2 s to import (measured with -X importtime), and a local
    # stack's program never needs it.
    from datakit.infra.docker.substrate import DockerSubstrate

    return DockerSubstrate()


def build(topo: Topology | None = None) -> None:
    topo = topo or from_pulumi_config()
    pki = StackPki(topo)
    substrate = for_topology(topo, pki)
    secrets = Secrets()
    warn_plaintext(topo, substrate)
    etcd = EtcdCluster("etcd", topo, substrate, secrets)  # before PostgreSQL: Patroni's store
    postgres = PostgresCluster("postgres", topo, substrate, secrets)
    redis = RedisGroup("redis", topo, substrate, secrets)
    kafka = KafkaCluster("kafka", topo, substrate, secrets)
    substrate.migrations(topo, secrets, after=postgres.resources,
                         parent=postgres)
    servers = [*postgres.nodes, *redis.nodes, *kafka.nodes, *etcd.nodes]
    metrics = Metrics("metrics", topo, substrate, secrets, servers)
    client_tls = substrate.client_tls(topo)
    outputs.export(topo, [*servers, *metrics.nodes], secrets, client_tls, pki.ca_pem())
    pulumi.log.debug(f"datakit stack {topo.name}: {len(topo.nodes())} nodes")


def warn_plaintext(topo: Topology, substrate: Substrate) -> None:
    """Plaintext links are said out loud: switched off on purpose, or not yet built."""
    if not topo.tls.enabled:
        pulumi.log.warn(f"stack {topo.name}: TLS is off (datakit:tls.enabled false): every "
                        "link of this disposable stack is plaintext")
    elif substrate.name == "docker":
        pulumi.log.warn(f"stack {topo.name}: the {substrate.name} substrate does not do TLS "
                        "yet: its links are plaintext")
