"""`datakit load`: run Locust headless against a stack, check baselines, write the reports.

One run is one `locust` subprocess (`--processes N` for worker processes on this machine)
with datakit's listeners loaded by the locustfile. The subprocess writes the merged
histograms when it quits; this side turns them into the baseline table, `summary.json`,
`report.html`, next to Locust's own CSV and HTML. Profiles:

- `baseline`: fixed users for a short time, checks baselines;
- `stress`: steps users up (one short run per step) until a baseline breaks; the knee is
  the highest load that still held;
- `soak`: long, sampling node memory and connection counts to show drift and leaks.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datakit.errors import DatakitError
from datakit.load import baseline_check, durations, settings, summary
from datakit.load import faults as load_faults
from datakit.load.concurrency import NotCooperative
from datakit.paths import PROJECT_DIR
from datakit.stack.schema import StackOutputs

LOADTESTS = PROJECT_DIR / "loadtests"
WORKLOADS: dict[str, tuple[str, list[str]]] = {
    "mixed": ("mixed.py", []),
    "postgres": ("postgres.py", ["PostgresUser"]),
    "redis": ("redis_users.py", ["RedisUser"]),
    "kafka": ("kafka.py", ["KafkaUser"]),
    "patterns": ("patterns.py", []),
    "pg-select1": ("postgres.py", ["PostgresSelectOneUser"]),
    "redis-get": ("redis_users.py", ["RedisGetUser"]),
}
# The baseline profile's warm-up covers a freshly started stack: its Kafka brokers serve
# the first 15-20 s of traffic at a produce p95 of 100-240 ms before settling at 40-60 ms
# (measured after a cold `up`, and again after 40 s idle: it is the traffic that warms
# them). A warm stack measures 40-60 ms from the first second.
PROFILES: dict[str, dict[str, Any]] = {
    "baseline": {"users": 20, "duration_s": 30.0, "window_s": 1, "warmup_s": 20.0},
    "stress": {"users": 10, "duration_s": 20.0, "window_s": 1, "warmup_s": 3.0, "steps": 6,
               "factor": 2.0},
    "soak": {"users": 20, "duration_s": 1800.0, "window_s": 10, "warmup_s": 60.0},
}


class LoadError(DatakitError):
    exit_code = 4
    one_line = False  # may end with the tail of Locust's log


@dataclass
class LoadOptions:
    stack: str = "local"
    profile: str = "baseline"
    workload: str = "mixed"
    users: int | None = None
    duration_s: float | None = None
    warmup_s: float | str | None = None  # judged figures start after it (profile's default)
    processes: int = 1
    out_dir: Path | None = None
    spawn_rate: float | None = None
    think_ms: tuple[float, float] = (5.0, 20.0)
    baseline_overrides: dict[str, str] = field(default_factory=dict)
    pool_overrides: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    check_concurrency: bool = True
    locustfile: Path | None = None  # instead of a named workload (e.g. a benchmark's peer)
    user_classes: list[str] = field(default_factory=list)
    outputs: StackOutputs | None = None  # the stack's outputs, if already read
    faults: list[str] = field(default_factory=list)  # `NAME@AT[+FOR]` (load/faults.py)


@dataclass
class StepResult:
    users: int
    summary: dict[str, Any]
    checks: list[baseline_check.Check]
    timeline: dict[str, list[dict[str, Any]]]
    out_dir: Path
    started: float = 0.0  # unix times of the run (Locust's test start and quit)
    stopped: float = 0.0
    faults: list[dict[str, Any]] = field(default_factory=list)  # windows, s since start

    @property
    def passed(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks)

    @property
    def saturated(self) -> bool:
        """The load generator, not only the stack, was at its limit: see client_health."""
        return any(c.side == "client" and c.status == "FAIL" for c in self.checks)


@dataclass
class LoadOutcome:
    options: LoadOptions
    steps: list[StepResult]
    out_dir: Path
    knee_users: int | None = None
    soak: dict[str, Any] | None = None
    outputs: StackOutputs | None = None  # the stack's, as the run read them

    @property
    def final(self) -> StepResult:
        return self.steps[-1]

    @property
    def passed(self) -> bool:
        if self.options.profile == "stress":
            return self.knee_users is not None
        return all(s.passed for s in self.steps)

    @property
    def summary_path(self) -> Path:
        return self.out_dir / "summary.json"


Progress = Callable[[dict[str, Any]], None]


def _parse_duration(value: str | float | None, option: str) -> float | None:
    """`value` in seconds (see load.durations); a bad one is a LoadError naming `option`."""
    if value is None or isinstance(value, (int, float)):
        return value
    try:
        return durations.seconds(value)
    except ValueError as exc:
        raise LoadError(f"{option}: {exc}") from None


def report_dir(given: Path | str | None, stack: str) -> Path:
    """The run's report folder, absolute: Locust runs in `loadtests/`, so a relative path
    handed to it would land there (the default is `load-reports/<stack>-<stamp>` under the
    caller's working directory)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(given or Path("load-reports") / f"{stack}-{stamp}").resolve()


def run(options: LoadOptions, on_progress: Progress | None = None) -> LoadOutcome:
    """Run the profile; raise NotCooperative (exit 3) or LoadError; else an outcome."""
    if options.profile not in PROFILES:
        raise LoadError(f"profile {options.profile!r}: use one of {', '.join(PROFILES)}")
    if options.locustfile is None and options.workload not in WORKLOADS:
        raise LoadError(f"workload {options.workload!r}: use one of {', '.join(WORKLOADS)}")
    warmup = _parse_duration(options.warmup_s, "--warmup")  # bad input: before anything
    duration = _parse_duration(options.duration_s, "--duration")
    plans = [load_faults.parse(text, _parse_duration) for text in options.faults]
    if plans and options.profile == "stress":
        raise LoadError("--fault runs with the baseline or soak profile, not stress (its "
                        "steps would each need their own)")
    from datakit import topology

    profile = PROFILES[options.profile]
    stack_baselines = topology.load(options.stack).baselines
    baselines = baseline_check.apply_overrides(stack_baselines, options.baseline_overrides)
    base = settings.for_stack(options.stack, options.outputs)
    base.pool.update(options.pool_overrides)
    base.think_ms = options.think_ms
    base.check_concurrency = options.check_concurrency
    base.window_s = profile["window_s"]
    base.warmup_s = profile["warmup_s"] if warmup is None else warmup
    users = options.users or profile["users"]
    duration = duration or profile["duration_s"]
    if plans and (why := load_faults.refusal(plans, base.outputs, base.warmup_s + duration)):
        raise LoadError(why)
    out = report_dir(options.out_dir, options.stack)
    out.mkdir(parents=True, exist_ok=True)

    outcome = LoadOutcome(options, [], out, outputs=base.outputs)
    if options.profile == "stress":
        for i in range(profile["steps"]):
            step_users = int(round(users * profile["factor"] ** i))
            step = _one_run(options, base, baselines, step_users, duration,
                            out / f"step-{i + 1}-{step_users}u", on_progress)
            outcome.steps.append(step)
            if not step.passed:
                break
            outcome.knee_users = step_users
    elif options.profile == "soak":
        from datakit.load.soak import NodeSampler

        sampler = NodeSampler(base.outputs, every_s=max(2.0, min(30.0, duration / 60)))
        sampler.start()
        try:
            outcome.steps.append(_one_run(options, base, baselines, users, duration, out,
                                          on_progress, plans))
        finally:
            sampler.stop()
        outcome.soak = sampler.report()
    else:
        outcome.steps.append(_one_run(options, base, baselines, users, duration, out,
                                      on_progress, plans))
    write_reports(outcome, baselines)
    return outcome


def _one_run(options: LoadOptions, base: settings.LoadSettings, baselines, users: int,
             duration: float, out: Path, on_progress: Progress | None,
             plans: list[load_faults.FaultPlan] | tuple = ()) -> StepResult:
    out.mkdir(parents=True, exist_ok=True)
    if options.locustfile is not None:
        locustfile, classes = str(Path(options.locustfile).resolve()), options.user_classes
    else:
        locustfile, classes = WORKLOADS[options.workload]
    result_path, progress_path = out / "result.json", out / "progress.json"
    for stale in (result_path, progress_path):
        stale.unlink(missing_ok=True)
    run_settings = settings.LoadSettings(**{**vars(base), "result_path": str(result_path),
                                            "progress_path": str(progress_path)})
    spawn = options.spawn_rate or max(users / 2.0, 1.0)
    with tempfile.TemporaryDirectory(prefix="datakit-load-") as tmp:
        config_path = os.path.join(tmp, "settings.json")  # holds passwords: not in `out`
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        run_settings.dump(config_path)
        cmd = [sys.executable, "-m", "locust", "-f", str(LOADTESTS / locustfile), *classes,
               "--headless", "-u", str(users), "-r", str(spawn), "-t",
               f"{int(duration + run_settings.warmup_s)}s",
               "--stop-timeout", "5", "--csv", str(out / "locust"), "--html",
               str(out / "locust.html"), "--only-summary", "--loglevel", "WARNING",
               "--exit-code-on-error", "0"]
        if options.processes > 1:
            cmd += ["--processes", str(options.processes)]
        env = {**os.environ, settings.ENV: config_path, **options.env}
        log_path = out / "locust.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(LOADTESTS))
            schedule = None
            if plans:
                schedule = load_faults.FaultSchedule(options.stack, base.outputs, list(plans))
                schedule.start()
            deadline = time.monotonic() + run_settings.warmup_s + duration + 120
            try:
                while proc.poll() is None:
                    if time.monotonic() > deadline:
                        proc.kill()
                        raise LoadError(f"Locust did not finish within "
                                        f"{run_settings.warmup_s + duration + 120:.0f} s;"
                                        f" see {log_path}")
                    if on_progress and progress_path.exists():
                        with contextlib.suppress(OSError, ValueError):
                            on_progress({**json.loads(progress_path.read_text()),
                                         "duration_s": run_settings.warmup_s + duration,
                                         "target_users": users})
                    time.sleep(0.5)
            finally:
                if schedule is not None:
                    schedule.stop()  # healed, whatever ended the run
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    if not result_path.exists():
        tail = log_path.read_text()[-1500:]
        raise LoadError(f"Locust exited with {proc.returncode} and no results "
                        f"(see {log_path}):\n{tail}")
    result = json.loads(result_path.read_text())
    if result.get("refused"):
        raise NotCooperative(result["refused"])
    if schedule is not None and schedule.error is not None:
        raise LoadError(f"--fault failed during the run: {schedule.error} (the fault is "
                        f"healed; Locust's results are in {out})")
    figures = summary.summarize(result)
    checks = baseline_check.check(result, baselines, figures["duration_s"])
    faults = [{"fault": label, "start_s": round(t0 - result["started"], 2),
               "end_s": round(t1 - result["started"], 2)}
              for t0, t1, label in (schedule.windows if schedule else [])]
    return StepResult(users, figures, checks, summary.timeline(result), out,
                      result["started"], result["stopped"], faults)


def outcome_json(outcome: LoadOutcome, baselines) -> dict[str, Any]:
    o = outcome.options
    final = outcome.final
    return {
        "stack": o.stack, "profile": o.profile, "workload": o.workload,
        "processes": o.processes, "users": final.users, "passed": outcome.passed,
        "saturated": final.saturated,
        "checks": [c.as_json() for c in final.checks],
        **final.summary,
        "baselines": baselines.model_dump(mode="json", exclude={"rto_s"}),
        "steps": [{"users": s.users, "passed": s.passed, "rps": s.summary["totals"]["rps"],
                   "checks": [c.as_json() for c in s.checks]} for s in outcome.steps]
                 if o.profile == "stress" else None,
        "knee_users": outcome.knee_users, "soak": outcome.soak, "faults": final.faults,
        "files": {"locust_csv": str(final.out_dir / "locust_stats.csv"),
                  "locust_html": str(final.out_dir / "locust.html"),
                  "report_html": str(outcome.out_dir / "report.html")},
    }


def write_reports(outcome: LoadOutcome, baselines) -> None:
    from datakit.load.report import error_windows, html_report

    data = outcome_json(outcome, baselines)
    server, note = _server_charts(outcome)
    data["server"] = {"charts": [f"{c.group}: {c.title}" for c in server], "note": note}
    outcome.summary_path.write_text(json.dumps(data, indent=2))
    # Shaded beside the warm-up: where the clients saw errors (the report's last step).
    window_s = PROFILES.get(outcome.options.profile, {}).get("window_s", 1)
    windows = [(f["start_s"], f["end_s"], f["fault"]) for f in outcome.final.faults]
    windows += error_windows(outcome.final.timeline, window_s)
    (outcome.out_dir / "report.html").write_text(html_report(
        outcome, data, windows=windows, server=server, server_note=note))


def _server_charts(outcome: LoadOutcome):
    """The servers' side of the run the report draws (a stress run's last step), from
    the stack's Prometheus, on the client charts' time axis."""
    from datakit.load import server_series

    final = outcome.final
    if outcome.outputs is None or not final.started:
        return [], "no run to show"
    return server_series.charts(outcome.outputs.endpoints.metrics, final.started,
                                final.stopped)
