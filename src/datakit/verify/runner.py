"""Run the testinfra suite (tests/infra/) against one stack and collect its verdicts.

The suite gets everything from one JSON file named by $DATAKIT_VERIFY_CONTEXT: the stack's
outputs (secrets included, hence 0600 in a private temp dir, deleted after the run), its
topology (configured settings, baselines, topics), the per-check timeout and the migrations
dir. pytest runs in this process with the results plugin; testinfra reaches each node
through the host URL in its outputs (`local://`, `docker://`, `ssh://`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datakit.errors import DatakitError
from datakit.paths import PROJECT_DIR
from datakit.stack.schema import StackOutputs
from datakit.verify.expect import FAIL, PASS
from datakit.verify.results import Collector, Row

SUITE_DIR = PROJECT_DIR / "tests" / "infra"
CONTEXT_ENV = "DATAKIT_VERIFY_CONTEXT"
DEFAULT_TIMEOUT = 30.0


class VerifyError(DatakitError):
    """The suite could not run at all (no outputs, a broken suite, -k matching nothing)."""


@dataclass
class VerifyResult:
    stack: str
    rows: list[Row] = field(default_factory=list)
    wall_s: float = 0.0
    problems: list[str] = field(default_factory=list)  # collection errors

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == FAIL]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failed and any(r.verdict == PASS
                                                              for r in self.rows)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.verdict] = out.get(r.verdict, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"stack": self.stack, "ok": self.ok, "wall_s": self.wall_s,
                "counts": self.counts(), "problems": self.problems,
                "checks": [r.as_dict() for r in self.rows]}


def _write_private(directory: Path, name: str, data: dict) -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    return path


def run(stack: str, *, outputs: StackOutputs | None = None, timeout: float = DEFAULT_TIMEOUT,
        select: str | None = None, junit: str | Path | None = None,
        json_path: str | Path | None = None, migrations_dir: str | Path | None = None,
        suite: str | Path | None = None,
        on_row: Callable[[Row], None] | None = None) -> VerifyResult:
    """Verify every node of `stack`; never raises for a failed check (see result.ok).

    `outputs` defaults to the stack's own (or $DATAKIT_OUTPUTS_FILE's); the topology is
    the stack's config, which also names the migrations to expect (`postgres.migrations`)
    unless `migrations_dir` does. `select` is pytest's -k expression.
    """
    from datakit import topology
    from datakit.stack import outputs as stack_outputs

    # The suite runs under its own rootdir: every path the caller gave is made absolute
    # first, relative to the caller's working directory.
    junit, json_path, migrations_dir, suite = (
        None if p is None else Path(p).resolve()
        for p in (junit, json_path, migrations_dir, suite))
    topo = topology.load(stack)
    if outputs is None:
        outputs = stack_outputs.read(stack)
    if not outputs.nodes:
        raise VerifyError(f"stack {stack!r} has no nodes in its outputs: run "
                          f"`datakit up --stack {stack}` first")
    suite_dir = suite or SUITE_DIR
    if not (suite_dir / "conftest.py").is_file():
        raise VerifyError(f"{suite_dir}: the verify suite is missing (tests/infra/)")
    context = {"stack": stack, "outputs": outputs.model_dump(mode="json"),
               "timeout": float(timeout),
               "topology": topo.model_dump(mode="json"),
               "migrations_dir": str(migrations_dir or PROJECT_DIR / topo.postgres.migrations)}
    result = VerifyResult(stack)
    private = Path(tempfile.mkdtemp(prefix="datakit-verify-"))  # 0700
    previous = os.environ.get(CONTEXT_ENV)
    started = time.monotonic()
    try:
        os.environ[CONTEXT_ENV] = str(_write_private(private, "context.json", context))
        collector = Collector(on_row=on_row)
        code = _pytest(suite_dir, collector, select=select, junit=junit)
    finally:
        if previous is None:
            os.environ.pop(CONTEXT_ENV, None)
        else:
            os.environ[CONTEXT_ENV] = previous
        shutil.rmtree(private, ignore_errors=True)
    result.wall_s = round(time.monotonic() - started, 2)
    result.rows, result.problems = collector.rows, collector.collect_errors
    if code == 5 or not result.rows:  # pytest.ExitCode.NO_TESTS_COLLECTED
        what = f"-k {select!r}" if select else "the suite"
        raise VerifyError(f"stack {stack}: {what} selected no checks; see "
                          "`datakit verify --help` and the check names in tests/infra/")
    if code in (2, 3, 4) and not result.problems:  # interrupted, internal or usage error
        result.problems.append(f"pytest ended with exit code {int(code)}")
    if json_path:
        Path(json_path).write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    return result


def _pytest(suite_dir: Path, collector: Collector, *, select: str | None,
            junit: str | Path | None) -> int:
    import pytest

    args = [str(suite_dir), "-c", str(suite_dir / "pytest.ini"), "--rootdir", str(suite_dir),
            "-p", "no:cacheprovider", "-p", "no:terminal", "--import-mode=importlib", "-s"]
    if select:
        args += ["-k", select]
    if junit:
        args += ["--junitxml", str(junit), "-o", "junit_family=legacy",
                 "-o", "junit_suite_name=datakit-verify"]
    return int(pytest.main(args, plugins=[collector]))
