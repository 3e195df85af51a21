"""A stack's CA and its node certificates, kept in the stack's state as Pulumi resources.

Dynamic resources, like the generated passwords (secret.py): the CA is made once, at the
first `up`, and its key is a Pulumi secret, encrypted in state by the stack's secrets
provider and never in a file of the checkout. Each node's certificate is a resource of its
own whose inputs are the CA, the node's addresses and `tls.generation`: raising the
generation (or moving a node) replaces the certificate, which changes the node's props, and
the node writes the new files and reloads them (nodes/tls.py).
"""

from __future__ import annotations

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

from datakit.nodes import certs
from datakit.topology import Topology

CLIENT = "datakit"  # the kit's own client certificate: etcd and Patroni's REST API want one


class CAProvider(ResourceProvider):
    def create(self, props):
        pair = certs.new_ca(props["common_name"], days=int(props["days"]))
        return CreateResult(id_=props["common_name"],
                            outs={**props, "cert_pem": pair.cert, "key_pem": pair.key})

    def diff(self, _id, olds, news):
        # Only a new name makes a new CA: every node certificate would have to follow.
        renamed = olds.get("common_name") != news.get("common_name")
        return DiffResult(changes=renamed, replaces=["common_name"] if renamed else [])


class StackCA(Resource):
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]

    def __init__(self, name: str, common_name: str, *, days: int,
                 opts: pulumi.ResourceOptions | None = None):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["key_pem"]))
        super().__init__(CAProvider(), name, {"common_name": common_name, "days": days,
                                              "cert_pem": None, "key_pem": None}, opts)


class CertificateProvider(ResourceProvider):
    INPUTS = ("ca_cert", "ca_key", "common_name", "hosts", "days", "generation")

    def create(self, props):
        ca = certs.Pair(props["ca_cert"], props["ca_key"])
        pair = certs.issue(ca, props["common_name"], list(props["hosts"]),
                           days=int(props["days"]))
        return CreateResult(id_=props["common_name"],
                            outs={**props, "cert_pem": pair.cert, "key_pem": pair.key})

    def diff(self, _id, olds, news):
        changed = [k for k in self.INPUTS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed)


class NodeCertificate(Resource):
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]

    def __init__(self, name: str, ca: StackCA, common_name: str, hosts: list[str], *,
                 days: int, generation: int, opts: pulumi.ResourceOptions | None = None):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["key_pem"]))
        super().__init__(CertificateProvider(), name, {
            "ca_cert": ca.cert_pem, "ca_key": ca.key_pem, "common_name": common_name,
            "hosts": hosts, "days": days, "generation": generation,
            "cert_pem": None, "key_pem": None}, opts)


class StackPki:
    """The stack's CA and what it issues; with `tls.enabled: false`, nothing at all."""

    def __init__(self, topo: Topology):
        # The docker substrate does not take certificates yet (program.warn_plaintext).
        self.enabled = topo.tls.enabled and topo.substrate == "local"
        self._spec = topo.tls
        self.ca = StackCA("tls-ca", f"datakit {topo.name} CA", days=topo.tls.ca_days) \
            if self.enabled else None

    def issue(self, name: str, hosts: list[str],
              parent: pulumi.Resource | None = None) -> dict | None:
        """A node's `tls` props ({ca, cert, key} PEM), or None when TLS is off."""
        if self.ca is None:
            return None
        cert = NodeCertificate(f"{name}-cert", self.ca, name, hosts, days=self._spec.node_days,
                               generation=self._spec.generation,
                               opts=pulumi.ResourceOptions(parent=parent) if parent else None)
        return {"ca": self.ca.cert_pem, "cert": cert.cert_pem, "key": cert.key_pem}

    def ca_pem(self) -> pulumi.Output[str] | None:
        return self.ca.cert_pem if self.ca else None
