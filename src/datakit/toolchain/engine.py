"""The Pulumi engine, offline: where it is, and the environment every run gets.

Defaults keep everything inside the project and off the network: a file backend in
`.datakit/state`, a passphrase generated once per checkout into `.datakit/passphrase`
(mode 0600, git-ignored, never printed), no update checks, no plugin downloads. A user with
their own login or backend overrides any of it with the usual PULUMI_* variables.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from datakit.errors import DatakitError
from datakit.paths import PROJECT_DIR, cache_dir, state_dir
from datakit.toolchain.versions import pulumi_version


class EngineMissing(DatakitError):
    pass


def engine_prefix() -> Path:
    return cache_dir() / f"pulumi-{pulumi_version()}"


def venv_bin() -> Path:
    """The virtualenv's bin: the bootstrap links the engine here, beside the console scripts
    `pulumi-language-python` and `pulumi-resource-pulumi-python`, so the engine finds its
    plugins next to itself (its bundled-plugin rule) and runs them with this venv."""
    return Path(sys.executable).parent


def engine_binary() -> Path:
    binary = venv_bin() / "pulumi"
    if not binary.exists():
        raise EngineMissing(
            f"the Pulumi engine {pulumi_version()} is not installed ({binary} missing): "
            "run tools/bootstrap")
    return binary


def passphrase_file() -> Path:
    """The checkout's passphrase file, created on first use with mode 0600."""
    path = state_dir() / "passphrase"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path


def pulumi_home() -> Path:
    """Where the engine keeps its plugins: the user's PULUMI_HOME, else the checkout's."""
    return Path(os.environ.get("PULUMI_HOME") or state_dir() / "pulumi-home")


def environment() -> dict[str, str]:
    """PULUMI_* settings and PATH for the engine and its plugins; user settings win."""
    env: dict[str, str] = {}
    given = os.environ
    if "PULUMI_BACKEND_URL" not in given and "PULUMI_ACCESS_TOKEN" not in given:
        backend = state_dir() / "state"
        backend.mkdir(parents=True, exist_ok=True)
        env["PULUMI_BACKEND_URL"] = f"file://{backend}"
    if "PULUMI_CONFIG_PASSPHRASE" not in given and "PULUMI_CONFIG_PASSPHRASE_FILE" not in given:
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(passphrase_file())
    env["PULUMI_HOME"] = str(pulumi_home())
    env["PULUMI_SKIP_UPDATE_CHECK"] = given.get("PULUMI_SKIP_UPDATE_CHECK", "true")
    env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = given.get(
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    env["PATH"] = os.pathsep.join(p for p in (str(venv_bin()), given.get("PATH", "")) if p)
    env["PULUMI_PYTHON_CMD"] = sys.executable
    # Providers fork daemons from a threaded gRPC server: no fork handlers, no chatter.
    env.setdefault("GRPC_ENABLE_FORK_SUPPORT", given.get("GRPC_ENABLE_FORK_SUPPORT", "false"))
    env.setdefault("GRPC_VERBOSITY", given.get("GRPC_VERBOSITY", "ERROR"))
    return env


def apply_environment() -> dict[str, str]:
    """Put `environment()` into this process (the Automation API passes it to the CLI)."""
    env = environment()
    os.environ.update(env)
    return env


def project_dir() -> Path:
    return PROJECT_DIR
