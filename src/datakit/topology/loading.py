"""Reading a topology: from a stack file, from a config dict, or inside the Pulumi program.

All three end in `from_config`, which reports every problem at once as a `TopologyError`.
Keys live under the project's namespace (`datakit:postgres`); other namespaces and the
engine's own lines (`encryptionsalt`, `secretsprovider`) are ignored.
"""

from __future__ import annotations

import copy
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from datakit.topology.checks import topology_problems
from datakit.topology.model import Topology
from datakit.topology.problems import Problem, TopologyError, key_path

NAMESPACE = "datakit"


def load(
    stack: str, project_dir: Path | str | None = None, *, memory_total: int | None = None
) -> Topology:
    """The validated topology of `stack`, read from <stackConfigDir>/Pulumi.<stack>.yaml."""
    from datakit.paths import PROJECT_DIR

    project = Path(project_dir) if project_dir is not None else PROJECT_DIR
    path = stack_file(stack, project)
    if not path.is_file():
        known = ", ".join(sorted(stack_names(project))) or "none"
        raise TopologyError([f"stack {stack}: {path}: no such stack file; allowed: {known}"])
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise TopologyError(
            [
                f"stack {stack}: {path}: not valid YAML{at}; "
                "allowed: a Pulumi stack file (config: datakit:KEY: VALUE)"
            ]
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config", {}), dict):
        raise TopologyError(
            [
                f"stack {stack}: {path}: `config` is not a mapping; "
                "allowed: a Pulumi stack file (config: datakit:KEY: VALUE)"
            ]
        )
    return from_config(doc.get("config") or {}, stack=stack, memory_total=memory_total)


def stack_dir(project: Path) -> Path:
    """The project's stackConfigDir (Pulumi.yaml), `stacks` when unset."""
    project_file = project / "Pulumi.yaml"
    if project_file.is_file():
        doc = yaml.safe_load(project_file.read_text()) or {}
        if isinstance(doc, dict) and doc.get("stackConfigDir"):
            return project / doc["stackConfigDir"]
    return project / "stacks"


def stack_file(stack: str, project: Path) -> Path:
    return stack_dir(project) / f"Pulumi.{stack}.yaml"


def declared_substrate(stack: str, project: Path) -> str | None:
    """The substrate a stack file names, read as written and not validated (`doctor` answers
    even for a broken stack config); None without a file or a readable one."""
    try:
        doc = yaml.safe_load(stack_file(stack, project).read_text()) or {}
        return str((doc.get("config") or {}).get(f"{NAMESPACE}:substrate", "local"))
    except (OSError, yaml.YAMLError, AttributeError):
        return None


def stack_names(project: Path) -> list[str]:
    return [
        p.name[len("Pulumi.") : -len(".yaml")] for p in stack_dir(project).glob("Pulumi.*.yaml")
    ]


def from_pulumi_config(memory_total: int | None = None) -> Topology:
    """The topology of the running Pulumi program's stack (call it from __main__.py)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    cfg = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    for full_key in keys:
        namespace, _, key = full_key.partition(":")
        if namespace == NAMESPACE and key:
            text = cfg.get(key)
            try:
                raw[key] = json.loads(text) if text is not None else None
            except (TypeError, ValueError):
                raw[key] = text  # a plain string such as `local`
    return from_config(raw, stack=pulumi.get_stack(), memory_total=memory_total)


def from_config(
    config: Mapping[str, Any], *, stack: str, memory_total: int | None = None
) -> Topology:
    """A validated topology from config keys, with or without the `datakit:` prefix (keys of
    other namespaces are ignored). `memory_total` (bytes) defaults to this machine's."""
    raw: dict[str, Any] = {}
    for key, value in config.items():
        namespace, sep, bare = str(key).rpartition(":")
        if not sep or namespace == NAMESPACE:
            raw[bare] = value
    raw.pop("name", None)
    try:
        topology = Topology.model_validate({**raw, "name": stack})
    except ValidationError as exc:
        problems = [_problem(err) for err in exc.errors()]
        problems += _section_problems(raw, exc, memory_total)
        raise TopologyError(_lines(problems, stack)) from None
    problems = topology_problems(topology, memory_total)
    if problems:
        raise TopologyError(_lines(problems, stack))
    return topology


def _lines(problems: list[Problem], stack: str) -> list[str]:
    return list(dict.fromkeys(p.line(stack) for p in problems))


def _section_problems(
    raw: dict[str, Any], exc: ValidationError, memory_total: int | None
) -> list[Problem]:
    """The remaining problems, so a typo in one key does not hide a wrong count in another:
    the other checks run on the config with each invalid key dropped (its default used),
    and keep what they find about the keys that were valid."""
    repaired = copy.deepcopy(raw)
    dropped: set[str] = set()
    for err in exc.errors():
        loc = tuple(seg for seg in err["loc"] if seg != "[key]")
        if err["type"] == "missing" or not loc or not _drop(repaired, loc):
            return []  # nothing sensible to fall back to
        dropped.add(key_path(*loc))
    try:
        topology = Topology.model_validate({**repaired, "name": "check"})
    except ValidationError:
        return []
    return [
        p
        for p in topology_problems(topology, memory_total)
        if not any(p.path == d or p.path.startswith((d + ".", d + "[")) for d in dropped)
    ]


def _drop(doc: Any, loc: tuple[Any, ...]) -> bool:
    """Remove the key at `loc` from nested dicts; False where a list item is in the way."""
    for seg in loc[:-1]:
        in_dict = isinstance(doc, dict) and seg in doc
        in_list = isinstance(doc, list) and isinstance(seg, int) and seg < len(doc)
        if not (in_dict or in_list):
            return False
        doc = doc[seg]
    if isinstance(doc, dict):
        doc.pop(loc[-1], None)
        return True
    return False


_ALLOWED_BY_TYPE = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "missing": "a value (required)",
    "path_type": "a path",
}


