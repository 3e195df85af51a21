"""The offline engine path works: up and destroy of a Python dynamic resource, twice over.

Once with the project directory as the program (Pulumi.yaml + __main__.py: the engine starts
the language host) and once as an inline Automation API program.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pulumi import automation as auto

from datakit.toolchain import automation, engine
from datakit.toolchain.probe_resource import ProbeFile

PROJECT = Path(__file__).parent / "engine_project"


@pytest.fixture
def isolated_backend(tmp_path, monkeypatch):
    """A throwaway file backend and passphrase, so the tests never touch real stacks."""
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path / 'state'}")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-only")
    (tmp_path / "state").mkdir()
    return tmp_path


def _up_and_destroy(stack, target: Path) -> None:
    try:
        result = stack.up(on_output=lambda _: None)
        assert target.read_text() == "hello from the engine"
        assert result.outputs["size"].value == len("hello from the engine")
        assert stack.preview(on_output=lambda _: None).change_summary.get("same") == 2
        stack.destroy(on_output=lambda _: None)
        assert not target.exists()
    finally:
        stack.workspace.remove_stack(stack.name, force=True)


@pytest.mark.engine
def test_project_directory_program_up_and_destroy(isolated_backend):
    target = isolated_backend / "probe.txt"
    stack = automation.project_stack("probe-project", PROJECT)
    stack.set_config("path", auto.ConfigValue(str(target)))
    stack.set_config("content", auto.ConfigValue("hello from the engine"))
    _up_and_destroy(stack, target)


@pytest.mark.engine
def test_inline_program_up_and_destroy(isolated_backend):
    target = isolated_backend / "inline.txt"

    def program():
        import pulumi

        probe = ProbeFile("probe", path=str(target), content="hello from the engine")
        pulumi.export("size", probe.size)

    stack = automation.inline_stack("probe-inline", "datakit-engine-probe", program,
                                    isolated_backend)
    _up_and_destroy(stack, target)


def test_engine_version_equals_sdk_version():
    from importlib import metadata

    out = os.popen(f"{engine.engine_binary()} version").read().strip()
    assert out == f"v{metadata.version('pulumi')}"


def test_passphrase_file_is_private(tmp_path, monkeypatch):
    monkeypatch.setattr("datakit.toolchain.engine.state_dir", lambda: tmp_path)
    path = engine.passphrase_file()
    assert path.stat().st_mode & 0o777 == 0o600
    assert engine.passphrase_file().read_text() == path.read_text()  # generated once
