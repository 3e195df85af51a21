"""Each drill N times against a stack; one line per drill:
`DRILL rto_median_s=X rto_max_s=Y lost=Z` (plus the redundancy median, runs, the client
libraries' log lines, which go to --client-log, not the terminal, and for the partition
drills `isolated_write_window_s`: the median and max of how long the cut-off primary or
master took writes).

    .venv/bin/python bench/drills.py --stack local --times 5 [--drill NAME ...]
        [--cluster-stack NAME]

The stack must be up and disposable (drills kill its nodes; stack-restore destroys and
recreates it, with new passwords, each run). A drill that does not apply to the stack
prints `n/a` and why: redis-cluster-failover needs a stack whose Redis mode is cluster,
given with --cluster-stack (it runs on --stack otherwise).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

from datakit.drills import runner
from datakit.topology.baselines import DRILLS

WHAT_PATRONI_DID = ("outcome", "primary_during_outage")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stack", default="local")
    ap.add_argument("--times", type=int, default=5)
    ap.add_argument("--drill", action="append", choices=list(DRILLS))
    ap.add_argument("--cluster-stack", help="a Redis Cluster-mode stack for "
                    "redis-cluster-failover")
    ap.add_argument("--client-log", default="drill-reports/bench-clients.log",
                    help="where the drills' client libraries log (librdkafka's lines)")
    args = ap.parse_args()
    failed = False
    for name in args.drill or list(DRILLS):
        stack = (args.cluster_stack or args.stack) if name == "redis-cluster-failover" \
            else args.stack
        results = runner.run(name, stack, times=args.times,
                             client_log_path=Path(args.client_log).resolve())
        s = runner.summary(results)
        if not s["runs"]:
            print(f"{name} n/a ({results[0].reason})", flush=True)
            continue
        # What Patroni chose, where a drill reports it (postgres-crash, etcd-quorum-loss).
        chose = Counter(r.extra.get(k) for r in results for k in WHAT_PATRONI_DID
                        if r.extra.get(k))
        windows = [r.extra["isolated_write_window_s"] for r in results
                   if r.extra.get("isolated_write_window_s") is not None]
        isolated = (f" isolated_write_window_s={statistics.median(windows):.3f}"
                    f" isolated_write_window_max_s={max(windows)}") if windows else ""
        print(f"{name} rto_median_s={s['rto_median_s']} rto_max_s={s['rto_max_s']} "
              f"lost={s['lost']} redundancy_median_s={s['rto_redundancy_median_s']} "
              f"runs={s['runs']} passed={s['passed']} "
              f"client_log_lines={s['client_log_lines']}{isolated}"
              + "".join(f" {k.replace(' ', '_')}={v}" for k, v in chose.items()), flush=True)
        failed |= not s["passed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
