"""Local-substrate settings: the loopback address each native node listens and sends from.

Every node of a `local` stack has an address of its own in 127.0.0.0/8, so a network fault
can cut one node from others (datakit.nodes.faults) while every other link stays up. The
stack takes a /16 of loopback and each service a /24 of it, the node's index last:

    address_base 127.10.0.0  ->  pg-2 127.10.1.2, redis-1 127.10.2.1, kafka-3 127.10.4.3
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from datakit.topology.problems import Spec

# The third octet of each service's addresses (exporters and Prometheus stay on 127.0.0.1:
# they watch the stack from outside, and a fault between nodes must not blind them).
SERVICE_BLOCK = {"postgres": 1, "redis": 2, "sentinel": 3, "kafka": 4, "etcd": 5}
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
MAX_INDEX = 254


class LocalSpec(Spec):
    """How the local substrate places its nodes on this machine."""

    address_base: str = Field(
        "127.10.0.0", description="The loopback /16 the stack's nodes listen on, one "
        "address each (`127.A.0.0`: pg-N at 127.A.1.N, redis-N .2.N, sentinel-N .3.N, kafka-N "
        ".4.N, etcd-N .5.N). Two stacks on one machine need different ones for network "
        "faults to touch only their own nodes; 127.0.0.0 is refused (it holds 127.0.0.1).")

    @field_validator("address_base")
    @classmethod
    def _address_base(cls, value: str) -> str:
        try:
            address = ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address; allowed: 127.A.0.0 with "
                             f"A from 1 to 255") from None
        octets = value.split(".")
        if address not in LOOPBACK or octets[2:] != ["0", "0"] or octets[1] == "0":
            raise ValueError(f"{value!r} is not a loopback /16 of its own; allowed: 127.A.0.0 "
                             f"with A from 1 to 255")
        return str(address)

    def address_of(self, service: str, index: int) -> str | None:
        """A node's address, or None for a service that stays on 127.0.0.1."""
        block = SERVICE_BLOCK.get(service)
        if block is None:
            return None
        if not 1 <= index <= MAX_INDEX:
            raise ValueError(f"node {service}-{index}: at most {MAX_INDEX} nodes per service "
                             f"have a loopback address")
        a = self.address_base.split(".")[1]
        return f"127.{a}.{block}.{index}"
