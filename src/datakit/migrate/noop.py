"""Is there nothing for `apply` to do? Answered from the files and one libpq query, cheaply.

CI runs `datakit migrate apply` on every deploy, and mostly nothing is pending. Loading
psycopg, the dataclasses of `files`, `re`, `json` or `pathlib` costs several times such a
run, so this module uses none of them: it reads the files with `os`, hashes them as
`files` does (`checksum`), and asks the history in one query on the runner's connection
(`libpq`), which the runner goes on with when there is work.

It only ever answers "certainly nothing to do" (the database's version) or "don't know"
(None): a file `files.discover` might refuse, any history it cannot read, drift, a pending
version or a partial no-transaction run all answer None, and the caller runs the full
runner, which does the work and words the errors. So every check of the full runner still
happens; this module only decides when they all pass.
"""

from __future__ import annotations

import os

from datakit.migrate import libpq
from datakit.migrate.checksum import sha256

# The bundled migrations/ beside src/ (datakit.paths.PROJECT_DIR, without pathlib).
BUNDLED_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(
        __file__))))), "migrations")

_DIGITS = frozenset("0123456789")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_DIRECTIVE_NAME = frozenset("abcdefghijklmnopqrstuvwxyz-")
_UNITS = ("us", "ms", "min", "s", "h", "d")

_QUERY = """
SELECT version::text, checksum::text FROM ms_migrations.schema_versions
UNION ALL
SELECT 'partial', count(*)::text FROM ms_migrations.migration_log l
 WHERE l.operation = 'MIGRATE' AND l.status IN ('RUNNING', 'FAILED')
   AND (l.context->>'no_transaction')::boolean AND NOT (l.context ? 'resolved')
   AND NOT EXISTS (SELECT 1 FROM ms_migrations.schema_versions v WHERE v.version = l.version)
"""


# --- the files: what files.discover accepts, or doubt ---------------------------------------


def _name(name: str) -> tuple[str, int] | None:
    """(kind, version) of a name `files.NAME_RE` matches, None when unsure.

    Only ASCII digits count (the pattern's \\d takes other scripts' digits too: those names
    go to the full runner).
    """
    kind, rest = name[:1], name[1:-4]
    if kind not in ("V", "U") or not name.endswith(".sql"):
        return None
    digits = 0
    while digits < len(rest) and rest[digits] in _DIGITS:
        digits += 1
    words = rest[digits + 2:].split("_")
    if not digits or rest[digits:digits + 2] != "__" or not all(
            w and _ALNUM.issuperset(w) for w in words):
        return None
    return kind, int(rest[:digits])


def _duration(value: str) -> bool:
    """`files.DURATION_RE` (ASCII digits only): 5, 500ms, 10min..."""
    for unit in _UNITS:
        if value.endswith(unit):
            value = value[:-len(unit)]
            break
    return bool(value) and _DIGITS.issuperset(value)


def _directives_ok(sql: str) -> bool:
    """True when `files.parse_directives` accepts the leading comment of `sql`."""
    seen: set[str] = set()
    for raw in sql.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("--"):
            break
        body = line[2:].strip()
        if not body.startswith("datakit:"):
            continue
        name, eq, value = body[len("datakit:"):].partition("=")
        if not name or not _DIRECTIVE_NAME.issuperset(name) or name in seen:
            return False
        if any(c.isspace() for c in value):
            return False
        if name == "no-transaction":
            ok = not eq
        elif name in ("lock-timeout", "statement-timeout"):
            ok = _duration(value)
        else:
            ok = name == "lint-ignore" and bool(value)
        if not ok:
            return False
        seen.add(name)
    return True


def checksums(migrations_dir: str | os.PathLike | None = None) -> dict[int, str] | None:
    """{version: checksum of its V file} when `files.discover` accepts every file of the
    directory (names, UTF-8, directives, duplicates, undo files with their migration);
    None when it might not."""
    directory = os.path.realpath(migrations_dir) if migrations_dir else BUNDLED_DIR
    ups: dict[int, str] = {}
    undos: set[int] = set()
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not entry.is_file():
                continue
            if not name.endswith(".sql"):
                if name[:1] in ("V", "U") and name[1:2].isdigit():
                    return None  # discover refuses it
                continue
            parsed = _name(name)
            if parsed is None:
                return None
            with open(entry.path, "rb") as src:
                data = src.read()
            if not _directives_ok(data.decode("utf-8")):
                return None
            kind, version = parsed
            if version in (ups if kind == "V" else undos):
                return None  # a duplicate version
            if kind == "V":
                ups[version] = sha256(data)
            else:
                undos.add(version)
    except (OSError, UnicodeDecodeError):
        return None
    if not undos <= ups.keys():
        return None
    return ups


# --- the history --------------------------------------------------------------------------


def nothing_to_apply(conn: libpq.Connection, files: dict[int, str], *,
                     target: int | None = None) -> int | None:
    """The database's version when apply has certainly nothing to do with `files` (from
    `checksums`), else None. `conn` stays open, for the runner to go on with."""
    try:
        rows = conn.execute(_QUERY).fetchall()
    except libpq.Error:  # no history yet, or anything else: the runner sees to it
        return None
    applied = {}
    for version, checksum in rows:
        if version == "partial":
            if checksum != "0":
                return None
        else:
            applied[int(version)] = checksum.strip()
    if any(files.get(v) != c for v, c in applied.items()):
        return None  # drift or a missing file: let the full runner say so
    if any(v not in applied for v in files if target is None or v <= target):
        return None
    return max(applied) if applied else None
