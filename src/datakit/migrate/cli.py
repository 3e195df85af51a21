"""`datakit migrate ...`: a thin Typer face over the library functions in this package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from datakit.cli_options import Json, ends_cleanly, option
from datakit.errors import DatakitError

app = typer.Typer(help="Versioned SQL migrations with undo, checksums and locking.",
                  no_args_is_help=True, add_completion=False)


def _command_line_only(ctx, param, value):
    """A value read from the environment is dropped here: connection.stack_for reads
    DATAKIT_DSN and DATAKIT_STACK itself, after --dsn and --stack, so that the command line
    wins over either variable."""
    return None if ctx.get_parameter_source(param.name).name == "ENVIRONMENT" else value


Dsn = Annotated[str | None, option("--dsn", callback=_command_line_only,
                                   help="libpq DSN of the primary")]
# The stack's default is every command's (`local`), taken only when no DSN is given, so
# --dsn alone is no clash: see connection.stack_for.
Stack = Annotated[str | None, option("--stack", "-s", show_default="local",
                                     callback=_command_line_only,
                                     help="take the DSN from this stack's outputs (when "
                                     "neither --dsn nor DATAKIT_DSN is given)")]
Dir = Annotated[Path | None, option("--migrations-dir", help="default: bundled migrations/")]
LockWait = Annotated[float, option("--lock-wait", help="seconds to wait for another "
                                   "runner's lock")]
DryRun = Annotated[bool, option("--dry-run", help="say what would run, change nothing")]
OutOfOrder = Annotated[bool, option("--allow-out-of-order", help="accept a pending version "
                                    "older than the newest applied one")]


def command(fn):
    """Register `fn` on the app; a DatakitError ends it as every datakit command ends."""

    return app.command(fn.__name__.rstrip("_"))(ends_cleanly(fn))


def _dsn(dsn: str | None, stack: str | None) -> str:
    from datakit.migrate.connection import dsn_for

    return dsn_for(dsn, stack)


def _say(text: str) -> None:
    print(text, flush=True)


def _step_line(step) -> str:
    from datakit.migrate.fastpath import step_line

    return step_line(step)


@command
def create(name: Annotated[str, typer.Argument(help="words, e.g. add_user_email")],
           undo: Annotated[bool, option("--undo", help="also write the U file")] = False,
           migrations_dir: Dir = None, as_json: Json = False) -> None:
    """Write the next V<version>__<name>.sql (and U... with --undo)."""
    from datakit.migrate.files import create as create_files

    paths = create_files(name, migrations_dir, undo=undo)
    if as_json:
        _say(json.dumps({"created": [str(p) for p in paths]}))
        return
    for path in paths:
        _say(f"created {path}")


@command
def apply(dsn: Dsn = None, stack: Stack = None, migrations_dir: Dir = None,
          target: Annotated[int | None, option("--target", help="apply up to V")] = None,
          dry_run: DryRun = False,
          allow_out_of_order: OutOfOrder = False,
          wait_replicas: Annotated[bool, option(
              "--wait-replicas", help="after each migration wait for every replica")] = False,
          replica_timeout: Annotated[float, option(
              "--replica-timeout", help="seconds to wait for replicas, per migration")] = 60.0,
          lock_wait: LockWait = 60.0, as_json: Json = False) -> None:
    """Apply pending migrations, each in its own transaction."""
    from datakit.migrate.fastpath import apply_and_report

    apply_and_report(_dsn(dsn, stack), migrations_dir, target=target, dry_run=dry_run,
                     allow_out_of_order=allow_out_of_order, wait_replicas=wait_replicas,
                     replica_timeout=replica_timeout, lock_wait=lock_wait, as_json=as_json)


@command
def rollback(dsn: Dsn = None, stack: Stack = None, migrations_dir: Dir = None,
             target: Annotated[int | None, option("--target", help="keep V and below")]
             = None,
             steps: Annotated[int | None, option("--steps", help="undo the newest N")]
             = None,
             dry_run: DryRun = False,
             lock_wait: LockWait = 60.0, as_json: Json = False) -> None:
    """Undo applied migrations, newest first, with their stored undo SQL."""
    from datakit.migrate.undo import rollback as run_rollback

    result = run_rollback(_dsn(dsn, stack), migrations_dir, target=target, steps=steps,
                          dry_run=dry_run, lock_wait=lock_wait,
                          progress=None if as_json else lambda s: _say(_step_line(s)))
    if as_json:
        _say(json.dumps(result.to_dict(), default=str))
    elif dry_run:
        _say("\n".join(f"would run {n}" for n in result.planned) or "nothing to roll back")
    else:
        _say(f"rolled back {len(result.steps)} migration(s); database at version "
             f"{result.current_version}")


def _print_status(report) -> None:
    """The status table; file names and details print as they are (escaped markup, no
    emoji codes)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"migrations (database at version {report.current_version})")
    for col in ("version", "file", "state", "applied at", "ms", "detail"):
        table.add_column(col)
    colors = {"applied": "green", "baseline": "green", "pending": "yellow"}
    for r in report.rows:
        color = colors.get(r.state, "red")
        table.add_row(str(r.version), escape(r.file), f"[{color}]{escape(r.state)}[/]",
                      escape(r.applied_at or ""),
                      "" if r.execution_ms is None else str(r.execution_ms),
                      escape(r.detail or ""))
    Console(emoji=False).print(table)


