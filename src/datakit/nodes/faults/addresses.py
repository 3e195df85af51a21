"""The safety rule of every network fault: it names single addresses inside 127.0.0.0/8.

A fault rule that named 10.x, 192.168.x, 0.0.0.0/0 or a host name could cut this machine
off its real network (or a colleague's session off the machine), so anything outside
loopback is refused before a single rule is installed, with one line naming the address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from datakit.errors import DatakitError

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


class FaultError(DatakitError):
    """A fault that cannot be installed or removed; the message names it and the fix."""


class NotLoopback(FaultError):
    """An address outside 127.0.0.0/8 (or no IPv4 address at all) given to a fault."""


def loopback(address: object) -> str:
    """`address` as a dotted IPv4 string, if it is one address inside 127.0.0.0/8."""
    text = str(address).strip()
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        raise NotLoopback(
            f"fault address {text!r} is not an IPv4 address: give a node's address in "
            f"{LOOPBACK} (e.g. 127.0.10.2), not a name or a network"
        ) from None
    if parsed.version != 4 or parsed not in LOOPBACK:
        raise NotLoopback(
            f"fault address {text} is outside {LOOPBACK}: datakit injects network faults "
            f"between loopback addresses only; give the node's 127.x.y.z address"
        )
    return str(parsed)


def loopback_set(addresses: Iterable[object], what: str) -> frozenset[str]:
    """A non-empty set of loopback addresses; `what` names the argument in the error."""
    if isinstance(addresses, str | bytes):
        addresses = [addresses]  # one address given where a set was meant
    checked = frozenset(loopback(a) for a in addresses)
    if not checked:
        raise FaultError(f"fault: {what} names no address; give at least one 127.x.y.z")
    return checked