def _problem(err: Mapping[str, Any]) -> Problem:
    loc = tuple(err["loc"])
    if loc and loc[-1] == "[key]":  # a dict key that is not allowed
        loc = loc[:-1]
    kind, ctx = err["type"], err.get("ctx") or {}
    path = key_path(*loc) if loc else "(top level)"
    got = err.get("input")
    if kind == "extra_forbidden":
        keys = _allowed_keys(loc[:-1])
        return Problem(path, "unknown key", ", ".join(keys) if keys else "no keys here")
    if kind == "datakit":
        return Problem(path, ctx["problem"], ctx["allowed"])
    if kind == "missing":
        return Problem(path, "missing", "a value (required)")
    if kind in ("model_type", "model_attributes_type"):
        return Problem(
            path,
            f"{got!r} is not a mapping",
            "a mapping with keys " + ", ".join(_allowed_keys(loc)),
        )
    bounds = {
        "greater_than": "> {gt}",
        "greater_than_equal": ">= {ge}",
        "less_than": "< {lt}",
        "less_than_equal": "<= {le}",
    }
    if kind in bounds:
        return Problem(path, f"{got!r} is out of range", bounds[kind].format(**ctx))
    if kind == "literal_error":
        expected = str(ctx.get("expected")).replace("False", "false").replace("True", "true")
        return Problem(path, f"{got!r} is not allowed", expected)
    if kind == "string_pattern_mismatch":
        return Problem(path, f"{got!r} does not match", f"the pattern {ctx.get('pattern')}")
    allowed = _ALLOWED_BY_TYPE.get(kind, "see the stack reference in README.md")
    message = str(err["msg"]).removeprefix("Value error, ")
    return Problem(path, f"{got!r}: {message}" if got is not None else message, allowed)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model at `loc` accepts (for 'unknown key' lines)."""
    tp: Any = Topology
    for seg in loc:
        tp = _descend(tp, seg)
        if tp is None:
            return []
    model = _model_of(tp)
    if model is None:
        return []
    return sorted(k for k in model.model_fields if not (model is Topology and k == "name"))


def _descend(tp: Any, seg: Any) -> Any:
    model = _model_of(tp)
    if model is not None:
        field = model.model_fields.get(seg) if isinstance(seg, str) else None
        return field.annotation if field else None
    for arg in _unwrapped(tp):
        origin = typing.get_origin(arg)
        if origin is list and isinstance(seg, int):
            return typing.get_args(arg)[0]
        if origin is dict and isinstance(seg, str):
            return typing.get_args(arg)[1]
    return None


def _unwrapped(tp: Any) -> list[Any]:
    if typing.get_origin(tp) is typing.Annotated:
        return _unwrapped(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(tp) for a in _unwrapped(arg)]
    return [tp]


def _model_of(tp: Any) -> type[BaseModel] | None:
    for arg in _unwrapped(tp):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None
