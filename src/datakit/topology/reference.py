"""The stack config's reference, generated from the model: the JSON Schema of a stack file
(for editors and `datakit schema`) and docs/config.md, a table per section.

    python -m datakit.topology.reference          # rewrite both files
    python -m datakit.topology.reference --check  # exit 1 when either is stale

A stack file nests the model under Pulumi's keys, `config: datakit:<section>: ...`, and
Pulumi keeps a top-level scalar as a string (`datakit:disposable: "true"`), so the schema
takes those as strings too.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from datakit.paths import PROJECT_DIR
from datakit.topology.loading import NAMESPACE
from datakit.topology.model import Topology
from datakit.topology.units import DURATION_PATTERN, SIZE_PATTERN, render_size

SCHEMA_FILE = PROJECT_DIR / "docs" / "stack-config.schema.json"
DOCS_FILE = PROJECT_DIR / "docs" / "config.md"
MODELINE = "# yaml-language-server: $schema=../docs/stack-config.schema.json"
# Keys the engine writes in a stack file besides `config`.
PULUMI_KEYS = {
    "encryptionsalt": "Written by Pulumi for the passphrase secrets provider.",
    "secretsprovider": "Written by Pulumi when the stack uses another secrets provider.",
    "encryptedkey": "Written by Pulumi for a cloud secrets provider.",
}


def _as_written(prop: dict[str, Any]) -> dict[str, Any]:
    """A top-level scalar's schema, also taking the string Pulumi stores it as."""
    kind = prop.get("type")
    text = {"boolean": {"enum": ["true", "false"]},
            "integer": {"type": "string", "pattern": r"^-?\d+$"}}.get(kind)
    if text is None:
        return prop
    keep = {k: v for k, v in prop.items() if k not in ("type", "title")}
    return {**keep, "anyOf": [{"type": kind}, text]}


