"""The `datakit` command: a thin face over the library; every command is a library call."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from datakit.choices import Drill, Profile, Workload
from datakit.cli_options import Json, JsonFile, Stack, ends_cleanly, fail, option
from datakit.errors import DatakitError

app = typer.Typer(no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
                  help="Deploy and test a PostgreSQL, Redis and Kafka data layer as code.")
# Text from stack files and servers is printed as it is: no emoji codes (":key:" in a
# config line became a key glyph) and no markup in it (cli_options.fail prints plain text).
console = Console(emoji=False)
err = Console(stderr=True, emoji=False)


def command(fn):
    """Register `fn` as a command that ends on a DatakitError as every datakit command does."""
    return app.command()(ends_cleanly(fn))




ShowSecretsOpt = option(False, "--show-secrets", help="show the passwords too (in the tables, "
                        "or in the JSON)")


@command
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
            table.add_row(c.name, status, escape(c.version), escape(c.source), escape(c.fix))
        console.print(table)
    if not all(c.ok for c in found if c.required):
        raise typer.Exit(1)


def _redact(outputs: dict, show_secrets: bool) -> dict:
    """The outputs as the stack holds them, for printing as JSON."""
    if not show_secrets and "secrets" in outputs:
        outputs = {**outputs, "secrets": "[secret] (use --show-secrets)"}
    return outputs


def _summary(stack: str, raw: dict, show_secrets: bool = False) -> None:
    from rich.table import Table  # per command, for start-up time

    from datakit.stack import outputs as stack_outputs

    out = stack_outputs.of_stack(stack, raw)  # the DSNs as stored: no password shown
    pg, rd, kf = out.endpoints.postgres, out.endpoints.redis, out.endpoints.kafka
    table = Table("service", "endpoint", title=f"stack {out.stack}: endpoints")
    table.add_row("postgres (write)", pg.write_dsn)
    table.add_row("postgres (read)", pg.read_dsn)
    if rd.mode == "cluster":
        table.add_row("redis cluster seeds", ", ".join(rd.seeds))
    else:
        table.add_row(f"redis sentinels ({rd.master_name})", ", ".join(rd.sentinels))
    table.add_row("kafka bootstrap", f"{kf.bootstrap_servers} "
                  f"({kf.security_protocol}/{kf.sasl_mechanism})")
    console.print(table)
    nodes = Table("service", "name", "initial role", "address", "pid", "testinfra",
                  title="nodes")
    for n in out.nodes:
        nodes.add_row(n.service, n.name, n.role, n.address,
                      "" if n.handle.pid is None else str(n.handle.pid), n.testinfra)
    console.print(nodes)
    if show_secrets:
        secrets = Table("secret", "value", title="secrets")
        for key, value in _flat(raw.get("secrets") or {}):
            secrets.add_row(key, escape(str(value)))
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


@command
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


@command
def down(stack: Stack = "local", as_json: Json = False, yes: bool = YesOpt) -> None:
    """Stop every node of the stack and remove its data."""
    from datakit.stack import lifecycle as stacks
    from datakit.stack.progress import live_run

    _confirm(stack, "destroy", yes)  # no stack file: nothing to destroy, and no stack made
    with live_run(err, enabled=not as_json) as view:
        result = stacks.down(stack, on_event=view.on_event)
    if as_json:
        print(json.dumps({"stack": stack, "destroyed": True,
                          "resource_changes": result.summary.resource_changes or {}}))
    else:
        console.print(f"stack {stack}: every node stopped and its data removed")


@command
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
                                                      changes.items()) or "no changes"))


@command
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


@command
def status(stack: Stack = "local", as_json: Json = False) -> None:
    """Each node's live role and health, asked of the servers.

    Beside it Patroni's view of each PostgreSQL node (a disagreement is flagged) and etcd's
    members and leader."""
    from datakit import status as live
    from datakit.stack import outputs as stack_outputs

    outputs = stack_outputs.read(stack)
    rows = live.live(outputs)
    whole = live.clusters(outputs)
    if as_json:
        print(json.dumps({"nodes": rows, **whole}, indent=2))
    else:
        from rich.table import Table  # per command, for start-up time

        table = Table("service", "name", "address", "role now", "initial role", "health",
                      "Patroni says", "disagrees")
        for r in rows:
            table.add_row(r["service"], r["name"], r["address"], r["role"], r["initial_role"],
                          r["health"], r.get("patroni") or "", r.get("disagrees") or "")
        console.print(table)
        if pat := whole.get("patroni"):
            console.print(f"Patroni cluster {pat['cluster']}: leader {pat['leader']}, quorum "
                          f"standbys {', '.join(pat['quorum_standbys']) or 'none'}, timeline "
                          f"{pat['timeline']}")
        if et := whole.get("etcd"):
            console.print(f"etcd: leader {et['leader']}, "
                          + ", ".join(f"{k} {v}" for k, v in et["members"].items()))
        for problem in whole["problems"]:
            err.print(f"[red]{problem}[/red]")
    if any(not r["health"].startswith("up") or r.get("disagrees") for r in rows) or \
            whole["problems"]:
        raise typer.Exit(1)


@command
def verify(stack: Stack = "local",
           junit: str = option(None, "--junit", help="write JUnit XML here"),
           json_file: JsonFile = None, as_json: Json = False,
           select: str = option(None, "--select", "-k",
                                help="only checks matching this pytest -k expression"),
           timeout: float = option(30.0, "--timeout", help="seconds a check waits"),
           migrations_dir: str = option(None, "--migrations-dir", help="the migrations the "
                                        "database must have (default: the stack's "
                                        "postgres.migrations)")) -> None:
    """Prove every node of the stack with the testinfra suite (tests/infra/)."""
    from datakit import verify as checks
    from datakit.verify import report

    with err.status("verifying") as shown:
        result = checks.run(stack, junit=junit, json_path=json_file, select=select,
                            timeout=timeout, migrations_dir=migrations_dir,
                            on_row=lambda r: shown.update(f"verifying: {r.node} {r.check}"))
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        report.show(result, console)
    raise typer.Exit(result.exit_code)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r}: use KEY=VALUE", param_hint=what)
        out[key.strip()] = value.strip()
    return out


BaselineOpt = option([], "--baseline", "-b", help="override a baseline: KEY=VALUE "
                           "(min_rps=500, queries.read.p95_ms=5)")
PoolOpt = option([], "--pool", help="override the pool: KEY=VALUE (max_size=2)")
def _seconds(value: str | None) -> float | None:
    """A duration option in seconds, by Locust's parser; a bad one is a usage error naming
    the option."""
    from datakit.load import durations

    try:
        return None if value is None else durations.seconds(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


ProfileOpt = option("baseline", "--profile", "-p", help="baseline: fixed users, judged; "
                    "stress: users doubled each step until a baseline breaks; soak: long, "
                    "watching for drift")
WorkloadOpt = option("mixed", "--workload", "-w", help="the users (loadtests/): every "
                     "service, one of them, the access patterns, or a bare SELECT 1 / GET")


@command
def load(stack: Stack = "local",
         profile: Profile = ProfileOpt,
         users: int = option(None, "--users", "-u", help="concurrent users"),
         duration: str = option(None, "--duration", "-t", callback=_seconds,
                                help="how long: 30, 30s, 5m, 1h30m (Locust's forms)"),
         warmup: str = option(None, "--warmup", callback=_seconds,
                              help="the first part, run but not judged (default: baseline "
                              "5s, stress 3s a step, soak 60s)"),
         processes: int = option(1, "--processes", help="Locust worker processes"),
         out: str = option(None, "--out", help="report directory"),
         workload: Workload = WorkloadOpt,
         baseline: list[str] = BaselineOpt, pool: list[str] = PoolOpt,
         as_json: Json = False) -> None:
    """Run Locust headless against the stack and check its baselines (exit 1 if one breaks)."""
    from pathlib import Path

    from datakit.load import runner
    from datakit.load.progress import live_progress, print_outcome

    options = runner.LoadOptions(
        stack=stack, profile=profile, workload=workload, users=users, duration_s=duration,
        warmup_s=warmup, processes=processes, out_dir=Path(out) if out else None,
        baseline_overrides=_pairs(baseline, "--baseline"),
        pool_overrides={k: float(v) for k, v in _pairs(pool, "--pool").items()})
    with live_progress(err, enabled=not as_json) as on_progress:
        outcome = runner.run(options, on_progress=on_progress)
    if as_json:
        print(outcome.summary_path.read_text())
    else:
        print_outcome(console, outcome)
    if not outcome.passed:
        raise typer.Exit(1)


DrillArg = typer.Argument(..., metavar="DRILL", help="the drill to run")
DrillOutOpt = option(None, "--out", help="dir for the HTML and JSON report "
                           "(default drill-reports/<stack>-<drill>-<stamp>)")


@command
def drill(name: Drill = DrillArg,
          stack: Stack = "local",
          times: int = option(1, "--times", "-n", min=1, help="repeat the drill"),
          out: Path | None = DrillOutOpt, json_file: JsonFile = None,
          as_json: Json = False,
          non_durable: bool = option(False, "--non-durable", help="async PostgreSQL "
                                           "replication and Redis writes without WAIT, to "
                                           "show the checker finding lost writes")) -> None:
    """Run a disaster-recovery drill under a writer; count every lost write, measure RTO."""
    # The choices come from datakit.choices, not topology.DRILLS: the topology package
    # (pydantic) at CLI build time would add about 0.5 s to every command's start
    # (`import datakit.cli` 0.45 s -> 1.0 s, measured).
    from datakit.drills import report, runner

    out_dir = runner.report_dir(out, stack, name)
    results = runner.run(name, stack, times=times, durable=not non_durable,
                         client_log_path=out_dir / "clients.log",
                         say=lambda m: err.print(f"[dim]{escape(m)}[/]", highlight=False))
    summary = runner.summary(results)
    if as_json:
        print(json.dumps(report.as_json(results, summary), indent=2, default=str))
    else:
        console.print(report.table(results))
        console.print(summary)
    for path in runner.write_reports(results, out_dir, json_file):
        err.print(f"wrote {path}")
    if summary["client_log_lines"]:
        err.print(f"wrote {out_dir / 'clients.log'} ({summary['client_log_lines']} lines the "
                  "client libraries logged, librdkafka's reconnects among them)")
    if not summary["passed"]:
        raise typer.Exit(1)


@command
def connect(target: str = typer.Argument(None, metavar="[postgres|redis]",
                                         help="open psql on the primary or redis-cli on "
                                              "the master; without it, print exports"),
            stack: Stack = "local",
            show_secrets: bool = option(False, "--show-secrets",
                                              help="put the passwords in the exports"),
            as_json: Json = False) -> None:
    """Shell exports for a stack's endpoints (eval "$(datakit connect)"), or a client on it."""
    import os
    import shutil

    from datakit import connect as reach
    from datakit.stack import outputs as stack_outputs

    if target is not None and as_json:
        raise DatakitError("connect: --json prints the exports as JSON; it opens no client "
                           "(drop the target or --json)")
    outputs = stack_outputs.read(stack)
    if as_json:
        print(json.dumps(reach.environment(outputs, show_secrets=show_secrets), indent=2))
        return
    if target is None:
        print(reach.exports(outputs, show_secrets=show_secrets), end="")
        return
    argv, env = reach.client(outputs, target)
    if not shutil.which(argv[0]):
        raise DatakitError(f"{argv[0]} not found: install it (tools/bootstrap installs "
                           "postgresql-client and redis-tools)")
    os.execvpe(argv[0], argv, {**os.environ, **env})


