"""Fixtures for node tests: real daemons on 127.0.0.1:63000-63499, cleaned up on failure too.

Data dirs are made with tempfile.mkdtemp under /tmp and opened to 0755: pytest's tmp_path
lives under a 0700 dir that the `postgres` and `redis` users cannot enter.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from datakit.nodes import process

PORT_RANGE = range(63000, 63500)


class PortPool:
    """Hands out ports of PORT_RANGE that nothing listens on, never the same one twice."""

    def __init__(self) -> None:
        self._next = iter(PORT_RANGE)

    def __call__(self) -> int:
        for port in self._next:
            if process.port_free(port):
                return port
        raise RuntimeError("no free port left in 63000-63499")


@pytest.fixture(scope="session")
def free_port() -> PortPool:
    return PortPool()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="datakit-nodes-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def password() -> Callable[[str], str]:
    """A fresh random password per role name, stable within the session."""
    made: dict[str, str] = {}

    def make(role: str) -> str:
        return made.setdefault(role, f"{role}-{secrets.token_urlsafe(12)}")

    return make


class Teardown:
    """Undo steps run last-in first-out; each step's failure is kept, not fatal."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []

    def add(self, what: str, step: Callable[[], object]) -> None:
        self._steps.append((what, step))

    def run(self) -> list[str]:
        errors = []
        while self._steps:
            what, step = self._steps.pop()
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - keep tearing down
                errors.append(f"{what}: {exc}")
        return errors


@pytest.fixture(scope="module")
def teardown() -> Iterator[Teardown]:
    td = Teardown()
    yield td
    errors = td.run()
    assert not errors, errors


@pytest.fixture
def all_cmdlines() -> Callable[[], str]:
    """Every process's argv on the machine, for checking that no password leaks there."""
    return _all_cmdlines


def _all_cmdlines() -> str:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                out.append(Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
                           .decode(errors="replace"))
            except OSError:
                continue
    return "\n".join(out)