def stack_file_schema() -> dict[str, Any]:
    """The JSON Schema of stacks/Pulumi.<stack>.yaml: unknown `datakit:` keys are errors,
    other namespaces' keys are left to their owners."""
    model = Topology.model_json_schema()
    config = {f"{NAMESPACE}:{key}": _as_written(prop)
              for key, prop in model["properties"].items() if key != "name"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "datakit stack file (stacks/Pulumi.<stack>.yaml)",
        "description": "A Pulumi stack file whose `config` holds datakit's topology under "
                       "`datakit:` keys. Generated from datakit.topology.model; see "
                       "docs/config.md.",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "description": "The stack's config: datakit's keys, and any other "
                               "namespace's.",
                "properties": config,
                "propertyNames": {"anyOf": [{"enum": list(config)},
                                            {"not": {"pattern": f"^{NAMESPACE}:"}}]},
            },
            **{key: {"type": "string", "description": text}
               for key, text in PULUMI_KEYS.items()},
        },
        "$defs": model["$defs"],
    }


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in prop:
        return {**defs[prop["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in prop.items()
                                                          if k != "$ref"}}
    return prop


def _kind(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """What a value is, in a word or two: integer, size, `local` or `docker`, map of ..."""
    prop = _resolve(prop, defs)
    if "enum" in prop:
        return " or ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    options = prop.get("anyOf")
    if options:
        patterns = {o.get("pattern") for o in options}
        if SIZE_PATTERN in patterns:
            return "size (`256MB`, `1GB` or bytes)"
        if DURATION_PATTERN in patterns:
            return "duration (`500ms`, `30s`, `7d` or ms)"
        kinds = [_kind(o, defs) for o in options if o.get("type") != "null"]
        return " or ".join(dict.fromkeys(kinds)) + (" or null" if len(kinds) < len(options)
                                                    else "")
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_kind(prop.get('items', {}), defs)}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"map of {_kind(prop['additionalProperties'], defs)}"
    if kind == "object" and "properties" in prop:
        return "mapping"
    return kind


def _default(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "default" not in prop:
        return "required"
    value = prop["default"]
    patterns = {o.get("pattern") for o in _resolve(prop, defs).get("anyOf", [])}
    if SIZE_PATTERN in patterns and isinstance(value, int):
        return f"`{render_size(value)}`"
    if DURATION_PATTERN in patterns and isinstance(value, int):
        return f"`{_render_ms(value)}`"
    return f"`{json.dumps(value, separators=(', ', ': '))}`"


def _render_ms(ms: int) -> str:
    for unit, factor in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= factor and ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"


def _rows(path: str, prop: dict[str, Any], defs: dict[str, Any]) -> list[tuple[str, ...]]:
    """(key, kind, default, description) for `path` and, for a section, its fields."""
    resolved = _resolve(prop, defs)
    inner = None
    if "properties" in resolved:
        inner, prefix = resolved, path
    elif "$ref" in resolved.get("additionalProperties", {}):
        inner, prefix = _resolve(resolved["additionalProperties"], defs), f"{path}.<name>"
    elif "$ref" in resolved.get("items", {}):
        inner, prefix = _resolve(resolved["items"], defs), f"{path}[]"
    description = prop.get("description") or resolved.get("description", "")
    own = (f"`{path}`", _kind(prop, defs), "" if inner and "properties" in resolved else
           _default(prop, defs), description)
    if inner is None:
        return [own]
    rows = [own] if inner is not resolved else []
    for name, child in inner["properties"].items():
        rows += _rows(f"{prefix}.{name}", child, defs)
    return rows


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def config_markdown() -> str:
    """docs/config.md: how a stack file is laid out and used in editors, then a table of
    the top-level keys and one of every key per section."""
    schema = stack_file_schema()
    defs = schema["$defs"]
    table = "| key | type | default | description |\n|---|---|---|---|"
    scalars, sections = [], []
    for key, prop in schema["properties"]["config"]["properties"].items():
        (sections if "$ref" in prop else scalars).append((key.split(":", 1)[1], prop))
    out = [HEADER, "## Top-level keys\n", table]
    out += [_line(row) for name, prop in scalars for row in _rows(name, prop, defs)]
    for name, prop in sections:
        own = defs[prop["$ref"].rsplit("/", 1)[1]].get("description", "")
        intro = " ".join(" ".join(t.split()) for t in (prop.get("description", ""), own) if t)
        out += ["", f"## `{NAMESPACE}:{name}`\n", intro + "\n", table]
        out += [_line(row) for row in _rows(name, prop, defs)]
    return "\n".join(out) + "\n"


def _line(row: tuple[str, ...]) -> str:
    return "| " + " | ".join(_cell(c) for c in row) + " |"


HEADER = f"""# Stack config reference

<!-- Generated by `python -m datakit.topology.reference` from datakit.topology.model; do
not edit (tests/unit/test_config_reference.py fails when this file is stale). -->

A stack is `stacks/Pulumi.<stack>.yaml`, a Pulumi stack file. datakit's keys sit under
`config:`, each with the `datakit:` prefix; a section is a mapping under its key:

```yaml
config:
  datakit:substrate: local
  datakit:disposable: "true"     # Pulumi keeps a top-level scalar as a string
  datakit:postgres:
    nodes: 3
    settings:
      shared_buffers: 128MB
```

A key path below, such as `postgres.settings.shared_buffers`, is also what `pulumi config
set --path 'datakit:postgres.settings.shared_buffers' 256MB -s <stack>` takes, and what an
error line names. A broken stack config is refused before anything starts, one line per
problem. Keys of other namespaces are left alone.

## Checking a stack file in your editor

`datakit schema` prints the JSON Schema of a stack file; the same schema is kept in
[`docs/stack-config.schema.json`](stack-config.schema.json). Editors that use
[yaml-language-server](https://github.com/redhat-developer/yaml-language-server) (VS Code's
YAML extension by Red Hat, Neovim, Helix, Emacs lsp-mode) then complete keys, show each
key's description and flag unknown keys and wrong types as you type. Either:

- put a modeline on a stack file's first line (the bundled stacks have it):

  ```yaml
  {MODELINE}
  ```

- or map the schema to every stack file in VS Code's settings (`.vscode/settings.json`):

  ```json
  {{"yaml.schemas": {{"./docs/stack-config.schema.json": "stacks/Pulumi.*.yaml"}}}}
  ```

The schema checks each value on its own; checks across keys (a quorum larger than the
Sentinels, ports that collide, the memory budget) run when datakit reads the stack.

Sizes take binary units (`1 kB` is 1024 bytes), as PostgreSQL and the JVM read them;
durations take `ms`, `s`, `m`, `h`, `d`, `w`, and a bare integer is milliseconds.
"""


def main(argv: list[str]) -> int:
    """Write both files, or with --check say which is stale (exit 1)."""
    wanted = {SCHEMA_FILE: json.dumps(stack_file_schema(), indent=2) + "\n",
              DOCS_FILE: config_markdown()}
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text() != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path.relative_to(PROJECT_DIR)} is stale: run python -m "
                  "datakit.topology.reference", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
