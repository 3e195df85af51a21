"""What a bad stack config becomes: problems, one line each, raised together.

Every line reads `stack <name>: datakit:<key path>: <problem>; allowed: <what>`, where the
key path is Pulumi's own path syntax (`pulumi config set --path 'datakit:kafka.nodes' 3`
fixes it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from datakit.errors import DatakitError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Spec(BaseModel):
    """Base of every part of the topology: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a stack config: where (a key path), what, and what is allowed."""

    path: str
    problem: str
    allowed: str

    def line(self, stack: str) -> str:
        return f"stack {stack}: datakit:{self.path}: {self.problem}; allowed: {self.allowed}"


def key_path(*segments: str | int) -> str:
    """Pulumi path syntax: `kafka.topics[0].partitions`, `baselines.rto_s["redis-failover"]`."""
    out = ""
    for seg in segments:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif _IDENTIFIER.match(seg):
            out += f".{seg}" if out else seg
        else:
            out += f'["{seg}"]'
    return out


class TopologyError(DatakitError):
    """A stack config that cannot be used; `lines` holds one line per problem."""

    one_line = False  # a line per problem

    def __init__(self, lines: Sequence[str]):
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))
