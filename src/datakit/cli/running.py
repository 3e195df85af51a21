"""The commands on a running stack: ask it (status), prove it (verify), load it (load) and
break it (drill). `datakit.cli` registers them; values from the stack file and the servers
are escaped wherever markup is read (cli/consoles.py says why)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from datakit.choices import Drill, Profile, Workload
from datakit.cli.consoles import console, err
from datakit.cli_options import Json, JsonFile, Stack, option


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
            table.add_row(*(escape(str(r.get(key) or "")) for key in (
                "service", "name", "address", "role", "initial_role", "health", "patroni",
                "disagrees")))
        console.print(table)
        if pat := whole.get("patroni"):
            console.print(f"Patroni cluster {pat['cluster']}: leader {pat['leader']}, quorum "
                          f"standbys {', '.join(pat['quorum_standbys']) or 'none'}, timeline "
                          f"{pat['timeline']}", markup=False)
        if et := whole.get("etcd"):
            console.print(f"etcd: leader {et['leader']}, "
                          + ", ".join(f"{k} {v}" for k, v in et["members"].items()),
                          markup=False)
        for problem in whole["problems"]:
            err.print(f"[red]{escape(problem)}[/red]")
    if any(not r["health"].startswith("up") or r.get("disagrees") for r in rows) or \
            whole["problems"]:
        raise typer.Exit(1)


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
                            on_row=lambda r: shown.update(
                                f"verifying: {escape(r.node)} {escape(r.check)}"))
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

FaultOpt = option([], "--fault", help="NAME@AT[+FOR]: cut a node off during the run, e.g. "
                  "postgres-partition-primary@60s (redis-partition-master, "
                  "kafka-partition-leader; FOR default 30s); repeatable")


def load(stack: Stack = "local",
         profile: Profile = ProfileOpt,
         users: int = option(None, "--users", "-u", help="concurrent users"),
         duration: str = option(None, "--duration", "-t", callback=_seconds,
                                help="how long: 30, 30s, 5m, 1h30m (Locust's forms)"),
         warmup: str = option(None, "--warmup", callback=_seconds,
                              help="the first part, run but not judged (default: baseline "
                              "20s, stress 3s a step, soak 60s)"),
         processes: int = option(1, "--processes", help="Locust worker processes"),
         out: str = option(None, "--out", help="report directory"),
         workload: Workload = WorkloadOpt,
         baseline: list[str] = BaselineOpt, pool: list[str] = PoolOpt,
         fault: list[str] = FaultOpt,
         as_json: Json = False) -> None:
    """Run Locust headless against the stack and check its baselines (exit 1 if one breaks)."""
    from datakit.load import runner
    from datakit.load.progress import live_progress, print_outcome

    options = runner.LoadOptions(
        stack=stack, profile=profile, workload=workload, users=users, duration_s=duration,
        warmup_s=warmup, processes=processes, out_dir=Path(out) if out else None,
        baseline_overrides=_pairs(baseline, "--baseline"),
        pool_overrides={k: float(v) for k, v in _pairs(pool, "--pool").items()},
        faults=fault)
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
        err.print(f"wrote {path}", markup=False)
    if summary["client_log_lines"]:
        err.print(f"wrote {out_dir / 'clients.log'} ({summary['client_log_lines']} lines the "
                  "client libraries logged, librdkafka's reconnects among them)", markup=False)
    if not summary["passed"]:
        raise typer.Exit(1)
