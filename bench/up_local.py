"""Time `datakit up` of the local stack to all-healthy, per service and in total, cold (no
state) and warm (no change), and the peak memory of all its nodes. Three runs, medians.

Runs a stack derived from `local` with its ports moved (so a running `local` is untouched)
through the same engine path as `datakit up`. Prints one line per run (with the Kafka
split: slowest node create, its JVM start to listening (formatting included, or a format
run of its own where the build has no launcher), the cluster-ready wait, the topics, and
how many nodes mapped a CDS archive) and ends with `up_cold_s=X up_warm_s=Y peak_rss_mb=Z`.

    .venv/bin/python bench/up_local.py [--runs 3] [--port-shift -1000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

from datakit.paths import PROJECT_DIR

# Run as `python bench/up_local.py`, only bench/ is on the path: add the repository root for
# the test-only helpers in tests/support.
sys.path.insert(0, str(PROJECT_DIR))
from tests.support.derived_stack import DerivedStack  # noqa: E402

# Resource name -> the service its time counts for: exporters and their certificates by
# their suffix first (pg-1-exporter is metrics' time, not PostgreSQL's), then by prefix.
SUFFIXES = {"-exporter": "metrics", "-exporter-cert": "metrics", "-monitor-role": "metrics"}
SERVICES = {"pg-": "postgres", "postgres-": "postgres", "redis-": "redis",
            "sentinel-": "redis", "kafka-": "kafka", "topic-": "kafka", "etcd-": "etcd",
            "prometheus": "metrics", "process-exporter": "metrics", "migrations": "migrations",
            "tls-": "tls"}


def service_of(name: str) -> str | None:
    for suffix, service in SUFFIXES.items():
        if name.endswith(suffix):
            return service
    return next((s for prefix, s in SERVICES.items() if name.startswith(prefix)), None)


class ServiceClock:
    """Per service: from its first resource starting to its last one done (engine events);
    per resource too, for the Kafka split."""

    def __init__(self) -> None:
        self.spans: dict[str, list[float]] = {}
        self.resources: dict[str, list[float]] = {}

    def on_event(self, event) -> None:
        meta = None
        if event.resource_pre_event:
            meta, edge = event.resource_pre_event.metadata, 0
        elif event.res_outputs_event:
            meta, edge = event.res_outputs_event.metadata, 1
        if meta is None or meta.op.value == "same":
            return
        name = meta.urn.rsplit("::", 1)[-1]
        service = service_of(name)
        if service:
            span = self.spans.setdefault(service, [float("inf"), 0.0])
            now = time.monotonic()
            span[edge] = min(span[0], now) if edge == 0 else max(span[1], now)
            self.resources.setdefault(name, [now, 0.0])[edge] = now

    def seconds(self) -> dict[str, float]:
        return {s: round(end - start, 2) for s, (start, end) in self.spans.items() if end}


def kafka_split(clock: ServiceClock, stack: str) -> dict[str, float]:
    """Where the Kafka span went: the slowest node's create (its JVM from spawn to listening
    and any format run of its own, from the node's state), then the cluster-ready wait and
    the topics."""
    spans = {n: end - start for n, (start, end) in clock.resources.items() if end}
    nodes = {n: s for n, s in spans.items() if n.startswith("kafka-") and n[6:].isdigit()}
    topics = [s for n, s in spans.items() if n.startswith("topic-")]
    states = _node_states(stack, nodes)
    split = {"kafka_node_max_s": max(nodes.values(), default=0.0),
             "kafka_ready_s": spans.get("kafka-ready", 0.0),
             "kafka_topics_s": max(topics, default=0.0)}
    for key in ("format_s", "start_s"):
        values = [st[key] for st in states.values() if isinstance(st.get(key), int | float)]
        if values:
            split[f"kafka_{key[:-2]}_max_s"] = max(values)
    split["kafka_cds"] = sum(1 for st in states.values() if st.get("cds"))
    return {k: round(v, 2) for k, v in split.items()}


def _node_states(stack: str, names) -> dict[str, dict]:
    """The Kafka nodes' create outputs, from the stack's state (secrets shown)."""
    from datakit.stack import lifecycle as stacks

    found = {}
    for res in stacks.open_stack(stack).export_stack().deployment.get("resources", []):
        name = res.get("urn", "").rsplit("::", 1)[-1]
        if name in names:
            state = (res.get("outputs") or {}).get("state") or {}
            if isinstance(state, dict) and "plaintext" in state:  # a secret, shown
                state = json.loads(state["plaintext"])
            found[name] = state
    return found


def _tree_rss_kb(pids: set[int]) -> int:
    """RSS of the given pids and all their descendants (PostgreSQL backends included)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(proc.name), int(fields["PPid"])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, todo = 0, list(pids)
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


class MemorySampler(threading.Thread):
    """Samples the node tree's RSS every 200 ms; node pids come from their data dirs."""

    def __init__(self, data_root: Path) -> None:
        super().__init__(daemon=True)
        self.data_root, self.peak_kb, self.stop = data_root, 0, threading.Event()

    def _pids(self) -> set[int]:
        pids = set()
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if str(self.data_root) in (proc / "cmdline").read_text():
                        pids.add(int(proc.name))
                except OSError:
                    pass
        return pids

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.peak_kb = max(self.peak_kb, _tree_rss_kb(self._pids()))


def one_run(stack: DerivedStack, data_root: Path) -> tuple[float, float, float, dict]:
    clock, sampler = ServiceClock(), MemorySampler(data_root)
    from datakit.stack import lifecycle as stacks

    sampler.start()
    began = time.monotonic()
    stacks.up(stack.name, on_event=clock.on_event)
    cold = time.monotonic() - began
    kafka = kafka_split(clock, stack.name)
    began = time.monotonic()
    stacks.up(stack.name)
    warm = time.monotonic() - began
    sampler.stop.set()
    sampler.join()
    memory = service_rss_mb(stack.outputs())
    stack.destroy()
    return cold, warm, sampler.peak_kb / 1024, {**clock.seconds(), **kafka, **memory}


def service_rss_mb(outputs) -> dict[str, int]:
    """Resident memory per service once up, each node with its descendants (the exporters
    and Prometheus among them: Redis and redis_exporter are not found by data dir)."""
    out: dict[str, int] = {}
    for node in outputs.nodes:
        if node.handle.pid:
            key = f"rss_mb_{node.service}"
            out[key] = out.get(key, 0) + _tree_rss_kb({node.handle.pid}) // 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--port-shift", type=int, default=-1000)
    args = ap.parse_args()
    stack = DerivedStack(f"bench-{os.getpid()}", port_shift=args.port_shift,
                         address_base="127.23.0.0")
    from datakit.topology import load

    data_root = load(stack.name).data_path()
    colds, warms, peaks = [], [], []
    try:
        for i in range(args.runs):
            cold, warm, peak, per_service = one_run(stack, data_root)
            colds.append(cold), warms.append(warm), peaks.append(peak)
            services = " ".join(f"{s if s.startswith(('kafka_', 'rss_')) else s + '_s'}={v}"
                                for s, v in sorted(per_service.items()))
            print(f"run {i + 1}: cold_s={cold:.1f} warm_s={warm:.1f} peak_rss_mb={peak:.0f} "
                  f"{services}", flush=True)
    finally:
        stack.remove()
    print(f"up_cold_s={statistics.median(colds):.1f} up_warm_s={statistics.median(warms):.1f} "
          f"peak_rss_mb={statistics.median(peaks):.0f}")


if __name__ == "__main__":
    main()
