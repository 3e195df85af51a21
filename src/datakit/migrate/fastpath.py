"""`datakit migrate apply` without Typer, and without the runner when there is nothing to do.

CI calls apply on every deploy. Typer's start-up (it loads Rich and more) costs more than a
whole no-op run, and so do the runner's modules, so `main_apply` reads the options
itself, asks `noop` whether anything is pending, and loads the runner only when something
is (or when `noop` cannot tell). `--help` and anything it does not know go to
the Typer CLI, which words the usage errors.
"""

from __future__ import annotations

import os

from datakit.errors import DatakitError, report
from datakit.migrate import noop
from datakit.migrate.connection import connect, dsn_for

# `apply`'s options as the Typer command declares them (datakit.migrate.cli.apply).
_VALUED = {"--dsn": str, "--stack": str, "--migrations-dir": str, "--target": int,
           "--lock-wait": float, "--replica-timeout": float}
_SHORT = {"-s": "--stack"}
_FLAGS = ("--dry-run", "--json", "--allow-out-of-order", "--wait-replicas")


def step_line(step) -> str:
    """One progress line for an applied or rolled-back migration."""
    extra = f", {step.wal_bytes / 1024:.1f} KiB WAL" if step.wal_bytes is not None else ""
    if step.replicas is not None:
        r = step.replicas
        extra += (f", {r.replicas} replica(s) caught up in {r.waited_s * 1000:.0f} ms"
                  f" (max lag {r.max_lag_bytes} B)")
    verb = "applied" if step.operation == "MIGRATE" else step.operation.lower()
    return f"{verb} {step.file} in {step.execution_ms} ms{extra}"


def _say(text: str) -> None:
    print(text, flush=True)


def apply_and_report(dsn: str, migrations_dir: str | os.PathLike | None = None, *,
                     target: int | None = None, dry_run: bool = False,
                     allow_out_of_order: bool = False, wait_replicas: bool = False,
                     replica_timeout: float = 60.0, lock_wait: float = 60.0,
                     as_json: bool = False) -> None:
    """`datakit migrate apply`: the no-op check first, then the runner; prints as it goes.

    The check's connection is the one the runner goes on with. Files `noop` is unsure of go
    to the runner unconnected, so a bad file is named before any connection is tried.
    """
    conn = None
    files = None if dry_run or wait_replicas else noop.checksums(migrations_dir)
    if files is not None:
        conn = connect(dsn)
        try:
            current = noop.nothing_to_apply(conn, files, target=target)
        except BaseException:
            conn.close()
            raise
        if current is not None:
            conn.close()
            if as_json:  # what json.dumps gives for the runner's empty Result
                _say(f'{{"operation": "apply", "steps": [], "planned": [], "dry_run": false, '
                     f'"current_version": {current}, "notes": []}}')
            else:
                _say(f"nothing to apply; database at version {current}")
            return
    # Work to do (or `noop` could not tell): only now the runner, the file model and json load.
    import json

    from datakit.migrate.applier import apply

    result = apply(dsn, migrations_dir, target=target, dry_run=dry_run,
                   allow_out_of_order=allow_out_of_order, lock_wait=lock_wait,
                   wait_replicas=wait_replicas, replica_timeout=replica_timeout,
                   progress=None if as_json else lambda st: _say(step_line(st)), conn=conn)
    if as_json:
        _say(json.dumps(result.to_dict(), default=str))
    elif dry_run:
        _say("\n".join(f"would apply {n}" for n in result.planned) or "nothing to apply")
    elif not result.steps:
        _say(f"nothing to apply; database at version {result.current_version}")
    else:
        _say(f"applied {len(result.steps)} migration(s); database at version "
             f"{result.current_version}")


def parse_apply(argv: list[str]) -> dict | None:
    """`apply`'s options from `argv` (after `apply`), None for anything else.

    As Click reads them: `--opt value` or `--opt=value`, the last one given wins, and a
    value that is not a number where one is needed is for the Typer CLI to refuse.
    """
    opts: dict = {"--lock-wait": 60.0, "--replica-timeout": 60.0}
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if name in _SHORT:  # `-s NAME`; Click reads `-s=NAME` as "=NAME": left to it
            if eq:
                return None
            name = _SHORT[name]
        if name in _FLAGS and not eq:
            opts[name] = True
        elif name in _VALUED:
            if not eq:
                value = next(args, None)
                if value is None:
                    return None
            try:
                opts[name] = _VALUED[name](value)
            except ValueError:
                return None
        else:
            return None
    return opts


def _set_from_environment() -> bool:
    """Whether an apply option other than --dsn and --stack (which dsn_for reads) is set by
    its DATAKIT_<OPTION> variable: Click reads those, as the Typer CLI declares them."""
    names = {"DATAKIT_" + o[2:].upper().replace("-", "_") for o in (*_VALUED, *_FLAGS)}
    return any(n in os.environ for n in names - {"DATAKIT_DSN", "DATAKIT_STACK"})


def main_apply(argv: list[str]) -> int | None:
    """Run `apply ...` and return its exit code; None means "not for me, run the Typer CLI"."""
    lean = argv[:1] == ["apply"] and not _set_from_environment()
    opts = parse_apply(argv[1:]) if lean else None
    if opts is None:
        return None
    try:
        apply_and_report(dsn_for(opts.get("--dsn"), opts.get("--stack")),
                         opts.get("--migrations-dir"), target=opts.get("--target"),
                         dry_run="--dry-run" in opts,
                         allow_out_of_order="--allow-out-of-order" in opts,
                         wait_replicas="--wait-replicas" in opts,
                         replica_timeout=opts["--replica-timeout"],
                         lock_wait=opts["--lock-wait"], as_json="--json" in opts)
    except DatakitError as exc:
        return report(exc, as_json="--json" in opts)
    return 0
