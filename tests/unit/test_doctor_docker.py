"""`doctor` reports the Docker engine and the pulumi-docker plugin when a docker stack is
in stacks/ (dev, staging and prod are), each with its fix; they fail doctor only when
--stack names a docker stack. No engine runs here: DOCKER_HOST points at a socket that
does not exist, which is what a machine without Docker looks like to the SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

DATAKIT = str(Path(sys.executable).parent / "datakit")


def _doctor(tmp_path: Path, *args: str) -> tuple[int, dict]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
           "PULUMI_HOME": str(tmp_path / "pulumi-home")}
    run = subprocess.run([DATAKIT, "doctor", "--json", *args], capture_output=True,
                         text=True, env=env, timeout=120)
    return run.returncode, {c["name"]: c for c in json.loads(run.stdout)}


@pytest.fixture(scope="module")
def plugin_version() -> str:
    return metadata.version("pulumi_docker")


def test_for_the_local_stack_docker_is_reported_but_not_required(tmp_path, plugin_version):
    code, found = _doctor(tmp_path)
    engine, plugin = found["Docker engine"], found["pulumi-resource-docker"]
    assert not engine["ok"] and not engine["required"]
    assert "no-docker.sock" in engine["source"] and "dev, prod, staging" in engine["source"]
    assert "install Docker Engine" in engine["fix"]
    assert not plugin["ok"] and f"plugin install resource docker v{plugin_version}" in \
        plugin["fix"]
    assert code == 0, [c for c in found.values() if c["required"] and not c["ok"]]


def test_for_a_docker_stack_they_fail_doctor(tmp_path):
    code, found = _doctor(tmp_path, "--stack", "dev")
    assert found["Docker engine"]["required"] and found["pulumi-resource-docker"]["required"]
    assert code == 1


def test_the_plugin_is_found_where_the_engine_looks(tmp_path, plugin_version):
    folder = tmp_path / "pulumi-home" / "plugins" / f"resource-docker-v{plugin_version}"
    folder.mkdir(parents=True)
    (folder / "pulumi-resource-docker").write_text("")
    _, found = _doctor(tmp_path)
    plugin = found["pulumi-resource-docker"]
    assert plugin["ok"] and plugin["version"] == plugin_version and plugin["fix"] == ""