@command
def status(dsn: Dsn = None, stack: Stack = None, migrations_dir: Dir = None,
           as_json: Json = False) -> None:
    """Show every version's state; exit 1 when something is pending or drifted."""
    from datakit.migrate.status import status as read_status

    report = read_status(_dsn(dsn, stack), migrations_dir)
    if as_json:
        _say(json.dumps(report.to_dict(), default=str))
    else:
        _print_status(report)
    if not report.ok:
        raise typer.Exit(1)


@command
def validate(dsn: Dsn = None, stack: Stack = None, migrations_dir: Dir = None,
             offline: Annotated[bool, option(
                 "--offline", help="check the files only, no database")] = False,
             allow_out_of_order: OutOfOrder = False,
             as_json: Json = False) -> None:
    """Check files and history agree; exit 1 on drift or anything pending."""
    from datakit.migrate.status import validate as run_validate

    report = run_validate(None if offline else _dsn(dsn, stack), migrations_dir,
                          allow_out_of_order=allow_out_of_order)
    if report.pending:
        raise DatakitError(f"{len(report.pending)} migration(s) pending, first "
                           f"{report.pending[0].file}; run `datakit migrate apply`")
    if as_json:
        _say(json.dumps({"valid": True, **report.to_dict()}, default=str))
    else:
        _say(f"valid: {len(report.rows)} migration(s), files and history agree")


@command
def baseline(version: Annotated[int, typer.Argument(help="last version already in the DB")],
             dsn: Dsn = None, stack: Stack = None, migrations_dir: Dir = None,
             lock_wait: LockWait = 60.0, as_json: Json = False) -> None:
    """Adopt an existing database: record versions up to V as applied without running them."""
    from datakit.migrate.admin import baseline as run_baseline

    result = run_baseline(_dsn(dsn, stack), version, migrations_dir, lock_wait=lock_wait)
    if as_json:
        _say(json.dumps(result.to_dict(), default=str))
    else:
        _say(f"baselined {len(result.steps)} migration(s) up to version {version}")


@command
def repair(dsn: Dsn = None, stack: Stack = None, migrations_dir: Dir = None,
           lock_wait: LockWait = 60.0, as_json: Json = False) -> None:
    """Re-record checksums of reviewed changes; clear partial no-transaction runs."""
    from dataclasses import asdict

    from datakit.migrate.admin import repair as run_repair

    fixes = run_repair(_dsn(dsn, stack), migrations_dir, lock_wait=lock_wait)
    if as_json:
        _say(json.dumps({"repaired": [asdict(f) for f in fixes]}))
        return
    for f in fixes:
        _say(f"repaired {f.file}: {f.what} {f.old} -> {f.new}")
    if not fixes:
        _say("nothing to repair")


@command
def reset(dsn: Dsn = None, stack: Stack = None,
          yes: Annotated[bool, option("--yes", "-y",
                                      help="confirm dropping everything")] = False,
          lock_wait: LockWait = 60.0, as_json: Json = False) -> None:
    """Drop every schema and the history (disposable stacks only)."""
    from datakit.migrate.admin import reset as run_reset
    from datakit.migrate.connection import stack_for, stack_outputs

    chosen = stack_for(dsn, stack)
    disposable = None if chosen is None else stack_outputs(chosen).disposable
    dropped = run_reset(_dsn(dsn, stack), yes=yes, disposable=disposable, lock_wait=lock_wait)
    if as_json:
        _say(json.dumps({"dropped": dropped}))
    else:
        _say(f"dropped schemas: {', '.join(dropped) or 'none'}")


@command
def lint(migrations_dir: Dir = None,
         error: Annotated[list[str] | None, option(
             "--error", help="treat rule as an error")] = None,
         warn: Annotated[list[str] | None, option(
             "--warn", help="treat rule as a warning")] = None,
         ignore: Annotated[list[str] | None, option("--ignore", help="skip rule")] = None,
         as_json: Json = False) -> None:
    """Flag changes that take heavy locks on existing tables; exit 1 on any error."""
    from datakit.migrate.lint import lint as run_lint

    findings = run_lint(migrations_dir, errors=set(error or ()), warnings=set(warn or ()),
                        ignore=set(ignore or ()))
    if as_json:
        _say(json.dumps([f.to_dict() for f in findings]))
    else:
        for f in findings:
            _say(str(f))
        _say(f"{len(findings)} finding(s)")
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(1)


def main() -> None:
    app()
