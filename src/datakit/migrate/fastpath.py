"""The no-op `apply` without loading the full driver: one libpq query through ctypes.

Importing psycopg costs more than a whole no-op run should (about 0.15 s here), and CI
calls `apply` on every deploy. This module answers one question, "is there nothing to do?",
with the libpq that psycopg itself ships (or the system's). Any doubt (no history, drift,
a partial run, a connection problem, no libpq) answers "don't know", and the caller falls
back to the full runner, which does the work and words the errors.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
from pathlib import Path

from datakit.migrate.files import Migration, discover

_QUERY = b"""
SELECT version::text, checksum::text FROM ms_migrations.schema_versions
UNION ALL
SELECT 'partial', count(*)::text FROM ms_migrations.migration_log l
 WHERE l.operation = 'MIGRATE' AND l.status IN ('RUNNING', 'FAILED')
   AND (l.context->>'no_transaction')::boolean AND NOT (l.context ? 'resolved')
   AND NOT EXISTS (SELECT 1 FROM ms_migrations.schema_versions v WHERE v.version = l.version)
"""


def _load_libpq():
    patterns = [os.path.join(p, "psycopg_binary.libs", "libpq*.so*") for p in sys.path if p]
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            try:
                return ctypes.CDLL(path)
            except OSError:
                continue
    try:
        return ctypes.CDLL("libpq.so.5")
    except OSError:
        return None


def _bind(lib) -> None:
    vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    lib.PQconnectdbParams.argtypes = [ctypes.POINTER(cp), ctypes.POINTER(cp), i]
    lib.PQconnectdbParams.restype = vp
    lib.PQstatus.argtypes, lib.PQstatus.restype = [vp], i
    lib.PQexec.argtypes, lib.PQexec.restype = [vp, cp], vp
    lib.PQresultStatus.argtypes, lib.PQresultStatus.restype = [vp], i
    lib.PQntuples.argtypes, lib.PQntuples.restype = [vp], i
    lib.PQgetvalue.argtypes, lib.PQgetvalue.restype = [vp, i, i], cp
    lib.PQclear.argtypes, lib.PQclear.restype = [vp], None
    lib.PQfinish.argtypes, lib.PQfinish.restype = [vp], None


def _history(dsn: str, app_name: str) -> list[tuple[str, str]] | None:
    lib = _load_libpq()
    if lib is None:
        return None
    _bind(lib)
    keys = (ctypes.c_char_p * 4)(b"dbname", b"application_name", b"connect_timeout", None)
    values = (ctypes.c_char_p * 4)(dsn.encode(), app_name.encode(), b"10", None)
    conn = lib.PQconnectdbParams(keys, values, 1)
    try:
        if not conn or lib.PQstatus(conn) != 0:  # CONNECTION_OK
            return None
        res = lib.PQexec(conn, _QUERY)
        try:
            if lib.PQresultStatus(res) != 2:  # PGRES_TUPLES_OK; no history table is an error
                return None
            return [(lib.PQgetvalue(res, r, 0).decode(), lib.PQgetvalue(res, r, 1).decode())
                    for r in range(lib.PQntuples(res))]
        finally:
            lib.PQclear(res)
    finally:
        if conn:
            lib.PQfinish(conn)


def nothing_to_apply(dsn: str, migrations: list[Migration], *,
                     target: int | None = None) -> int | None:
    """The current version when apply has certainly nothing to do, else None."""
    from datakit.migrate.connection import APP_NAME

    rows = _history(dsn, APP_NAME)
    if not rows:
        return None
    applied = {}
    for version, checksum in rows:
        if version == "partial":
            if checksum != "0":
                return None
        else:
            applied[int(version)] = checksum.strip()
    files = {m.version: m.checksum for m in migrations}
    if any(files.get(v) != c for v, c in applied.items()):
        return None  # drift or a missing file: let the full runner say so
    if any(v not in applied for v in files if target is None or v <= target):
        return None
    return max(applied) if applied else None


def step_line(step) -> str:
    """One progress line for an applied or rolled-back migration."""
    extra = f", {step.wal_bytes / 1024:.1f} KiB WAL" if step.wal_bytes is not None else ""
    if step.replicas is not None:
        r = step.replicas
        extra += (f", {r.replicas} replica(s) caught up in {r.waited_s * 1000:.0f} ms"
                  f" (max lag {r.max_lag_bytes} B)")
    verb = "applied" if step.operation == "MIGRATE" else step.operation.lower()
    return f"{verb} {step.file} in {step.execution_ms} ms{extra}"


def apply_and_report(dsn: str, migrations_dir: str | Path | None = None, *,
                     target: int | None = None, dry_run: bool = False,
                     allow_out_of_order: bool = False, wait_replicas: bool = False,
                     replica_timeout: float = 60.0, lock_wait: float = 60.0,
                     as_json: bool = False) -> None:
    """`datakit migrate apply`: the no-op check first, then the runner; prints as it goes."""
    import json

    def say(text: str) -> None:
        print(text, flush=True)

    migrations = discover(migrations_dir)  # bad files raise here, as in the full runner
    if not dry_run and not wait_replicas:
        current = nothing_to_apply(dsn, migrations, target=target)
        if current is not None:
            if as_json:
                say(json.dumps({"operation": "apply", "steps": [], "planned": [],
                                "dry_run": False, "current_version": current, "notes": []}))
            else:
                say(f"nothing to apply; database at version {current}")
            return
    from datakit.migrate.applier import apply

    result = apply(dsn, migrations_dir, migrations=migrations, target=target, dry_run=dry_run,
                   allow_out_of_order=allow_out_of_order, lock_wait=lock_wait,
                   wait_replicas=wait_replicas, replica_timeout=replica_timeout,
                   progress=None if as_json else lambda st: say(step_line(st)))
    if as_json:
        say(json.dumps(result.to_dict(), default=str))
    elif dry_run:
        say("\n".join(f"would apply {n}" for n in result.planned) or "nothing to apply")
    elif not result.steps:
        say(f"nothing to apply; database at version {result.current_version}")
    else:
        say(f"applied {len(result.steps)} migration(s); database at version "
            f"{result.current_version}")


def main_apply(argv: list[str]) -> int | None:
    """Run `apply ...` without Typer; None means "not for me, run the full CLI".

    Typer's start-up (it loads pydantic) costs more than a whole no-op run, and CI calls
    apply on every deploy; `--help` and anything unusual go to the full CLI.
    """
    if not argv or argv[0] != "apply":
        return None
    import argparse

    from datakit.errors import DatakitError

    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--dsn")
    parser.add_argument("--stack")
    parser.add_argument("--migrations-dir")
    parser.add_argument("--target", type=int)
    parser.add_argument("--lock-wait", type=float, default=60.0)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--allow-out-of-order", action="store_true")
    parser.add_argument("--wait-replicas", action="store_true")
    parser.add_argument("--replica-timeout", type=float, default=60.0)
    try:
        args, unknown = parser.parse_known_args(argv[1:])
    except (argparse.ArgumentError, SystemExit):
        return None
    if unknown:
        return None
    try:
        from datakit.migrate.connection import dsn_for

        apply_and_report(dsn_for(args.dsn, args.stack), args.migrations_dir, target=args.target,
                         dry_run=args.dry_run, allow_out_of_order=args.allow_out_of_order,
                         wait_replicas=args.wait_replicas,
                         replica_timeout=args.replica_timeout, lock_wait=args.lock_wait,
                         as_json=args.json)
    except DatakitError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    return 0
