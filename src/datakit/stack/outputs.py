"""A stack's outputs, read and validated: what everything after provisioning works from.

migrate, verify, load, drills and status take endpoints, nodes and secrets from here only,
as a `StackOutputs` (stack/schema.py), so they work on any substrate and on infrastructure
someone else provisioned: `$DATAKIT_OUTPUTS_FILE` names a JSON file of the same shape that
stands in for the stack. Outputs that do not fit the schema are one error naming where
they came from and the first field that does not fit.

    >>> out = read("local")
    >>> out.endpoints.postgres.write_dsn     # with the app password, for the kit's clients
    >>> out.node("pg-1").handle.data_dir
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from datakit.errors import DatakitError
from datakit.stack import lifecycle
from datakit.stack.schema import StackOutputs

FILE_ENV = "DATAKIT_OUTPUTS_FILE"


class NoOutputs(DatakitError):
    pass


class BadOutputs(DatakitError):
    """Outputs that do not fit the schema: the message names their source and field."""


def read(stack: str) -> StackOutputs:
    """The outputs of `stack` (or of `$DATAKIT_OUTPUTS_FILE`), with the app password in
    the PostgreSQL DSNs."""
    if path := os.environ.get(FILE_ENV):
        return from_file(Path(path)).with_passwords()
    return of_stack(stack).with_passwords()


def of_stack(stack: str, raw: dict[str, Any] | None = None) -> StackOutputs:
    """The outputs the stack holds (`raw`: as `lifecycle.outputs` gave them), validated;
    the DSNs as stored, without a password."""
    raw = lifecycle.outputs(stack) if raw is None else raw
    if not raw.get("endpoints"):
        raise NoOutputs(f"stack {stack!r} has no outputs: run `datakit up --stack {stack}`")
    return parse(raw, f"the outputs of stack {stack!r}")


def from_file(path: Path) -> StackOutputs:
    where = f"{path} (${FILE_ENV})"
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise BadOutputs(f"{where}: cannot read it ({exc.strerror}); point {FILE_ENV} at "
                         "a stack outputs file") from None
    except json.JSONDecodeError as exc:
        raise BadOutputs(f"{where}: not JSON ({exc.msg}, line {exc.lineno}); write the "
                         "outputs as `datakit outputs --json --show-secrets` prints them") \
            from None
    return parse(raw, where)


def parse(raw: Any, where: str) -> StackOutputs:
    """`raw` as a StackOutputs; one BadOutputs line naming `where` and the first misfit."""
    try:
        return StackOutputs.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BadOutputs(f"{where}: {field_path(first['loc'])}: {first['msg']}{more}; make "
                         "them fit the stack outputs schema (datakit.stack.schema."
                         "StackOutputs)") from None


def field_path(loc: tuple[int | str, ...]) -> str:
    """A field's place in Pulumi's path syntax, as topology problems name theirs:
    ("nodes", 0, "handle", "kind") -> nodes[0].handle.kind."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "the whole document"
