"""`pulumi-language-python`: the engine's Python language host, served from the SDK's own stubs.

Upstream's host is a Go module the Go module proxy here does not serve at any version, so
this one takes its place for the engine path a project directory needs (`pulumi up` with
Pulumi.yaml + __main__.py). It is deliberately small: it runs the program through the
SDK's exec shim (`pulumi-language-python-exec`, built beside the engine from the SDK module
of the same version), exactly as upstream does, and reports no required plugins, so the
engine never tries a download. Packaging commands (`pulumi new`, codegen) are not served.

Protocol: started with the engine's address as the last argument, it prints its port on
the first line of stdout and then serves the LanguageRuntime gRPC service.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

# Exit code by which the shim says it has already shown the user an actionable error.
SHIM_REPORTED_ERROR = 32


def _python(info: language_pb2.ProgramInfo) -> str:
    """The interpreter for the program: Pulumi.yaml's virtualenv option, else this one."""
    venv = info.options["virtualenv"] if "virtualenv" in info.options else None  # noqa: SIM401 (a protobuf Struct)
    if venv:
        root = Path(info.root_directory or ".")
        candidate = (root / venv / "bin" / "python").absolute()
        if candidate.exists():
            return str(candidate)
    return os.environ.get("PULUMI_PYTHON_CMD") or sys.executable


def _shim() -> str:
    """The SDK's exec shim: beside the engine binary, or on PATH."""
    here = shutil.which("pulumi")
    candidates = [Path(os.path.realpath(here)).parent] if here else []
    for folder in candidates:
        shim = folder / "pulumi-language-python-exec"
        if shim.exists():
            return str(shim)
    found = shutil.which("pulumi-language-python-exec")
    if not found:
        raise FileNotFoundError(
            "pulumi-language-python-exec not found beside pulumi or on PATH: run tools/bootstrap")
    return found


def _program_args(req: language_pb2.RunRequest) -> tuple[list[str], str]:
    info = req.info
    program_dir = info.program_directory or req.pwd
    entry = info.entry_point or req.program or "."
    program = str(Path(program_dir) / entry)
    flags = {
        "monitor": req.monitor_address,
        "engine": _engine_address(),
        "project": req.project,
        "stack": req.stack,
        "pwd": req.pwd or program_dir,
        "dry_run": "true" if req.dryRun else "false",
        "parallel": str(req.parallel),
        "organization": req.organization,
        "root_directory": info.root_directory,
    }
    argv = [f"--{k}={v}" for k, v in flags.items() if v]
    return [*argv, program, *req.args], program_dir


_state = {"engine": ""}


def _engine_address() -> str:
    return _state["engine"]


class LanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    """The calls the engine makes for `preview`, `up`, `refresh` and `destroy`."""

    def __init__(self) -> None:
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def Handshake(self, request, context):
        _state["engine"] = request.engine_address or _state["engine"]
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):
        from pulumi._version import _VERSION

        return plugin_pb2.PluginInfo(version=_VERSION)

    def GetRequiredPackages(self, request, context):
        # Plugins are never downloaded here; dynamic providers are bundled with the engine.
        return language_pb2.GetRequiredPackagesResponse()

    def GetRequiredPlugins(self, request, context):
        return language_pb2.GetRequiredPluginsResponse()

    def InstallDependencies(self, request, context):
        # The bootstrap installs the virtualenv; there is nothing to do and nothing to stream.
        return iter(())

    def Run(self, request, context):
        try:
            shim = _shim()
        except FileNotFoundError as exc:
            return language_pb2.RunResponse(error=str(exc))
        args, cwd = _program_args(request)
        env = dict(os.environ)
        env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
        env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
        proc = subprocess.Popen([_python(request.info), "-u", shim, *args], cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL)
        with self._lock:
            self._running.add(proc)
        code = proc.wait()
        with self._lock:
            self._running.discard(proc)
        if code == 0:
            return language_pb2.RunResponse()
        if code == SHIM_REPORTED_ERROR:
            return language_pb2.RunResponse(bail=True)
        return language_pb2.RunResponse(error=f"Python program exited with code {code}")

    def Cancel(self, request, context):
        with self._lock:
            for proc in self._running:
                proc.terminate()
        from google.protobuf import empty_pb2

        return empty_pb2.Empty()


def main() -> None:
    if len(sys.argv) > 1:
        _state["engine"] = sys.argv[-1]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageHost(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    # The engine ends its plugins with SIGINT: a clean exit, not a traceback in the output.
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=1)


if __name__ == "__main__":
    main()
