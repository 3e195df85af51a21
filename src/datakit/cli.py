"""The `datakit` command: a thin face over the library; every command is a library call."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from datakit.errors import DatakitError

app = typer.Typer(no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
                  help="Deploy and test a PostgreSQL, Redis and Kafka data layer as code.")
# Text from stack files and servers is printed as it is: no emoji codes (":key:" in a
# config line became a key glyph) and no markup in it (see main()).
console = Console(emoji=False)
err = Console(stderr=True, emoji=False)


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json", help="print JSON for machines")) -> None:
    """Check every tool datakit needs: version, where it came from, and the fix."""
    from datakit.toolchain import doctor as checks

    found = checks.checks()
    if as_json:
        print(json.dumps(checks.as_json(found), indent=2))
    else:
        table = Table("tool", "status", "version", "from", "fix")
        for c in found:
            table.add_row(c.name, "[green]OK[/]" if c.ok else "[red]MISSING[/]", c.version,
                          c.source, c.fix)
        console.print(table)
    if not all(c.ok for c in found):
        raise typer.Exit(1)


StackOpt = typer.Option("local", "--stack", "-s", help="the Pulumi stack (environment)")
JsonOpt = typer.Option(False, "--json", help="print JSON for machines")


def _redact(outputs: dict, show_secrets: bool) -> dict:
    """The outputs as the stack holds them, for printing as JSON."""
    if not show_secrets and "secrets" in outputs:
        outputs = {**outputs, "secrets": "[secret] (use --show-secrets)"}
    return outputs


def _summary(stack: str, raw: dict) -> None:
    from datakit.stack import outputs as stack_outputs  # per command, for start-up time

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


@app.command()
def up(stack: str = StackOpt, as_json: bool = JsonOpt,
       show_secrets: bool = typer.Option(False, "--show-secrets")) -> None:
    """Create or update the stack's nodes and wait until every one is ready."""
    from datakit.stack import lifecycle as stacks
    from datakit.stack.progress import live_run

    stacks.check_topology(stack)  # a broken config is refused before any progress shows
    with live_run(err, enabled=not as_json) as view:
        stacks.up(stack, on_event=view.on_event)
    for line in dict.fromkeys(view.warnings):
        err.print(f"warning: {line}", markup=False, highlight=False)
    raw = stacks.outputs(stack)
    if as_json:
        print(json.dumps(_redact(raw, show_secrets), indent=2))
    else:
        _summary(stack, raw)


@app.command()
def down(stack: str = StackOpt) -> None:
    """Stop every node of the stack and remove its data."""
    from datakit.stack import lifecycle as stacks
    from datakit.stack.progress import live_run

    with live_run(err) as view:
        stacks.down(stack, on_event=view.on_event)
    console.print(f"stack {stack}: every node stopped and its data removed")


@app.command()
def preview(stack: str = StackOpt) -> None:
    """Show what `up` would change."""
    from datakit.stack import lifecycle as stacks

    stacks.check_topology(stack)
    result = stacks.preview(stack, on_output=lambda line: console.print(line, markup=False,
                                                                         highlight=False))
    changes = {op: n for op, n in result.change_summary.items() if op != "same"}
    console.print(f"stack {stack}: " + (", ".join(f"{n} to {op}" for op, n in changes.items())
                                        or "no changes"))


@app.command()
def outputs(stack: str = StackOpt, show_secrets: bool = typer.Option(False, "--show-secrets"),
            as_json: bool = JsonOpt) -> None:
    """The stack's endpoints, nodes and (with --show-secrets) secrets."""
    from datakit.stack import lifecycle as stacks

    raw = stacks.outputs(stack)
    if as_json or show_secrets:
        print(json.dumps(_redact(raw, show_secrets), indent=2))
    else:
        _summary(stack, raw)


@app.command()
def status(stack: str = StackOpt, as_json: bool = JsonOpt) -> None:
    """Each node's live role and health, asked of the servers, beside Patroni's view of
    each PostgreSQL node (a disagreement is flagged) and etcd's members and leader."""
    from datakit import status as live
    from datakit.stack import outputs as stack_outputs

    outputs = stack_outputs.read(stack)
    rows = live.live(outputs)
    whole = live.clusters(outputs)
    if as_json:
        print(json.dumps({"nodes": rows, **whole}, indent=2))
    else:
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


@app.command()
def verify(stack: str = StackOpt,
           junit: str = typer.Option(None, "--junit", help="write JUnit XML here"),
           json_file: str = typer.Option(None, "--json", help="write the results as JSON here"),
           select: str = typer.Option(None, "-k", help="only checks matching this pytest -k"),
           timeout: float = typer.Option(30.0, "--timeout", help="seconds a check waits"),
           migrations_dir: str = typer.Option(None, "--migrations-dir")) -> None:
    """Prove every node of the stack with the testinfra suite (tests/infra/)."""
    from datakit import verify as checks
    from datakit.verify import report

    with err.status("verifying") as shown:
        result = checks.run(stack, junit=junit, json_path=json_file, select=select,
                            timeout=timeout, migrations_dir=migrations_dir,
                            on_row=lambda r: shown.update(f"verifying: {r.node} {r.check}"))
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


