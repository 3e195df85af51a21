"""Generated passwords, kept as Pulumi secrets in the stack's state.

A dynamic resource rather than config: the value is made once at the first `up`, is
stable across updates, never passes through a file in git, and is encrypted in state by
the stack's secrets provider. It works unchanged on every substrate.
"""

from __future__ import annotations

import secrets

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider


class GeneratedPasswordProvider(ResourceProvider):
    def create(self, props):
        # URL-safe and free of quotes/spaces/`@:/`: safe in DSNs, config files and URLs.
        value = secrets.token_hex(int(props["bytes"]))
        return CreateResult(id_=props["purpose"], outs={**props, "value": value})

    def diff(self, _id, olds, news):
        return DiffResult(changes=olds.get("bytes") != news.get("bytes"), replaces=["bytes"])


class GeneratedPassword(Resource):
    value: pulumi.Output[str]

    def __init__(self, name: str, purpose: str, *, nbytes: int = 24,
                 opts: pulumi.ResourceOptions | None = None):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["value"]))
        super().__init__(GeneratedPasswordProvider(), name,
                         {"purpose": purpose, "bytes": nbytes, "value": None}, opts)


class Secrets:
    """Every generated password of a stack, per service and role."""

    ROLES = {
        # rest: Patroni's REST API; monitor: the exporters' role
        "postgres": ("superuser", "replication", "app", "rest", "monitor"),
        "redis": ("default", "sentinel"),
        "kafka": ("admin", "app"),
    }

    def __init__(self, parent: pulumi.Resource | None = None):
        opts = pulumi.ResourceOptions(parent=parent) if parent else None
        self._values = {
            service: {role: GeneratedPassword(f"{service}-{role}-password",
                                              f"{service}/{role}", opts=opts).value
                      for role in roles}
            for service, roles in self.ROLES.items()
        }

    def get(self, service: str, role: str) -> pulumi.Output[str]:
        return self._values[service][role]

    def as_output(self) -> dict:
        return self._values
