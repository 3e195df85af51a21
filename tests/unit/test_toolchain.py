"""The toolchain's pins agree, and a missing engine is one clear line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from datakit.errors import DatakitError
from datakit.paths import PROJECT_DIR
from datakit.toolchain import engine
from datakit.toolchain.versions import pulumi_version


def test_sdk_pin_in_pyproject_equals_engine_pin():
    pyproject = (PROJECT_DIR / "pyproject.toml").read_text()
    assert re.search(r'"pulumi==([\d.]+)"', pyproject).group(1) == pulumi_version()


def test_missing_engine_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(engine, "venv_bin", lambda: tmp_path)
    with pytest.raises(DatakitError, match="run tools/bootstrap"):
        engine.engine_binary()


def test_user_backend_and_passphrase_win(monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://somewhere")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "theirs")
    env = engine.environment()
    assert "PULUMI_BACKEND_URL" not in env and "PULUMI_CONFIG_PASSPHRASE_FILE" not in env
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"


def test_cli_error_is_one_line_without_traceback(tmp_path):
    """An expected failure from any command prints one line and exits non-zero."""
    script = (
        "import datakit.toolchain.engine as e, pathlib;"
        f"e.venv_bin = lambda: pathlib.Path({str(tmp_path)!r});"
        "from datakit.cli import app, main;"
        "app.command('probe-engine')(lambda: e.engine_binary());"
        "import sys; sys.argv = ['datakit', 'probe-engine']; main()"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "run tools/bootstrap" in proc.stderr


def test_doctor_passes_after_bootstrap():
    proc = subprocess.run([str(Path(sys.executable).parent / "datakit"), "doctor", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
