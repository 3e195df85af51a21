"""Python values to and from PostgreSQL's text format, converted as psycopg converts them.

Only what the runner sends and reads: parameters (`%s`, `%(name)s`, `%%`) with their
types, literals for a query built client-side, and result columns by type. Modules that
cost start-up time (json, decimal, datetime) load when a column of their type first comes.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing and collections cost the no-op's start-up
if TYPE_CHECKING:
    from collections.abc import Callable

_INTS = {20, 21, 23, 26, 28}  # int8, int2, int4, oid, xid
_FLOATS = {700, 701}
_NUMERIC, _BOOL, _JSONS, _TIMESTAMPS = 1700, 16, {114, 3802}, {1114, 1184}
_INT8, _INT8_ARRAY, _TIMESTAMPTZ, _FLOAT8 = 20, 1016, 1184, 701


def dump(value) -> tuple[str | None, int]:
    """(text, type oid) of a parameter. A str goes as 'unknown' (oid 0), so the server types
    it from where it is used, as psycopg sends it; every int as int8."""
    if value is None:
        return None, 0
    if isinstance(value, bool):
        return ("t" if value else "f"), _BOOL
    if isinstance(value, int):
        return str(value), _INT8
    if isinstance(value, float):
        return repr(value), _FLOAT8
    if isinstance(value, str):
        return value, 0
    if isinstance(value, list | tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return "{" + ",".join(str(v) for v in value) + "}", _INT8_ARRAY
    if getattr(value, "tzinfo", None) is not None and hasattr(value, "isoformat"):
        return value.isoformat(), _TIMESTAMPTZ
    raise TypeError(f"cannot send a {type(value).__name__} to PostgreSQL")


def _pieces(query: str):
    """The text between placeholders, and each placeholder's name ('' for %s)."""
    text, i = [], 0
    while True:
        j = query.find("%", i)
        if j < 0:
            yield "".join(text) + query[i:], None
            return
        text.append(query[i:j])
        if query.startswith("%%", j):
            text.append("%")
            i = j + 2
        elif query.startswith("%s", j):
            yield "".join(text), ""
            text, i = [], j + 2
        elif query.startswith("%(", j) and (end := query.find(")s", j)) > j:
            yield "".join(text), query[j + 2:end]
            text, i = [], end + 2
        else:
            raise ValueError(f"only %s, %(name)s and %% may follow % in a query: {query!r}")


def _values(params) -> Callable[[str, int], object]:
    if hasattr(params, "keys"):  # a mapping, for %(name)s
        return lambda name, _: params[name]
    items = list(params)
    return lambda _, i: items[i]


def convert(query: str, params) -> tuple[str, list[tuple[str | None, int]]]:
    """`query` with $1, $2... for its placeholders, and the parameters (a repeated name is one
    parameter)."""
    value = _values(params)
    parts, args, numbers = [], [], {}
    for text, name in _pieces(query):
        parts.append(text)
        if name is None:
            break
        key = name or len(args)
        if key not in numbers:
            args.append(dump(value(name, len(args))))
            numbers[key] = len(args)
        parts.append(f"${numbers[key]}")
    return "".join(parts), args


def inline(query: str, params, quote: Callable[[str], str]) -> str:
    """`query` with its parameters written in as literals (strings through `quote`)."""
    value = _values(params)
    parts = []
    for count, (text, name) in enumerate(_pieces(query)):
        parts.append(text)
        if name is None:
            break
        literal, oid = dump(value(name, count))
        if literal is None:
            parts.append("NULL")
        elif oid in (_INT8, _FLOAT8):
            parts.append(literal)
        else:
            parts.append(quote(literal) + ("" if oid == 0 else f"::{_CASTS[oid]}"))
    return "".join(parts)


_CASTS = {_BOOL: "bool", _INT8_ARRAY: "int8[]", _TIMESTAMPTZ: "timestamptz"}


def loader(oid: int, datestyle: str | None) -> Callable[[str], object]:
    """The function that reads a column of type `oid` from its text (str for other types)."""
    if oid in _INTS:
        return int
    if oid == _BOOL:
        return _bool
    if oid in _FLOATS:
        return float
    if oid == _NUMERIC:
        from decimal import Decimal

        return Decimal
    if oid in _JSONS:
        from json import loads

        return loads
    if oid in _TIMESTAMPS:
        if not (datestyle or "").startswith("ISO"):  # psycopg reads no other style either
            raise ValueError(f"cannot read timestamps with DateStyle {datestyle!r}; set "
                             "DateStyle to ISO for the migration user")
        from datetime import datetime

        return datetime.fromisoformat
    return str


def _bool(text: str) -> bool:
    return text == "t"
