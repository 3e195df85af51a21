"""Metrics, from the stack's Prometheus: every scrape target answers, and no alert is
firing. A target or an alert counts against the node it is about (a standby's lag alert,
raised on the primary's exporter, against that standby), so a stopped node fails its own
rows only. Kafka's partition alerts are left to check_kafka, which names the broker missing
from an ISR; the alert can only name the leader that reports it."""

from __future__ import annotations

import pytest

from datakit.nodes.metrics.query import Alert, Prometheus
from datakit.stack.schema import MetricsTarget, Node, StackOutputs
from datakit.verify import Mismatch


def _prometheus(outputs: StackOutputs) -> Prometheus:
    return Prometheus(outputs.endpoints.metrics.prometheus_url, timeout=3.0)


def test_metrics_target_up(metrics_target: MetricsTarget, outputs, checker):
    prom = _prometheus(outputs)

    def probe() -> str:
        found = [t for t in prom.targets() if t.instance == metrics_target.address]
        if not found:
            raise Mismatch(f"Prometheus does not scrape {metrics_target.address}")
        t = found[0]
        return "up" if t.health == "up" else f"{t.health}: {t.last_error or 'not scraped yet'}"

    checker.expect(f"metrics target up: {metrics_target.job}", metrics_target.node, "up",
                   probe)


COVERED_ELSEWHERE = {"KafkaUnderReplicatedPartitions", "KafkaUnderMinIsrPartitions",
                     "KafkaOfflinePartitions"}


def subject(alert: Alert, names: set[str]) -> str:
    """The node an alert is about: the standby a replication alert names, else its node."""
    for key in ("application_name", "slot_name"):
        name = alert.labels.get(key, "").replace("_", "-")
        if name in names:
            return name
    return alert.labels.get("node", "prometheus")


def test_no_alert_firing(any_node: Node, outputs, checker):
    if outputs.endpoints.metrics is None:
        pytest.skip("the stack runs no Prometheus")
    prom, names = _prometheus(outputs), {n.name for n in outputs.nodes}

    def probe() -> str:
        firing = sorted(f"{a.name} ({a.annotations.get('summary', '')})"
                        for a in prom.alerts()
                        if a.state == "firing" and a.name not in COVERED_ELSEWHERE
                        and subject(a, names) == any_node.name)
        return "; ".join(firing) or "none"

    checker.expect("no alert firing", any_node.name, "none", probe)
