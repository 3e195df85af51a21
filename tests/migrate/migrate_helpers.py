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


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `python -m datakit.migrate ARGS` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "datakit.migrate", *args], cwd=PROJECT,
                          capture_output=True, text=True, timeout=timeout)
