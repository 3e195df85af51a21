"""A broken stack config is refused before anything starts, one line per problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from datakit.paths import PROJECT_DIR
from datakit.toolchain import automation


def _up_with(name: str, stack_file: str) -> subprocess.CompletedProcess:
    """`datakit up` of a stack whose file is `stack_file`, removed afterwards."""
    path = PROJECT_DIR / "stacks" / f"Pulumi.{name}.yaml"
    path.write_text(stack_file)
    try:
        return subprocess.run([str(Path(sys.executable).parent / "datakit"), "up", "--stack",
                               name], capture_output=True, text=True, timeout=60)
    finally:
        path.unlink()


def test_broken_stack_config_is_refused_before_anything_starts():
    name = f"broken-{os.getpid()}"
    config = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.local.yaml").read_text())
    config["config"]["datakit:kafka"]["min_insync_replicas"] = 5
    config["config"]["datakit:redis"]["sentinel"]["quorum"] = 7
    proc = _up_with(name, yaml.safe_dump(config))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert f"stack {name}: datakit:kafka.min_insync_replicas" in proc.stderr
    assert f"stack {name}: datakit:redis.sentinel.quorum" in proc.stderr
    state = PROJECT_DIR / ".datakit" / "state" / ".pulumi" / "stacks" / "datakit"
    assert not list(state.glob(f"{name}.json*")), "a stack was created for a broken config"


def test_a_stale_salt_left_in_a_stack_file_does_not_block_a_new_stack():
    # A salt made with another checkout's passphrase, for a stack this state never had.
    name = f"broken-salt-{os.getpid()}"
    path = PROJECT_DIR / "stacks" / f"Pulumi.{name}.yaml"
    text = automation.SALT_LINE.sub("", (PROJECT_DIR / "stacks" / "Pulumi.local.yaml").read_text())
    path.write_text(text + "encryptionsalt: v1:zXzPjnFDhe8=:v1:2HW5G+83RlzXV4Xm:"
                    "uVRgHllyIM3e6oClO39pXiOhKRyDhg==\n")
    try:
        stack = automation.project_stack(name, PROJECT_DIR)
        try:
            assert stack.name == name
            assert "zXzPjnFDhe8" not in path.read_text()
        finally:
            stack.workspace.remove_stack(name)
    finally:
        path.unlink(missing_ok=True)


def test_a_parse_error_prints_the_config_text_as_written():
    # Rich would turn ":KEY:" into an emoji and "[...]" into markup.
    name = f"broken-tab-{os.getpid()}"
    text = (PROJECT_DIR / "stacks" / "Pulumi.local.yaml").read_text()
    proc = _up_with(name, text.replace("  datakit:baselines:", "\tdatakit:baselines:"))
    assert proc.returncode != 0
    assert "not valid YAML" in proc.stderr
    assert "datakit:KEY: VALUE" in proc.stderr and "\N{KEY}" not in proc.stderr
