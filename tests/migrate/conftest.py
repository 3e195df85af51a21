"""A real PostgreSQL 15 for the migration tests: one server per session, one database per test."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from tests.support.scratch_server import ScratchServer

_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server():
    server = ScratchServer(range(61000, 61100), fsync=False)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def dsn(pg_server) -> str:
    """A fresh, empty database for this test."""
    return pg_server.create_database(f"t{os.getpid()}_{next(_names)}")


@pytest.fixture
def mdir(tmp_path) -> Path:
    path = tmp_path / "migrations"
    path.mkdir()
    return path

