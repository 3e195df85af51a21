"""Migration files on disk: discover, name-check, read directives, checksum.

`V<version>__<description>.sql` applies a change, `U<version>__<description>.sql` undoes
it. Directives sit in the file's leading comment lines:

    -- datakit:no-transaction          statements run one by one in autocommit
    -- datakit:lock-timeout=5s         SET lock_timeout for this migration
    -- datakit:statement-timeout=10min SET statement_timeout for this migration
    -- datakit:lint-ignore=DK001,DK006 silence lint rules for this file

Every problem is a `MigrationFileError` that names the file and the fix.

The records here (and the runner's) are named tuples, not dataclasses: importing
`dataclasses` and making a dozen of them costs a 200-migration apply about 90M
instructions of start-up, a tenth of its client work.
"""

from __future__ import annotations

import re
from collections import namedtuple
from pathlib import Path

from datakit.errors import DatakitError
from datakit.migrate.checksum import sha256
from datakit.paths import PROJECT_DIR

BUNDLED_DIR = PROJECT_DIR / "migrations"

NAME_RE = re.compile(r"^([VU])(\d+)__([A-Za-z0-9]+(?:_[A-Za-z0-9]+)*)\.sql$")
DIRECTIVE_RE = re.compile(r"^--\s*datakit:([a-z-]+)(?:=(\S*))?\s*$")
DURATION_RE = re.compile(r"^\d+(us|ms|s|min|h|d)?$")
KNOWN_DIRECTIVES = ("no-transaction", "lock-timeout", "statement-timeout", "lint-ignore")


class MigrationFileError(DatakitError):
    """A migration file (or the set of them) is malformed."""


class Directives(namedtuple("Directives", "no_transaction lock_timeout statement_timeout "
                            "lint_ignore", defaults=(False, None, None, frozenset()))):
    """A file's directives: no_transaction (bool), lock_timeout and statement_timeout (str or
    None), lint_ignore (frozenset of rule ids)."""

    __slots__ = ()


class SqlFile(namedtuple("SqlFile", "kind version description path sql checksum directives")):
    """One V or U file: kind ("V" or "U"), version (int), description, path (Path), sql,
    checksum (hex SHA-256 of its bytes) and directives."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return self.path.name


class Migration(namedtuple("Migration", "up undo")):
    """A versioned migration (its V file, `up`) and its optional undo (a U file or None)."""

    __slots__ = ()

    @property
    def version(self) -> int:
        return self.up.version

    @property
    def description(self) -> str:
        return self.up.description

    @property
    def name(self) -> str:
        return self.up.name

    @property
    def checksum(self) -> str:
        return self.up.checksum


def parse_directives(sql: str, where: str) -> Directives:
    """Read `-- datakit:` directives from the leading comment lines of `sql`."""
    values: dict[str, str | None] = {}
    for raw in sql.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("--"):
            break
        body = line[2:].strip()
        if not body.startswith("datakit:"):
            continue
        match = DIRECTIVE_RE.match(line)
        name = match.group(1) if match else body[len("datakit:"):].split("=")[0]
        if not match or name not in KNOWN_DIRECTIVES:
            raise MigrationFileError(
                f"{where}: unknown directive {line!r}; known: "
                + ", ".join(f"datakit:{d}" for d in KNOWN_DIRECTIVES)
            )
        value = match.group(2)
        if name == "no-transaction" and value is not None:
            raise MigrationFileError(f"{where}: 'datakit:no-transaction' takes no value")
        if name in ("lock-timeout", "statement-timeout") and not DURATION_RE.match(value or ""):
            raise MigrationFileError(
                f"{where}: 'datakit:{name}' needs a duration such as 5s, 500ms or 10min, "
                f"got {value!r}"
            )
        if name == "lint-ignore" and not value:
            raise MigrationFileError(f"{where}: 'datakit:lint-ignore' needs rule ids, e.g. DK001")
        if name in values:
            raise MigrationFileError(f"{where}: directive 'datakit:{name}' given twice")
        values[name] = value
    return Directives(
        no_transaction="no-transaction" in values,
        lock_timeout=values.get("lock-timeout"),
        statement_timeout=values.get("statement-timeout"),
        lint_ignore=frozenset(
            r.strip().upper() for r in (values.get("lint-ignore") or "").split(",") if r.strip()
        ),
    )


def read_sql_file(path: Path) -> SqlFile:
    match = NAME_RE.match(path.name)
    if not match:
        raise MigrationFileError(
            f"{path}: file name does not match V<version>__<description>.sql or "
            "U<version>__<description>.sql (description: letters and digits joined by "
            "underscores); rename it"
        )
    data = path.read_bytes()
    try:
        sql = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationFileError(f"{path}: not valid UTF-8 ({exc}); save it as UTF-8") from None
    kind, version, description = match.group(1), int(match.group(2)), match.group(3)
    return SqlFile(kind, version, description, path, sql, sha256(data),
                   parse_directives(sql, str(path)))


def discover(migrations_dir: Path | str | None = None) -> list[Migration]:
    """All migrations in `migrations_dir`, sorted by version, each with its undo if any."""
    directory = Path(migrations_dir).resolve() if migrations_dir else BUNDLED_DIR
    if not directory.is_dir():
        raise MigrationFileError(
            f"{directory}: migrations directory not found; pass --migrations-dir DIR"
        )
    ups: dict[int, SqlFile] = {}
    undos: dict[int, SqlFile] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if not path.name.endswith(".sql"):
            if path.name[:1] in ("V", "U") and path.name[1:2].isdigit():
                raise MigrationFileError(f"{path}: migration files must end in .sql; rename it")
            continue
        sql_file = read_sql_file(path)
        table = ups if sql_file.kind == "V" else undos
        other = table.get(sql_file.version)
        if other is not None:
            raise MigrationFileError(
                f"{path}: duplicate version {sql_file.version} (also {other.name}); "
                "give one of them the next free version"
            )
        table[sql_file.version] = sql_file
    for version, undo in sorted(undos.items()):
        if version not in ups:
            raise MigrationFileError(
                f"{undo.path}: undo file without a migration (no V{version}__*.sql); "
                "rename it to match its migration's version or delete it"
            )
    return [Migration(ups[v], undos.get(v)) for v in sorted(ups)]


def slugify(name: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name)
    if not words:
        raise MigrationFileError(
            f"migration name {name!r} has no letters or digits; use words such as add_users"
        )
    return "_".join(w.lower() for w in words)


def create(name: str, migrations_dir: Path | str | None = None, *,
           undo: bool = False) -> list[Path]:
    """Write the next `V<version>__<name>.sql` (and `U...` with `undo`); return the paths."""
    directory = Path(migrations_dir).resolve() if migrations_dir else BUNDLED_DIR
    directory.mkdir(parents=True, exist_ok=True)
    existing = discover(directory)
    version = (existing[-1].version + 1) if existing else 1
    slug = slugify(name)
    up = directory / f"V{version:04d}__{slug}.sql"
    up.write_text(f"-- V{version:04d}: {slug.replace('_', ' ')}\n-- datakit:lock-timeout=5s\n\n")
    paths = [up]
    if undo:
        down = directory / f"U{version:04d}__{slug}.sql"
        down.write_text(f"-- U{version:04d}: undo {slug.replace('_', ' ')}\n"
                        "-- datakit:lock-timeout=5s\n\n")
        paths.append(down)
    return paths
