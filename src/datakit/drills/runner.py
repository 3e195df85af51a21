"""Run a drill once or N times against a stack and summarise: the RTO distribution
(median, max) and the total lost. A drill that does not apply to the stack (e.g. the
Redis Cluster drill on a Sentinel stack) reports why and counts as not run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from datakit import drills, topology
from datakit.drills import client_log, report
from datakit.drills.context import DrillContext
from datakit.drills.result import DrillResult
from datakit.stack import outputs as stack_outputs
from datakit.stack.schema import StackOutputs


def run_once(name: str, stack: str, *, outputs: StackOutputs | None = None,
             durable: bool = True, say: Callable[[str], None] = lambda _m: None,
             **options) -> DrillResult:
    drill = drills.drill_class(name)
    outputs = outputs or stack_outputs.read(stack)
    reason = drill.applies(outputs)
    if reason:
        return DrillResult(name, stack, durable=durable, applies=False, reason=reason)
    limit = rto_baseline(stack, name)
    ctx = DrillContext(stack, outputs, durable=durable, say=say, **options)
    result = drill(name, ctx).run()
    result.extra.update(run_id=ctx.run_id, rto_baseline_s=limit)
    if result.reason is None and None not in (limit, result.rto_s) and result.rto_s > limit:
        result.reason = (f"RTO {result.rto_s} s is over the stack's baseline of {limit} s "
                         f"(datakit:baselines.rto_s[\"{name}\"])")
    return result


def rto_baseline(stack: str, drill: str) -> float | None:
    """The stack's RTO baseline for `drill` (`baselines.rto_s`), None when it sets none."""
    return topology.load(stack).baselines.rto_s.get(drill)


def run(name: str, stack: str, *, times: int = 1, client_log_path: Path | None = None,
        **kwargs) -> list[DrillResult]:
    """The drill `times` over; its clients' log lines go to `client_log_path` (never the
    terminal), and each result counts the lines logged during its run."""
    outputs = kwargs.pop("outputs", None) or stack_outputs.read(stack)
    results = []
    for i in range(times):
        if i and drills.drill_class(name).recreates_stack:
            outputs = stack_outputs.read(stack)  # new nodes, new passwords
        with client_log.captured(client_log_path) as tally:
            result = run_once(name, stack, outputs=outputs, **kwargs)
        result.extra["client_log"] = tally.summary()
        results.append(result)
    return results


def summary(results: list[DrillResult]) -> dict:
    ran = [r for r in results if r.applies]
    rtos = [r.rto_s for r in ran if r.rto_s is not None]
    red = [r.rto_redundancy_s for r in ran if r.rto_redundancy_s is not None]
    return {"runs": len(ran), "not_applicable": len(results) - len(ran),
            "rto_median_s": round(statistics.median(rtos), 3) if rtos else None,
            "rto_max_s": max(rtos) if rtos else None,
            "rto_redundancy_median_s": round(statistics.median(red), 3) if red else None,
            "lost": sum(r.lost for r in ran),
            "client_log_lines": sum(r.extra.get("client_log", {}).get("lines", 0)
                                    for r in results),
            "passed": all(r.passed for r in results)}


def report_dir(given: Path | str | None, stack: str, drill: str) -> Path:
    """The run's report folder, absolute; by default `drill-reports/<stack>-<drill>-<stamp>`
    under the working directory, as `datakit load` does with `load-reports/`."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(given or Path("drill-reports") / f"{stack}-{drill}-{stamp}").resolve()


def write_reports(results: list[DrillResult], out_dir: Path, json_file: Path | None = None
                  ) -> list[Path]:
    """The HTML and JSON report in `out_dir` (made if missing), and the JSON also at
    `json_file` when given."""
    name = results[0].drill if results else "drill"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / f"{name}.json", out_dir / f"{name}.html"]
    report.write_json(results, written[0], summary(results))
    report.write_html(results, written[1])
    if json_file:
        json_file = Path(json_file).resolve()
        report.write_json(results, json_file, summary(results))
        written.append(json_file)
    return written
