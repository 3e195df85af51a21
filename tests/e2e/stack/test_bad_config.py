"""A broken stack config is refused before anything starts, one line per problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from datakit.paths import PROJECT_DIR


def test_broken_stack_config_is_refused_before_anything_starts():
    name = f"broken-{os.getpid()}"
    path = PROJECT_DIR / "stacks" / f"Pulumi.{name}.yaml"
    config = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.local.yaml").read_text())
    config["config"]["datakit:kafka"]["min_insync_replicas"] = 5
    config["config"]["datakit:redis"]["sentinel"]["quorum"] = 7
    path.write_text(yaml.safe_dump(config))
    try:
        proc = subprocess.run([str(Path(sys.executable).parent / "datakit"), "up", "--stack",
                               name], capture_output=True, text=True, timeout=60)
    finally:
        path.unlink()
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert f"stack {name}: datakit:kafka.min_insync_replicas" in proc.stderr
    assert f"stack {name}: datakit:redis.sentinel.quorum" in proc.stderr
    state = PROJECT_DIR / ".datakit" / "state" / ".pulumi" / "stacks" / "datakit"
    assert not list(state.glob(f"{name}.json*")), "a stack was created for a broken config"
