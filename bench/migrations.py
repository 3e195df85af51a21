"""Benchmark: 200 generated migrations applied by datakit, yoyo, dbmate, Alembic and the floor.

Each migration creates a table, an index and 100 rows. Every tool runs as its own CLI in a
subprocess on a fresh database of one scratch PostgreSQL 15 (fsync on), then runs again with
everything applied (the no-op). datakit runs as users run it, `datakit migrate apply`, with
its sources byte-compiled first as tools/bootstrap leaves them (where PYTHONDONTWRITEBYTECODE
is set, nothing would cache them, and every run would pay for compiling them). Three
repetitions by default (more with --repeat, which the disk's noise here calls for); the
medians print as

    NAME apply_s=X noop_s=Y

and, on stderr, each tool's median ratio to the floor measured in the same repetition.

The floor is `psql -1 -f` of all files concatenated (one transaction, no bookkeeping); its
no-op is `psql -c 'SELECT 1'`, the cost of starting a client and connecting.
Run: .venv/bin/python bench/migrations.py [--count 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datakit.paths import PROJECT_DIR

# Run as `python bench/migrations.py`, only bench/ is on the path: add the repository root for
# the test-only helpers in tests/support.
sys.path.insert(0, str(PROJECT_DIR))
from tests.support.scratch_server import ScratchServer  # noqa: E402

BIN = Path(sys.executable).parent
PSQL = "/usr/lib/postgresql/15/bin/psql"


def statements(i: int) -> list[str]:
    t = f"bench_t{i:04d}"
    return [
        f"CREATE TABLE {t} (id integer PRIMARY KEY, name text NOT NULL, "
        f"created_at timestamptz NOT NULL DEFAULT now())",
        f"CREATE INDEX {t}_name_idx ON {t} (name)",
        f"INSERT INTO {t} (id, name) SELECT g, 'row ' || g FROM generate_series(1, 100) g",
    ]


def sql(i: int) -> str:
    return "".join(s + ";\n" for s in statements(i))


def write_datakit(root: Path, n: int) -> Path:
    d = root / "datakit"
    d.mkdir()
    for i in range(1, n + 1):
        (d / f"V{i:04d}__bench_table_{i}.sql").write_text(sql(i))
    return d


def write_yoyo(root: Path, n: int) -> Path:
    d = root / "yoyo"
    d.mkdir()
    for i in range(1, n + 1):
        (d / f"{i:04d}_bench_table_{i}.sql").write_text(sql(i))
    return d


def write_dbmate(root: Path, n: int) -> Path:
    d = root / "dbmate"
    d.mkdir()
    for i in range(1, n + 1):
        (d / f"{20240101000000 + i}_bench_table_{i}.sql").write_text(
            f"-- migrate:up\n{sql(i)}\n-- migrate:down\nDROP TABLE bench_t{i:04d};\n")
    return d


def write_alembic(root: Path, n: int, url: str) -> Path:
    d = root / "alembic"
    versions = d / "versions"
    versions.mkdir(parents=True)
    (d / "alembic.ini").write_text(
        f"[alembic]\nscript_location = {d}\nsqlalchemy.url = {url}\n"
        "[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
        "[logger_root]\nlevel = WARN\nhandlers = console\n"
        "[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nlevel = NOTSET\n"
        "formatter = generic\n[formatter_generic]\nformat = %%(message)s\n")
    (d / "script.py.mako").write_text("")
    (d / "env.py").write_text(
        "from alembic import context\n"
        "from sqlalchemy import create_engine\n"
        "url = context.config.get_main_option('sqlalchemy.url')\n"
        "with create_engine(url).connect() as connection:\n"
        "    context.configure(connection=connection, transaction_per_migration=True)\n"
        "    with context.begin_transaction():\n"
        "        context.run_migrations()\n")
    for i in range(1, n + 1):
        down = f"'r{i - 1:04d}'" if i > 1 else "None"
        body = "".join(f"    op.execute({s!r})\n" for s in statements(i))
        (versions / f"r{i:04d}_bench.py").write_text(
            f"from alembic import op\nrevision = 'r{i:04d}'\ndown_revision = {down}\n"
            f"branch_labels = None\ndepends_on = None\n\ndef upgrade():\n{body}\n"
            f"def downgrade():\n    op.execute('DROP TABLE bench_t{i:04d}')\n")
    return d


def run(argv: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.strip()[-800:]}")
    return elapsed


def print_ratios(results: dict[str, tuple[list[float], list[float]]]) -> None:
    """Each tool's apply time over the floor's in the same rep: the disk's swings between
    reps (up to 2x here) cancel out of these better than out of the medians above."""
    if "floor" not in results:
        return
    floor = results["floor"][0]
    for tool, (applies, _) in results.items():
        if tool != "floor":
            ratios = [a / f for a, f in zip(applies, floor, strict=True)]
            print(f"# {tool}/floor per rep: median {statistics.median(ratios):.2f} "
                  f"(from {min(ratios):.2f} to {max(ratios):.2f})", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tools", default="datakit,yoyo,dbmate,alembic,floor")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(PROJECT_DIR / "src")],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"# load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
          file=sys.stderr, flush=True)
    root = Path(tempfile.mkdtemp(prefix="datakit-bench-", dir="/tmp"))
    try:
        with ScratchServer(range(61000, 61100), fsync=True) as pg:
            dirs = {"datakit": write_datakit(root, args.count),
                    "yoyo": write_yoyo(root, args.count),
                    "dbmate": write_dbmate(root, args.count)}
            floor_sql = root / "floor.sql"
            floor_sql.write_text("".join(sql(i) for i in range(1, args.count + 1)))
            pgenv = {"PGPASSWORD": pg.password}

            def commands(db: str) -> dict[str, list[str]]:
                alembic = write_alembic(root / db, args.count, pg.url(db, "postgresql+psycopg"))
                return {
                    "datakit": [str(BIN / "datakit"), "migrate", "apply", "--dsn", pg.dsn(db),
                                "--migrations-dir", str(dirs["datakit"])],
                    "yoyo": [str(BIN / "yoyo"), "apply", "--batch", "--no-config-file",
                             "--database", pg.url(db, "postgresql+psycopg"), str(dirs["yoyo"])],
                    "dbmate": [str(BIN / "dbmate"), "--url", pg.url(db) + "?sslmode=disable",
                               "--migrations-dir", str(dirs["dbmate"]), "--no-dump-schema",
                               "up"],
                    "alembic": [str(BIN / "alembic"), "-c", str(alembic / "alembic.ini"),
                                "upgrade", "head"],
                    "floor": [PSQL, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                              "-p", str(pg.port), "-U", "postgres", "-d", db, "-f",
                              str(floor_sql)],
                }

            results: dict[str, tuple[list[float], list[float]]] = {}
            tools = args.tools.split(",")
            for rep in range(args.repeat):
                # Each rep starts with the next tool, so no tool always runs first or last.
                for tool in tools[rep % len(tools):] + tools[:rep % len(tools)]:
                    db = f"bench_{tool}_{rep}"
                    pg.create_database(db)
                    argv = commands(db)[tool]
                    apply_s = run(argv, pgenv)
                    if tool == "floor":
                        argv = [*argv[:-2], "-c", "SELECT 1"]
                    noop_s = run(argv, pgenv)
                    results.setdefault(tool, ([], []))
                    results[tool][0].append(apply_s)
                    results[tool][1].append(noop_s)
                    print(f"# rep {rep + 1} {tool}: apply {apply_s:.3f}s noop {noop_s:.3f}s",
                          file=sys.stderr, flush=True)
            print(f"# load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
                  "CPUs (figures are only comparable on a quiet machine)", file=sys.stderr)
            for tool in tools:
                applies, noops = results[tool]
                print(f"{tool} apply_s={statistics.median(applies):.3f} "
                      f"noop_s={statistics.median(noops):.3f}")
            print_ratios(results)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
