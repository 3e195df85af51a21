"""Helpers shared by the migration tests (files, queries, the CLI in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg

PROJECT = Path(__file__).resolve().parents[2]


def write(directory: Path, name: str, sql: str) -> Path:
    path = directory / name
    path.write_text(sql)
    return path


def query(dsn: str, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


# The console script, as users run it (the venv's bin, beside its python).
DATAKIT = str(Path(sys.executable).parent / "datakit")


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `datakit migrate ARGS` in a subprocess."""
    return subprocess.run([DATAKIT, "migrate", *args], cwd=PROJECT, capture_output=True,
                          text=True, timeout=timeout)
