"""The `datakit` command: a thin face over the library; every command is a library call.

Here: the app, its entry point, and the stack's lifecycle (doctor, up, down, preview,
outputs). The commands on a running stack (status, verify, load, drill) are in
`running`, the ways to reach one (connect, logs, schema) in `access`; `migrate` is
`datakit.migrate.cli`. Every command is registered at the end of this file, in the order
--help lists them.
"""

from __future__ import annotations

import json
import sys

import typer
from rich.markup import escape

from datakit.cli import access, running
from datakit.cli.consoles import console, err
from datakit.cli_options import Json, Stack, ends_cleanly, fail, option
from datakit.errors import DatakitError

__all__ = ["app", "console", "err", "main"]

app = typer.Typer(no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
                  help="Deploy and test a PostgreSQL, Redis and Kafka data layer as code.")


ShowSecretsOpt = option(False, "--show-secrets", help="show the passwords too (in the tables, "
                        "or in the JSON)")


def doctor(stack: Stack = "local", as_json: Json = False) -> None:
    """Check every tool datakit needs: version, where it came from, and the fix.

    With a docker stack in stacks/, also the Docker engine and the pulumi-docker plugin,
    which fail the check when --stack names a docker stack."""
    from datakit.paths import PROJECT_DIR
    from datakit.toolchain import doctor as checks
    from datakit.topology.loading import declared_substrate, stack_names

    substrate = declared_substrate(stack, PROJECT_DIR)
    if substrate is None:
        raise DatakitError(f"stack {stack!r}: no readable stack file stacks/Pulumi.{stack}"
                           f".yaml; known: {', '.join(sorted(stack_names(PROJECT_DIR)))}")
    docker = sorted(s for s in stack_names(PROJECT_DIR)
                    if declared_substrate(s, PROJECT_DIR) == "docker")
    found = checks.checks(docker, docker_required=substrate == "docker")
    if as_json:
        print(json.dumps(checks.as_json(found), indent=2))
    else:
        from rich.table import Table  # per command: rich.table costs 5 ms of every start

        table = Table("tool", "status", "version", "from", "fix")
        for c in found:
            status = ("[green]OK[/]" if c.ok else "[red]MISSING[/]" if c.required
                      else "[yellow]missing[/] (not for this stack)")
            table.add_row(escape(c.name), status, escape(c.version), escape(c.source),
                          escape(c.fix))
        console.print(table)
    if not all(c.ok for c in found if c.required):
        raise typer.Exit(1)


def _redact(outputs: dict, show_secrets: bool) -> dict:
    """The outputs as the stack holds them, for printing as JSON."""
    if not show_secrets and "secrets" in outputs:
        outputs = {**outputs, "secrets": "[secret] (use --show-secrets)"}
    return outputs


def _summary(stack: str, raw: dict, show_secrets: bool = False) -> None:
    """The endpoints and nodes tables (and the secrets'); every value from the stack is
    escaped, so a `[` or `:name:` in it prints as it is."""
    from rich.table import Table  # per command, for start-up time

    from datakit.stack import outputs as stack_outputs

    out = stack_outputs.of_stack(stack, raw)  # the DSNs as stored: no password shown
    pg, rd, kf = out.endpoints.postgres, out.endpoints.redis, out.endpoints.kafka
    table = Table("service", "endpoint", title=f"stack {escape(out.stack)}: endpoints")
    table.add_row("postgres (write)", escape(pg.write_dsn))
    table.add_row("postgres (read)", escape(pg.read_dsn))
    if rd.mode == "cluster":
        table.add_row("redis cluster seeds", escape(", ".join(rd.seeds)))
    else:
        table.add_row(f"redis sentinels ({escape(rd.master_name)})",
                      escape(", ".join(rd.sentinels)))
    table.add_row("kafka bootstrap", escape(f"{kf.bootstrap_servers} "
                                            f"({kf.security_protocol}/{kf.sasl_mechanism})"))
    console.print(table)
    nodes = Table("service", "name", "initial role", "address", "pid", "testinfra",
                  title="nodes")
    for n in out.nodes:
        nodes.add_row(escape(n.service), escape(n.name), escape(n.role), escape(n.address),
                      "" if n.handle.pid is None else str(n.handle.pid), escape(n.testinfra))
    console.print(nodes)
    if show_secrets:
        secrets = Table("secret", "value", title="secrets")
        for key, value in _flat(raw.get("secrets") or {}):
            secrets.add_row(escape(key), escape(str(value)))
        console.print(secrets)


