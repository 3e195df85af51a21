"""One Pulumi dynamic resource for every local node; its kind says what the node is.

Inputs live under `spec` (what the node should be), what `create` learned lives under
`state` (pid, process start time, data dir, log). The provider is stateless and pickled by
reference; the work is done by the kind's module (`kinds.py`), which knows nothing of Pulumi.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)


def _kind(name: str):
    from datakit.infra.local.kinds import KINDS

    return KINDS[name]


def _plain(value: Any) -> Any:
    """Numbers cross the wire as doubles: give back ints where a float is whole."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class LocalNodeProvider(ResourceProvider):
    def create(self, props):
        props = _plain(props)
        state = _kind(props["kind"]).create(props["spec"])
        return CreateResult(id_=props["node"], outs={**props, "state": state})

    def diff(self, _id, olds, news):
        old, new = _plain(olds.get("spec", {})), _plain(news.get("spec", {}))
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        replace_keys = _kind(news["kind"]).replace_keys
        replaces = [f"spec.{k}" for k in changed if k in replace_keys]
        return DiffResult(changes=bool(changed), replaces=replaces,
                          delete_before_replace=True)

    def update(self, _id, olds, news):
        olds, news = _plain(olds), _plain(news)
        state = _kind(news["kind"]).apply_update(olds["spec"], olds["state"], news["spec"])
        return UpdateResult(outs={**news, "state": state})

    def delete(self, _id, props):
        from datakit.nodes import own_address

        props = _plain(props)
        _kind(props["kind"]).delete(props["spec"], props.get("state") or {})
        own_address.release(props["spec"].get("host"))  # its source-address rule, if any

    def read(self, id_, props):
        props = _plain(props)
        state = props.get("state") or {}
        kind = _kind(props["kind"])
        # Judge the process serving the node now, which a drill may have restarted.
        state = kind.refreshed(props["spec"], state) if state else state
        if not state or not kind.alive(props["spec"], state):
            # A blank id drops the node from state, so the next `up` creates it again.
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs={**props, "state": state})


class LocalNode(Resource):
    """A node of the local substrate: `kind` selects the work, `spec` its inputs."""

    spec: pulumi.Output[dict]
    state: pulumi.Output[dict]

    def __init__(self, name: str, kind: str, spec: dict, *,
                 opts: pulumi.ResourceOptions | None = None):
        # A spec carries passwords: the whole of it, and what create returns, stay secret.
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["spec", "state"]))
        super().__init__(LocalNodeProvider(), name,
                         {"kind": kind, "node": name, "spec": spec, "state": None}, opts)
