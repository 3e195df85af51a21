"""Patroni and etcd are pinned once (tools/versions.env), and what is installed is that."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from datakit.paths import PROJECT_DIR
from datakit.toolchain.doctor import checks
from datakit.toolchain.versions import etcd_version, patroni_version

VENV_BIN = Path(sys.executable).parent


def test_patroni_pin_in_pyproject_equals_versions_env():
    pyproject = (PROJECT_DIR / "pyproject.toml").read_text()
    assert re.search(r'"patroni\[etcd3,psycopg3\]==([\d.]+)"', pyproject).group(1) == \
        patroni_version()


def test_installed_patroni_is_the_pinned_one():
    assert metadata.version("patroni") == patroni_version()


def test_venv_etcd_is_the_pinned_build():
    out = subprocess.run([str(VENV_BIN / "etcd"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert f"etcd Version: {etcd_version()}" in out.splitlines()


def test_doctor_reports_etcd_and_patroni():
    found = {c.name: c for c in checks()}
    assert found["etcd"].ok and found["etcd"].version == etcd_version()
    assert found["etcdctl"].ok
    assert found["patroni"].ok and found["patroni"].version == patroni_version()
    assert "system user etcd" in found
