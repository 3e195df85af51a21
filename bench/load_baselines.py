"""The default load profile N times against a stack: what each baseline measured, run by
run, and what the load generator itself was doing. This is how the `local` stack's load
baselines were set (the stack file states the margin).

    .venv/bin/python bench/load_baselines.py --stack local --runs 10 [--duration 30s]

One line per run (every check's measured figure, client CPU and loop lag), then per check
`CHECK min= median= max= limit= held=N/RUNS`. The stack must be up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from datakit.load import runner


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stack", default="local")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--duration", default=None, help="default: the profile's own")
    args = ap.parse_args()
    seen: dict[str, list[float]] = {}
    limits: dict[str, str] = {}
    held: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="datakit-bench-load-") as tmp:
        for i in range(args.runs):
            started = time.monotonic()
            outcome = runner.run(runner.LoadOptions(
                stack=args.stack, profile="baseline", duration_s=args.duration,
                out_dir=Path(tmp) / f"run-{i + 1}"))
            final = outcome.final
            figures = []
            for c in final.checks:
                limits[c.name] = f"{c.op} {c.limit:g} {c.unit}".strip()
                held[c.name] = held.get(c.name, 0) + (c.status != "FAIL")
                if c.measured is not None:
                    seen.setdefault(c.name, []).append(c.measured)
                    figures.append(f"{c.name.replace(' ', '_')}={c.measured:g}")
            print(f"run {i + 1} passed={outcome.passed} saturated={final.saturated} "
                  f"wall_s={time.monotonic() - started:.1f} {' '.join(figures)}", flush=True)
    for name, values in seen.items():
        print(f"CHECK {name.replace(' ', '_')} min={min(values):g} "
              f"median={statistics.median(values):g} max={max(values):g} "
              f"limit='{limits[name]}' held={held[name]}/{args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