def _flat(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
    """`{"redis": {"default": "pw"}}` as `[("redis.default", "pw")]`, for a table."""
    rows: list[tuple[str, object]] = []
    for key, value in tree.items():
        if isinstance(value, dict):
            rows += _flat(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


YesOpt = option(False, "--yes", "-y", help="go ahead without asking on a stack that is not "
                "disposable (needed there when stdin is not a terminal)")


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _confirm(stack: str, action: str, yes: bool) -> None:
    """Before `action` on a stack that is not disposable: ask on a terminal, else refuse
    without --yes, as Pulumi does. A disposable stack (`local`) goes ahead. A broken stack
    config is refused here too, so either way the engine has not been called."""
    from datakit.stack import lifecycle as stacks

    if yes or stacks.check_topology(stack).disposable:
        return
    if not _stdin_is_terminal():
        raise DatakitError(f"stack {stack!r} is not disposable and stdin is not a terminal "
                           f"to ask on: pass --yes (or set DATAKIT_YES=1) to {action} it")
    if not typer.confirm(f"{action} stack {stack!r}, which is not disposable?", err=True):
        raise DatakitError(f"stack {stack!r}: {action} not confirmed; nothing was changed")


def up(stack: Stack = "local", as_json: Json = False,
       show_secrets: bool = ShowSecretsOpt, yes: bool = YesOpt) -> None:
    """Create or update the stack's nodes and wait until every one is ready."""
    from datakit.stack import lifecycle as stacks
    from datakit.stack.progress import live_run

    _confirm(stack, "update", yes)  # and a broken config is refused before progress shows
    with live_run(err, enabled=not as_json) as view:
        stacks.up(stack, on_event=view.on_event)
    for line in dict.fromkeys(view.warnings):
        err.print(f"warning: {line}", markup=False, highlight=False)
    raw = stacks.outputs(stack)
    if as_json:
        print(json.dumps(_redact(raw, show_secrets), indent=2))
    else:
        _summary(stack, raw, show_secrets)


def down(stack: Stack = "local", as_json: Json = False, yes: bool = YesOpt) -> None:
    """Stop every node of the stack and remove its data."""
    from datakit.stack import lifecycle as stacks
    from datakit.stack.progress import live_run

    _confirm(stack, "destroy", yes)  # no stack file: nothing to destroy, and no stack made
    for line in _heal_faults(stack):
        err.print(f"removed a killed drill's network fault: {line}", markup=False)
    with live_run(err, enabled=not as_json) as view:
        result = stacks.down(stack, on_event=view.on_event)
    if as_json:
        print(json.dumps({"stack": stack, "destroyed": True,
                          "resource_changes": result.summary.resource_changes or {}}))
    else:
        console.print(f"stack {stack}: every node stopped and its data removed", markup=False)


def _heal_faults(stack: str) -> list[str]:
    """What a killed drill's network faults left on the stack (only root can have any)."""
    import os
    import shutil

    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return []
    from datakit.nodes.faults import heal_stale

    return heal_stale(stack, force=True)


def preview(stack: Stack = "local", as_json: Json = False) -> None:
    """Show what `up` would change."""
    from datakit.stack import lifecycle as stacks

    stacks.check_topology(stack)
    # Under --json the engine's diff goes to stderr, so stdout holds the JSON alone.
    shown = err if as_json else console
    result = stacks.preview(stack, on_output=lambda line: shown.print(line, markup=False,
                                                                       highlight=False))
    changes = {op: n for op, n in result.change_summary.items() if op != "same"}
    if as_json:
        print(json.dumps({"stack": stack, "changes": changes}))
    else:
        console.print(f"stack {stack}: " + (", ".join(f"{n} to {op}" for op, n in
                                                      changes.items()) or "no changes"),
                      markup=False)


def outputs(stack: Stack = "local", show_secrets: bool = ShowSecretsOpt,
            as_json: Json = False) -> None:
    """The stack's endpoints, nodes and (with --show-secrets) secrets."""
    from datakit.stack import lifecycle as stacks
    from datakit.stack import outputs as stack_outputs

    raw = stacks.outputs(stack)
    stack_outputs.of_stack(stack, raw)  # none yet, or not in the schema: one error line
    if as_json:
        print(json.dumps(_redact(raw, show_secrets), indent=2))
    else:
        _summary(stack, raw, show_secrets)


def _register_commands() -> None:
    """Every command, in the order --help lists them, each ending on a DatakitError as
    cli_options.ends_cleanly says (one line, or JSON under --json; no traceback)."""
    from datakit.migrate.cli import app as migrate_app

    for command in (doctor, up, down, preview, outputs,
                    running.status, running.verify, running.load, running.drill,
                    access.connect, access.logs, access.schema):
        app.command()(ends_cleanly(command))
    app.add_typer(migrate_app, name="migrate")


_register_commands()


def _version(shown: bool) -> None:
    if shown:
        from importlib.metadata import version

        print(f"datakit {version('datakit')}")
        raise typer.Exit()


@app.callback()
def _group(_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="print datakit's version and exit")) -> None:
    """Deploy and test a PostgreSQL, Redis and Kafka data layer as code."""


def main() -> None:
    """Entry point: expected failures print one line and exit non-zero, no traceback."""
    try:
        app()
    except DatakitError as exc:
        fail(exc)
