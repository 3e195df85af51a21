"""Build the Pulumi program of a stack under Pulumi's unit-test mocks and keep what it
registered: every resource's type, name, inputs (wire names, secrets still wrapped),
parent and explicit dependencies, and the stack outputs, resolved and validated as the
schema readers use (`StackOutputs.model_validate`, with no field the schema does not know),
so the writer (infra/outputs.py) and the schema cannot drift apart.

`pulumi.runtime.test` runs the program and waits for every registration and output, so a
snapshot is complete when `build_snapshot` returns; the tests then assert on plain data.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pulumi
import pytest
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pydantic import BaseModel

from datakit.errors import DatakitError
from datakit.nodes.metrics.exporters import agent_jar
from datakit.paths import PROJECT_DIR
from datakit.stack.schema import StackOutputs
from datakit.toolchain.versions import jmx_exporter_version
from datakit.topology import Topology, load

SECRET_SIG = rpc._special_secret_sig
SIG_KEY = rpc._special_sig_key
DOCKER_STACKS = ("dev", "staging", "prod")


@dataclass
class Registered:
    type: str
    name: str
    urn: str
    inputs: dict
    parent: str
    dependencies: list[str]
    provider: str


@dataclass
class Snapshot:
    topo: Topology
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # as exported
    passwords: list[str] = field(default_factory=list)
    stack_outputs: StackOutputs | None = None  # the export, as readers get it

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.type == typ]

    @property
    def containers(self) -> list[Registered]:
        return self.of_type("docker:index/container:Container")

    def container(self, node: str) -> Registered:
        found = [c for c in self.containers if c.name == node]
        assert len(found) == 1, f"{len(found)} containers named {node}"
        return found[0]

    def by_urn(self, urn: str) -> Registered:
        return next(r for r in self.resources if r.urn == urn)


class Mocks(pulumi.runtime.Mocks):
    """Gives each generated password a fresh random value and each image an id."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        if args.typ == "pulumi-python:dynamic:Resource" and "purpose" in args.inputs:
            value = f"pw{pysecrets.token_hex(12)}"
            self.snapshot.passwords.append(value)
            state["value"] = value
        if args.typ == "pulumi-python:dynamic:Resource" and "kind" in args.inputs:
            # A local-substrate node: what its provider's create would report.
            state["state"] = {"pid": 4242, "start_time": 1, "log_path": f"/tmp/{args.name}.log"}
        if args.typ == "docker:index/remoteImage:RemoteImage":
            state["imageId"] = f"sha256-of-{args.inputs['name']}"
            state["repoDigest"] = f"{args.inputs['name']}@sha256:{'0' * 64}"
        if args.typ == "docker:index/image:Image":  # built by the program, kept on its host
            state["imageName"] = args.inputs["imageName"]
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The standard mock monitor, also keeping parent and dependencies of each resource."""

    def __init__(self, mocks: Mocks, snapshot: Snapshot):
        super().__init__(mocks)
        self.snapshot = snapshot

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.snapshot.resources.append(Registered(
                type=request.type, name=request.name, urn=response.urn,
                inputs=rpc.deserialize_properties(request.object), parent=request.parent,
                dependencies=list(request.dependencies), provider=request.provider))
        return response


def unwrap(value: Any) -> Any:
    """A recorded input with secret wrappers removed (for reading values in asserts)."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return unwrap(value["value"])
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def plain_strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string in a recorded input that is not inside a secret wrapper, with its path."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return []
        return [hit for k, v in value.items() for hit in plain_strings(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in plain_strings(v, f"{path}[{i}]")]
    return [(path, value)] if isinstance(value, str) else []


def build_snapshot(topo: Topology) -> Snapshot:
    """Run datakit's program for `topo` under mocks; return everything it registered."""
    from datakit.infra import program

    snapshot = Snapshot(topo)
    mocks = Mocks(snapshot)
    pulumi.runtime.set_mocks(mocks, project="datakit", stack=topo.name, preview=False,
                             monitor=RecordingMonitor(mocks, snapshot))
    exported: dict[str, Any] = {}

    @pulumi.runtime.test
    def run():
        with patch.object(pulumi, "export", lambda key, value: exported.__setitem__(key, value)):
            program.build(topo)
        keys = list(exported)
        return pulumi.Output.all(*[exported[k] for k in keys]).apply(
            lambda values: snapshot.outputs.update(zip(keys, values, strict=True)))

    run()
    snapshot.stack_outputs = StackOutputs.model_validate(snapshot.outputs)
    unknown = unknown_fields(snapshot.stack_outputs)
    assert not unknown, f"exported but not in the outputs schema: {unknown}"
    return snapshot


def unknown_fields(model: BaseModel, path: str = "") -> list[str]:
    """Every exported field the schema does not declare (it allows them, for readers of
    newer outputs), by its path."""
    found = [f"{path}{key}" for key in model.model_extra or {}]
    for name in type(model).model_fields:
        value = getattr(model, name)
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(item, BaseModel):
                where = f"{path}{name}[{i}]." if isinstance(value, list) else f"{path}{name}."
                found += unknown_fields(item, where)
    return found


@pytest.fixture(scope="session", autouse=True)
def jmx_agent_jar(tmp_path_factory):
    """The JMX agent's jar the program uploads into each broker: the cached one if
    tools/bootstrap fetched it, else a stand-in (the mocks never read it; the program
    checks only that it is there)."""
    try:
        yield agent_jar()
        return
    except DatakitError:
        pass
    cache = tmp_path_factory.mktemp("cache")
    jar = cache / f"jmx-exporter-{jmx_exporter_version()}" / "jmx_prometheus_javaagent.jar"
    jar.parent.mkdir()
    jar.write_bytes(b"PK stand-in")
    with patch.dict(os.environ, {"DATAKIT_CACHE": str(cache)}):
        yield jar


@pytest.fixture(scope="session")
def snapshots() -> dict[str, Snapshot]:
    return {stack: build_snapshot(load(stack)) for stack in DOCKER_STACKS}


# Shared by the test files: the stacks each test runs on, and what a container says.
stacks = pytest.mark.parametrize("stack", DOCKER_STACKS)
BUNDLED = Path(__file__).resolve().parents[3] / "migrations"


def env_of(container) -> dict[str, str]:
    return dict(e.split("=", 1) for e in unwrap(container.inputs.get("envs", [])))


def script_of(container) -> str:
    return "\n".join(unwrap(container.inputs["command"]))


# A host's memory large enough for any stack's limits; the bundled dev stack's config; the
# program run from a config as `pulumi up` would run it.
PLENTY = 256 * 1024**3


def dev_config() -> dict:
    return yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text())["config"]


def run_program_from_config(config: dict, snapshot: Snapshot | None = None,
                            stack: str = "dev") -> Snapshot:
    """Run the program as `pulumi up` would, its topology read from the stack's config."""
    from datakit.infra import program

    snapshot = snapshot or Snapshot(topo=None)  # type: ignore[arg-type]
    mocks = Mocks(snapshot)
    pulumi.runtime.set_mocks(mocks, project="datakit", stack=stack, preview=False,
                             monitor=RecordingMonitor(mocks, snapshot))
    pulumi.runtime.set_all_config({
        k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    try:
        pulumi.runtime.test(program.build)()
    finally:
        pulumi.runtime.set_all_config({})
    return snapshot
