"""A stack's outputs: the one schema everything after provisioning reads.

migrate, verify, load and drills take endpoints, nodes and secrets from here only, so they
work on any substrate and on infrastructure someone else provisioned with the same outputs.
Shape (written by infra/outputs.py): `endpoints` (postgres write/read DSNs without passwords,
redis sentinels or cluster seeds, kafka bootstrap servers), `nodes` (service, role, name,
host, port, handle, testinfra host URL), `secrets` (passwords), `disposable`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from datakit.errors import DatakitError
from datakit.stack.lifecycle import open_stack


class NoOutputs(DatakitError):
    pass


def read(stack: str) -> dict[str, Any]:
    """Outputs of `stack` with secrets in plain text, for the kit's own clients.

    `$DATAKIT_OUTPUTS_FILE` (JSON, same shape) stands in for a stack datakit did not make.
    """
    if path := os.environ.get("DATAKIT_OUTPUTS_FILE"):
        with open(path) as src:
            return with_passwords(json.load(src))
    outputs = {k: v.value for k, v in open_stack(stack).outputs().items()}
    if not outputs.get("endpoints"):
        raise NoOutputs(f"stack {stack!r} has no outputs: run `datakit up --stack {stack}`")
    return with_passwords(outputs)


def with_passwords(outputs: dict[str, Any]) -> dict[str, Any]:
    """Add `write_dsn_with_password`-style DSNs that carry the app password."""
    pg = outputs.get("endpoints", {}).get("postgres")
    password = outputs.get("secrets", {}).get("postgres", {}).get("app")
    if pg and password:
        for key in ("write_dsn", "read_dsn"):
            if key in pg and "password=" not in pg[key]:
                pg[key] = f"{pg[key]} password={password}"
    return outputs


def find_node(outputs: dict[str, Any], name: str) -> dict[str, Any]:
    for node in outputs["nodes"]:
        if node["name"] == name:
            return node
    raise DatakitError(f"stack {outputs.get('stack')!r} has no node {name!r}")


def data_dirs(outputs: dict[str, Any]) -> list[Path]:
    return [Path(n["handle"]["data_dir"]) for n in outputs["nodes"]
            if (n.get("handle") or {}).get("data_dir")]
