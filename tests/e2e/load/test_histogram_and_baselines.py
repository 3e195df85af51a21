"""The pieces of a load run that need no servers: histogram accuracy and merging, baseline
overrides and checks. (Kept beside the e2e load tests, which own this directory.)"""

from __future__ import annotations

import random
import time

import pytest

from datakit.load.baseline_check import BadOverride, apply_overrides, check
from datakit.load.histogram import Histogram
from datakit.load.recorder import Recorder
from datakit.load.summary import summarize
from datakit.topology.baselines import Baselines


def test_percentiles_are_within_two_percent_of_the_exact_values():
    rng = random.Random(7)
    values = [int(rng.lognormvariate(6, 1.2)) for _ in range(50_000)]  # µs, ~400 µs median
    h = Histogram()
    for v in values:
        h.record(v)
    exact = sorted(values)
    for pct in (50, 95, 99, 99.9):
        truth = exact[int(len(exact) * pct / 100) - 1]
        assert abs(h.percentile_us(pct) - truth) <= max(2, truth * 0.02), pct
    assert h.percentile_us(100) == max(values)


def test_sub_millisecond_values_keep_their_resolution():
    h = Histogram()
    for us in (90, 110, 130, 350, 700):
        h.record(us)
    assert h.percentile_ms(20) == pytest.approx(0.090)
    assert 0.34 < h.percentile_ms(80) < 0.36


def test_worker_histograms_merge_over_the_wire_into_the_same_figures():
    whole, master = Recorder(), Recorder()
    workers = [Recorder(), Recorder()]
    for i in range(2000):
        us, failed = 100 + i, ("TimeoutError: x" if i % 100 == 0 else None)
        whole.record("postgres read/x", us, failed)
        workers[i % 2].record("postgres read/x", us, failed)
    for w in workers:
        master.merge_wire(w.drain())
    a, b = whole.hists["postgres read/x"], master.hists["postgres read/x"]
    assert (a.total, a.counts, a.max_us) == (b.total, b.counts, b.max_us)
    assert master.failures == whole.failures == {"postgres read/x": 20}
    assert workers[0].hists == {}  # drained


def test_the_warm_up_is_drawn_but_not_judged():
    rec = Recorder()
    rec.judge_from = time.time() + 3600  # everything from now on is warm-up
    rec.record("postgres read", 900_000, failed="connection refused")
    rec.judge_from = 0.0
    for _ in range(10):
        rec.record("postgres read", 1_000)
    result = {**rec.to_wire(), "started": time.time() - 15, "stopped": time.time(),
              "warmup_s": 5.0}
    figures = summarize(result)
    read = figures["types"]["postgres read"]
    assert read["count"] == 10 and read["failures"] == 0 and read["max_ms"] == 1.0
    assert figures["duration_s"] == pytest.approx(10, abs=0.1)  # judged seconds only
    drawn = [slot for _, slots in result["timeline"] for slot in slots.values()]
    assert sum(fails for _, fails in drawn) == 1  # the timeline keeps the warm-up's failure


def test_overrides_change_one_baseline_and_refuse_unknown_keys():
    b = apply_overrides(Baselines(), {"min_rps": "500", "queries.read.p95_ms": "2",
                                      "queries.write/dequeue.p95_ms": "3",
                                      "queries.write/dequeue.p99_ms": "9"})
    assert b.min_rps == 500 and b.queries["read"].p95_ms == 2
    assert b.queries["read"].p99_ms == Baselines().queries["read"].p99_ms
    assert b.queries["write/dequeue"].p99_ms == 9
    with pytest.raises(BadOverride, match="no such baseline"):
        apply_overrides(Baselines(), {"min_rpz": "1"})
    with pytest.raises(BadOverride, match="valid number"):
        apply_overrides(Baselines(), {"min_rps": "lots"})


def test_a_query_baseline_covers_its_prefix_and_missing_services_are_na():
    r = Recorder()
    for _ in range(100):
        r.record("postgres read/a", 1000)
        r.record("postgres read/b", 3000)
        r.record("postgres pool_wait/read", 10)
    result = {**r.to_wire()}
    checks = {c.name: c for c in check(result, Baselines(), seconds=10.0)}
    assert checks["postgres read p99"].measured == pytest.approx(3.0, rel=0.02)
    assert checks["postgres write p95"].status == "n/a"
    assert checks["redis p99"].status == "n/a"
    assert checks["throughput"].measured == 20.0  # pool waits are not operations
    assert checks["throughput"].status == "FAIL"  # below the default 100 req/s