BaselineOpt = typer.Option([], "--baseline", "-b", help="override a baseline: KEY=VALUE "
                           "(min_rps=500, queries.read.p95_ms=5)")
PoolOpt = typer.Option([], "--pool", help="override the pool: KEY=VALUE (max_size=2)")


@app.command()
def load(stack: str = StackOpt,
         profile: str = typer.Option("baseline", "--profile", "-p",
                                     help="baseline | stress | soak"),
         users: int = typer.Option(None, "--users", "-u", help="concurrent users"),
         duration: str = typer.Option(None, "--duration", "-t", help="e.g. 30s, 5m"),
         warmup: str = typer.Option(None, "--warmup", help="first seconds run but not judged "
                                    "(default: baseline 5s, stress 3s a step, soak 60s)"),
         processes: int = typer.Option(1, "--processes", help="Locust worker processes"),
         out: str = typer.Option(None, "--out", help="report directory"),
         workload: str = typer.Option("mixed", "--workload", "-w",
                                      help="mixed | postgres | redis | kafka | patterns"),
         baseline: list[str] = BaselineOpt, pool: list[str] = PoolOpt,
         as_json: bool = JsonOpt) -> None:
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


DrillOutOpt = typer.Option(None, "--out", help="dir for the HTML and JSON report "
                           "(default drill-reports/<stack>-<drill>-<stamp>)")
DrillJsonOpt = typer.Option(None, "--json", help="write results as JSON to this file")


def _drill_name(value: str) -> str:
    """The drill argument, one of topology's DRILLS. Checked here, when the command runs,
    not by a choice built with the app: the topology package (pydantic) would add about
    0.5 s to every command's start (`import datakit.cli` 0.45 s -> 1.0 s, measured)."""
    from datakit.topology.baselines import DRILLS

    if value not in DRILLS:
        raise typer.BadParameter(f"no drill {value!r}: choose one of {', '.join(DRILLS)}")
    return value


def _drill_names(incomplete: str) -> list[str]:
    from datakit.topology.baselines import DRILLS  # per command, as in _drill_name

    return [name for name in DRILLS if name.startswith(incomplete)]


@app.command()
def drill(name: str = typer.Argument(..., metavar="DRILL", parser=_drill_name,
                                     autocompletion=_drill_names,
                                     help="the drill to run, e.g. postgres-failover (any "
                                     "other name is refused with the list of drills)"),
          stack: str = StackOpt,
          times: int = typer.Option(1, "--times", "-n", min=1, help="repeat the drill"),
          out: Path | None = DrillOutOpt, json_file: Path | None = DrillJsonOpt,
          non_durable: bool = typer.Option(False, "--non-durable", help="async PostgreSQL "
                                           "replication and Redis writes without WAIT, to "
                                           "show the checker finding lost writes")) -> None:
    """Run a disaster-recovery drill under a writer; count every lost write, measure RTO."""
    from datakit.drills import report, runner

    out_dir = runner.report_dir(out, stack, name)
    results = runner.run(name, stack, times=times, durable=not non_durable,
                         say=lambda m: err.print(f"[dim]{escape(m)}[/]", highlight=False))
    console.print(report.table(results))
    summary = runner.summary(results)
    console.print(summary)
    for path in runner.write_reports(results, out_dir, json_file):
        err.print(f"wrote {path}")
    if not summary["passed"]:
        raise typer.Exit(1)


@app.command()
def connect(target: str = typer.Argument(None, metavar="[postgres|redis]",
                                         help="open psql on the primary or redis-cli on "
                                              "the master; without it, print exports"),
            stack: str = StackOpt,
            show_secrets: bool = typer.Option(False, "--show-secrets",
                                              help="put the passwords in the exports")) -> None:
    """Shell exports for a stack's endpoints (eval "$(datakit connect)"), or a client on it."""
    import os
    import shutil

    from datakit import connect as reach
    from datakit.stack import outputs as stack_outputs

    outputs = stack_outputs.read(stack)
    if target is None:
        print(reach.exports(outputs, show_secrets=show_secrets), end="")
        return
    argv, env = reach.client(outputs, target)
    if not shutil.which(argv[0]):
        raise DatakitError(f"{argv[0]} not found: install it (tools/bootstrap installs "
                           "postgresql-client and redis-tools)")
    os.execvpe(argv[0], argv, {**os.environ, **env})


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
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
