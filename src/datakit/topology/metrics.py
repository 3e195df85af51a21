"""The metrics part of a topology: the standard exporters beside every server and one
Prometheus server that scrapes them and evaluates the stack's alert rules.

Exporters: postgres_exporter per PostgreSQL node, redis_exporter per Redis node and per
Sentinel, the JMX exporter javaagent inside each Kafka JVM. Patroni and etcd serve their
own /metrics (on the REST and client ports), so they need no exporter.

>>> MetricsSpec().exporter_port("postgres", 2)
64251
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from datakit.topology.problems import Problem, Spec
from datakit.topology.units import is_prometheus_duration

Exported = Literal["postgres", "redis", "sentinel", "kafka"]


class MetricsSpec(Spec):
    """Prometheus and the exporters: where they listen, how often and how long they keep."""

    enabled: bool = Field(True, description="run the exporters and Prometheus with the stack")
    scrape_interval_s: float = Field(
        15, gt=0, description="how often Prometheus scrapes every target, seconds")
    retention: str = Field("15d", description="how long Prometheus keeps samples (3h, 15d)")
    alert_for_s: float = Field(
        30, gt=0, description="how long an alert's condition must hold before it fires, s")
    port: int = Field(64900, description="Prometheus's HTTP port")
    postgres_exporter_port_base: int = Field(
        64250, description="postgres_exporter of pg-N listens on this + N - 1")
    redis_exporter_port_base: int = Field(
        64350, description="redis_exporter of redis-N listens on this + N - 1")
    sentinel_exporter_port_base: int = Field(
        64450, description="redis_exporter of sentinel-N listens on this + N - 1")
    kafka_jmx_port_base: int = Field(
        64550, description="the JMX exporter agent in kafka-N serves on this + N - 1")
    process_exporter_port: int = Field(
        64950, description="process-exporter (local substrate): every node's CPU and "
        "resident memory, read from /proc")

    def exporter_port(self, service: Exported, index: int) -> int:
        base = {"postgres": self.postgres_exporter_port_base,
                "redis": self.redis_exporter_port_base,
                "sentinel": self.sentinel_exporter_port_base,
                "kafka": self.kafka_jmx_port_base}[service]
        return base + index - 1

    def problems(self) -> list[Problem]:
        if not is_prometheus_duration(self.retention):
            return [Problem("metrics.retention", f"{self.retention!r} is not a Prometheus "
                            "duration", "a duration such as 3h, 15d or 1h30m")]
        if self.alert_for_s < self.scrape_interval_s:
            return [Problem("metrics.alert_for_s",
                            f"{self.alert_for_s:g} s is shorter than one scrape "
                            f"({self.scrape_interval_s:g} s): an alert would fire on a single "
                            "missed scrape", ">= metrics.scrape_interval_s")]
        return []
