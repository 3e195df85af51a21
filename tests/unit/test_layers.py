"""Imports run one way (DESIGN.md, Layout), checked on every import the code holds, at the
top of a module or inside a function:

    cli -> (migrate | verify | load | drills | status) -> (stack | nodes) -> topology
    infra -> (nodes | topology)
    toolchain, paths, errors, cli_options, choices: the floor, which anyone may import and which
    imports only itself

A failure names file:line and the arrow, e.g. `src/datakit/status.py:9: status -> infra`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from datakit.paths import PROJECT_DIR

SRC = PROJECT_DIR / "src"
# "datakit": the package's own __init__; cli_options: what both command faces share;
# choices: the names of drills, profiles and workloads, which the CLI reads at every start
FLOOR = {"datakit", "toolchain", "paths", "errors", "cli_options", "choices"}
TOP = {"cli", "launch"}  # the command and its entry point (launch.py) may import anything
RANK = {"migrate": 3, "verify": 3, "load": 3, "drills": 3, "status": 3, "connect": 3,
        "stack": 2, "nodes": 2,
        "topology": 1}
WORK = {"migrate", "verify", "load", "drills", "status", "connect"}  # they may use each other
INFRA_MAY = {"nodes", "topology"}
# Arrows the rule above forbids but the design needs, each with its reason.
ALLOWED = {
    ("infra", "migrate"): "the migration-run resource applies the stack's migrations "
                          "during `pulumi up` (infra/migration_run.py, docker/migrations.py)",
    ("infra", "stack"): "infra writes the stack outputs in their schema, the models of "
                        "stack/schema.py that everyone else reads (infra/outputs.py)",
}
# Outside src/, code may import `datakit.infra.program` (the docker mock tests build the
# program); these test infra's own parts as well, so they may import any of it.
INFRA_TESTS = {
    "tests/unit/docker_substrate/": "the docker substrate's mock tests: program and schema",
    "tests/migrate/test_cli.py": "tests the migration-run resource's inputs and apply",
    "tests/e2e/docker/": "makes node handles as the docker substrate exports them",
}


def imports(path: Path, source: str) -> Iterator[tuple[int, str]]:
    """(line, module) of every datakit module `source` imports, anywhere in it."""
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from datakit import topology` imports the module datakit.topology
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                yield node.lineno, name if _is_module(name) else node.module
    # (src/ has no relative imports; a new one would be read as its absolute name's part)


def _is_module(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def part(module: str) -> str | None:
    """The layer part a datakit module belongs to: `datakit.stack.outputs` -> stack."""
    names = module.split(".")
    if names[0] != "datakit":
        return None
    return names[1] if len(names) > 1 else "datakit"


def wrong_way(src: str, dst: str) -> bool:
    for name in (src, dst):
        assert name in TOP | FLOOR | RANK.keys() | {"infra"}, (
            f"datakit.{name} is in no layer: add it to one in tests/unit/test_layers.py")
    if src == dst or src in TOP:
        return False
    if src in FLOOR:
        return dst not in FLOOR
    if dst in FLOOR or (src, dst) in ALLOWED:
        return False
    if src == "infra":
        return dst not in INFRA_MAY
    if dst == "infra" or dst in TOP:
        return True
    if src in WORK and dst in WORK:
        return False
    return RANK[dst] >= RANK[src]  # stack and nodes stand side by side, neither on the other


def arrows(files: dict[str, str]) -> list[str]:
    """Every wrong-way arrow in `files` (path relative to the repository -> source)."""
    found = []
    for rel, source in sorted(files.items()):
        src = part(_module_of(rel))
        for line, module in imports(Path(rel), source):
            dst = part(module)
            if src and dst and wrong_way(src, dst):
                found.append(f"{rel}:{line}: {src} -> {dst} (imports {module})")
    return found


def _module_of(rel: str) -> str:
    names = list(Path(rel).relative_to("src").with_suffix("").parts)
    return ".".join(names[:-1] if names[-1] == "__init__" else names)


def infra_from_outside(files: dict[str, str]) -> list[str]:
    """Imports of datakit.infra in tests, benches and locustfiles beyond what they may."""
    found = []
    for rel, source in sorted(files.items()):
        if any(rel.startswith(prefix) for prefix in INFRA_TESTS):
            continue
        for line, module in imports(Path(rel), source):
            if part(module) == "infra" and module != "datakit.infra.program":
                found.append(f"{rel}:{line}: imports {module}")
    return found


def _sources(*folders: str) -> dict[str, str]:
    return {str(p.relative_to(PROJECT_DIR)): p.read_text()
            for folder in folders for p in sorted((PROJECT_DIR / folder).rglob("*.py"))}


def test_every_import_in_src_runs_one_way():
    wrong = arrows(_sources("src/datakit"))
    assert not wrong, "wrong-way imports:\n" + "\n".join(wrong)


def test_only_infra_and_cli_import_infra_and_tests_only_the_program():
    wrong = infra_from_outside(_sources("tests", "bench", "loadtests"))
    assert not wrong, "imports of datakit.infra from outside it:\n" + "\n".join(wrong)


def test_a_seeded_wrong_way_import_is_named_with_its_line():
    # The checks above are only worth something if they would fail: feed them one of each.
    seeded = {"src/datakit/status.py": "import os\n\n\ndef f():\n"
                                       "    from datakit.infra import program\n",
              "src/datakit/nodes/redis.py": "from datakit.stack import outputs\n",
              "src/datakit/topology/model.py": "from datakit import nodes\n"}
    assert arrows(seeded) == [
        "src/datakit/nodes/redis.py:1: nodes -> stack (imports datakit.stack.outputs)",
        "src/datakit/status.py:5: status -> infra (imports datakit.infra.program)",
        "src/datakit/topology/model.py:1: topology -> nodes (imports datakit.nodes)"]
    assert infra_from_outside({"tests/infra/check_x.py": "import datakit.infra.outputs\n",
                               "bench/x.py": "from datakit.infra import program\n"}) == [
        "tests/infra/check_x.py:1: imports datakit.infra.outputs"]
