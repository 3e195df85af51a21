"""Sizes and durations as people write them in a stack file ("256MB", "512m", "7d", "500ms").

A size is parsed to bytes and a duration to milliseconds, with binary multiples (1 kB =
1024 bytes) as PostgreSQL, the JVM and Redis's `kb`/`mb`/`gb` read them. A bare integer is
already in the field's unit (bytes or milliseconds). A bad value raises a pydantic error that
carries what is allowed, so the stack's error line can say it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
}
DURATION_UNITS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "min": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}

SIZE_ALLOWED = "a size such as 256MB, 512m, 1GB (binary multiples) or bytes as an integer"
DURATION_ALLOWED = "a duration such as 500ms, 30s, 5m, 12h, 7d or milliseconds as an integer"

_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
# The same forms for an editor: a number and one of the units, any case.
SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*([bB]|[kKmMgGtT][bB]?)?\s*$"
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*([mM][sS]|[sS]|[mM]([iI][nN])?|[hH]|[dD]|[wW])\s*$"


def invalid(problem: str, allowed: str) -> PydanticCustomError:
    """A validation error whose line names the problem and what is allowed."""
    return PydanticCustomError("datakit", "{problem}", {"problem": problem, "allowed": allowed})


def parse_size(value: Any) -> int:
    """Bytes from `value`: an integer (bytes) or a number with a unit ("256MB", "512m")."""
    if isinstance(value, bool):
        raise invalid(f"bad size {value!r}", SIZE_ALLOWED)
    if isinstance(value, int):
        return value
    match = _NUMBER_UNIT.match(str(value)) if isinstance(value, str | float) else None
    unit = match.group(2).lower() if match else None
    if not match or unit not in SIZE_UNITS:
        raise invalid(f"bad size {value!r}", SIZE_ALLOWED)
    return int(float(match.group(1)) * SIZE_UNITS[unit])


def parse_duration_ms(value: Any) -> int:
    """Milliseconds from `value`: an integer (ms) or a number with a unit ("30s", "7d")."""
    if isinstance(value, bool):
        raise invalid(f"bad duration {value!r}", DURATION_ALLOWED)
    if isinstance(value, int):
        return value
    match = _NUMBER_UNIT.match(value) if isinstance(value, str) else None
    unit = match.group(2).lower() if match else None
    if not match or unit not in DURATION_UNITS or (unit == "" and "." in match.group(1)):
        raise invalid(f"bad duration {value!r}", DURATION_ALLOWED)
    if unit == "":
        return int(match.group(1))
    return int(float(match.group(1)) * DURATION_UNITS[unit])


def render_size(nbytes: int) -> str:
    """The largest exact unit PostgreSQL and the JVM both read: "128MB", "1GB", "64kB"."""
    for unit, factor in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if nbytes >= factor and nbytes % factor == 0:
            return f"{nbytes // factor}{unit}"
    return f"{nbytes}B"


def human_size(nbytes: int) -> str:
    """A rounded size for messages: "1.5 GiB"."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if nbytes >= factor:
            return f"{nbytes / factor:.1f} {unit}"
    return f"{nbytes} B"


# The JSON Schema (`datakit schema`) says what a person may write, not the parsed integer.
Size = Annotated[int, BeforeValidator(parse_size),
                 WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0},
                                           {"type": "string", "pattern": SIZE_PATTERN}],
                                 "description": SIZE_ALLOWED})]
"""Bytes; written as "256MB", "512m" or an integer."""

DurationMs = Annotated[int, BeforeValidator(parse_duration_ms),
                       WithJsonSchema({"anyOf": [{"type": "integer"},
                                                 {"type": "string",
                                                  "pattern": DURATION_PATTERN}],
                                       "description": DURATION_ALLOWED})]
"""Milliseconds; written as "500ms", "30s", "7d" or an integer."""


PROMETHEUS_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def is_prometheus_duration(text: str) -> bool:
    """Prometheus's own duration syntax: 500ms, 1s, 5m, 3h, 2d, 1w, or units joined (1h30m)."""
    return bool(PROMETHEUS_DURATION.match(text))