LinesOpt = option(40, "--lines", "-n", min=0, help="how many of the last lines to show")


@command
def logs(node: str = typer.Argument(..., metavar="NODE", help="the node, e.g. pg-1, "
                                    "kafka-2 (datakit status lists them)"),
         stack: Stack = "local", lines: int = LinesOpt,
         follow: bool = option(False, "--follow", "-f", help="go on printing what it writes "
                               "(until Ctrl-C)"),
         as_json: Json = False) -> None:
    """A node's log: the last lines of each of its log files, or its container's output."""
    import os
    import shutil

    from datakit.nodes import logs as node_logs
    from datakit.stack import outputs as stack_outputs

    outputs = stack_outputs.read(stack)
    known = {n.name: n for n in outputs.nodes}
    if node not in known:
        raise DatakitError(f"stack {stack!r} has no node {node!r}: choose one of "
                           f"{', '.join(known) or 'none (is it up?)'}")
    if as_json and follow:
        raise DatakitError("logs: --json prints the last lines once; drop --follow or --json")
    if known[node].handle.kind == "docker":
        from datakit.nodes.control import control_for

        for chunk in control_for(known[node], outputs).logs(lines=lines, follow=follow):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        return
    files = node_logs.log_files(known[node])
    if as_json:
        print(json.dumps({"node": node, "files": {str(p): node_logs.last_lines(p, lines)
                                                  for p in files}}, indent=2))
        return
    if not shutil.which("tail"):
        raise DatakitError("tail not found: install coreutils")
    # tail itself: it follows a file that is rotated or recreated (-F), as users expect.
    os.execvp("tail", ["tail", "-n", str(lines), *(["-F"] if follow else []),
                       *map(str, files)])


@command
def schema(as_json: Json = False) -> None:
    """Print the JSON Schema of a stack file, for editors (docs/config.md shows how)."""
    from datakit.topology.reference import stack_file_schema

    print(json.dumps(stack_file_schema(), indent=2))  # JSON either way; --json is the rule's


def _mount_subcommands() -> None:
    from datakit.migrate.cli import app as migrate_app

    app.add_typer(migrate_app, name="migrate")


_mount_subcommands()


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


if __name__ == "__main__":
    main()
