"""Locust event listeners of a datakit run; importing this module installs them.

- the concurrency check, once, when the locustfile is imported (before `--processes`
  forks): a non-cooperative driver ends the run with exit code 3 and a clear line;
- every request into this process's microsecond histograms (`recorder`);
- workers ship their histograms with each stats report, the master merges them;
- every process that runs users samples its own CPU and gevent loop lag
  (`client_health`), shipped to the master like the histograms;
- the master (or the only process) writes a progress file every second and the result
  file when it quits, both read by `datakit load`;
- pooled PostgreSQL connections close when the run quits, while gevent's hub still runs
  (left to the interpreter's exit, the pool's `__del__` fails on a dead hub).
"""

from __future__ import annotations

import json
import os
import sys
import time

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from datakit.load import postgres_client
from datakit.load.client_health import HEALTH
from datakit.load.recorder import RECORDER, key_of
from datakit.load.settings import current

WIRE_KEY = "datakit_histograms"
HEALTH_KEY = "datakit_client_health"
_state: dict[str, float] = {}


def error_text(exc: BaseException | str) -> str:
    if isinstance(exc, str):
        return exc[:200]
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:200]


def _atomic_write(path: str, data: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)


_keys: dict[tuple[str, str], str] = {}
_record = RECORDER.record


@events.request.add_listener
def _on_request(request_type, name, response_time, exception=None, **_kw) -> None:
    key = _keys.get((request_type, name))
    if key is None:
        key = _keys[(request_type, name)] = key_of(request_type, name)
    if exception is None:
        _record(key, int(response_time * 1000))
    else:
        _record(key, int(response_time * 1000), error_text(exception))


def _on_report_to_master(client_id, data, **_kw) -> None:
    data[WIRE_KEY] = RECORDER.drain()
    data[HEALTH_KEY] = HEALTH.drain()


def _on_worker_report(client_id, data, **_kw) -> None:
    if WIRE_KEY in data:
        RECORDER.merge_wire(data[WIRE_KEY])
    if HEALTH_KEY in data:
        HEALTH.merge(client_id, data[HEALTH_KEY])


def _progress(environment, path: str) -> None:
    while True:
        gevent.sleep(1.0)
        total = environment.stats.total
        started = _state.get("started")
        _atomic_write(path, {
            "elapsed_s": time.time() - started if started else 0.0,
            "users": environment.runner.user_count if environment.runner else 0,
            "rps": total.current_rps, "requests": total.num_requests,
            "failures": total.num_failures,
        })


@events.init.add_listener
def _on_init(environment, **_kw) -> None:
    settings = current()
    RECORDER.window_s = max(1, int(settings.window_s))
    runner = environment.runner
    events.quitting.add_listener(lambda **_kw: postgres_client.close_all())
    if not isinstance(runner, MasterRunner):  # the master runs no users
        events.test_start.add_listener(lambda **_kw: _start_judging(settings.warmup_s))
        events.test_stop.add_listener(lambda **_kw: HEALTH.stop())
    if isinstance(runner, WorkerRunner):
        events.report_to_master.add_listener(_on_report_to_master)
        return
    if isinstance(runner, MasterRunner):
        events.worker_report.add_listener(_on_worker_report)
    if settings.progress_path:
        gevent.spawn(_progress, environment, settings.progress_path)

    def on_test_start(**_kw) -> None:
        _state.setdefault("started", time.time())

    def on_quitting(environment, **_kw) -> None:
        if not settings.result_path:
            return
        total = environment.stats.total
        RECORDER.write(settings.result_path, started=_state.get("started", time.time()),
                       stopped=time.time(), locust_requests=total.num_requests,
                       locust_failures=total.num_failures, refused=None,
                       warmup_s=settings.warmup_s,
                       client_health=HEALTH.samples)

    events.test_start.add_listener(on_test_start)
    events.quitting.add_listener(on_quitting)


def _start_judging(warmup_s: float) -> None:
    """Latencies and the client's health count from the end of the warm-up on."""
    RECORDER.judge_from = time.time() + warmup_s
    HEALTH.start(delay_s=warmup_s)


def _enforce_concurrency() -> None:
    settings = current()
    if not settings.check_concurrency or os.environ.get("DATAKIT_LOAD_CHECKED"):
        return
    from datakit.load.concurrency import NotCooperative, check

    result = check(settings.postgres.write_dsn)
    if result.ok:
        os.environ["DATAKIT_LOAD_CHECKED"] = "1"  # inherited by forked workers
        return
    if settings.result_path:
        _atomic_write(settings.result_path, {"refused": result.message(),
                                             "concurrency": vars(result)})
    sys.stderr.write(f"datakit: refused: {result.message()}\n")
    sys.stderr.flush()
    os._exit(NotCooperative.exit_code)


_enforce_concurrency()
