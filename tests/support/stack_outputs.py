"""A stack outputs document for tests that have no stack: every field the schema requires
filled with a placeholder, and what the test cares about merged over it.

>>> document({"endpoints": {"postgres": {"write_dsn": dsn}}, "disposable": True})
>>> document({"nodes": [row], "secrets": {"redis": {"default": pw}}})
"""

from __future__ import annotations

import copy
from typing import Any

from datakit.stack.schema import StackOutputs

BLANK: dict[str, Any] = {
    "stack": "test",
    "endpoints": {
        "postgres": {"write_dsn": "", "read_dsn": "", "database": "", "app_user": ""},
        "redis": {},
        "kafka": {"bootstrap_servers": "", "security_protocol": "", "sasl_mechanism": "",
                  "username": ""},
    },
    "nodes": [],
}
BLANK_SECRETS: dict[str, Any] = {"postgres": {"superuser": "", "replication": "", "app": ""},
                                 "redis": {"default": ""}, "kafka": {"admin": "", "app": ""}}


def raw(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document as a plain dict (what a JSON file or the engine holds)."""
    changes = changes or {}
    blank = {**BLANK, "secrets": BLANK_SECRETS} if "secrets" in changes else BLANK
    return _merge(copy.deepcopy(blank), changes)


def document(changes: dict[str, Any] | None = None) -> StackOutputs:
    return StackOutputs.model_validate(raw(changes))


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base
