"""The stack config's reference is generated from the model and kept current: every field
is described, docs/config.md and the schema file are what the generator writes now, and
the bundled stack files use only keys the schema knows."""

from __future__ import annotations

import json
import typing

import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from datakit.cli import app
from datakit.paths import PROJECT_DIR
from datakit.topology import reference
from datakit.topology.model import Topology


def _fields(model: type[BaseModel], prefix: str = "", seen=None):
    """(key path, field) of every field of `model` and of the models it holds."""
    seen = seen if seen is not None else {model}
    for name, field in model.model_fields.items():
        yield prefix + name, field
        for arg in [field.annotation, *typing.get_args(field.annotation)]:
            for inner in [arg, *typing.get_args(arg)]:
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in seen:
                    seen.add(inner)
                    yield from _fields(inner, f"{prefix}{name}.", seen)


def test_every_field_of_the_stack_config_is_described():
    fields = dict(_fields(Topology))
    assert len(fields) > 100
    assert [path for path, f in fields.items() if not (f.description or "").strip()] == []


def test_the_generated_reference_is_current():
    # Fails after a model change until `python -m datakit.topology.reference` is run.
    assert reference.main(["--check"]) == 0, "run: python -m datakit.topology.reference"
    assert reference.DOCS_FILE.read_text() == reference.config_markdown()


def test_the_reference_names_every_key_path():
    text = reference.DOCS_FILE.read_text()
    for key in ("postgres.settings.shared_buffers", "kafka.topics[].partitions",
                "baselines.queries.<name>.p95_ms", "redis.sentinel.down_after_ms"):
        assert f"| `{key}` |" in text, key


def test_datakit_schema_prints_the_schema_file():
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads(reference.SCHEMA_FILE.read_text())


def test_the_bundled_stacks_use_known_keys_and_name_the_schema():
    config_keys = reference.stack_file_schema()["properties"]["config"]["properties"]
    # the shipped ones: a test's derived stack (git-ignored) may lie beside them meanwhile
    for path in [PROJECT_DIR / "stacks" / f"Pulumi.{name}.yaml"
                 for name in ("local", "dev", "staging", "prod")]:
        text = path.read_text()
        assert text.splitlines()[0] == reference.MODELINE, path.name
        keys = {k for k in yaml.safe_load(text)["config"] if k.startswith("datakit:")}
        assert keys <= set(config_keys), f"{path.name}: {keys - set(config_keys)}"
