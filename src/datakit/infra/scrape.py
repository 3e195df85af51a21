"""What a stack's Prometheus scrapes, by job, each target labelled with the node it is
about: the exporters, Kafka's JVM agents, Patroni's REST APIs and etcd's client ports (both
serve /metrics themselves), and Prometheus itself. One list for the server's config and
for the outputs, whatever the substrate: `host_of(node name)` says where a node is reached.
"""

from __future__ import annotations

from collections.abc import Callable

from datakit.topology import Topology

# postgres_exporter takes a second to answer a scrape while its server is down (measured:
# 1.01 s, every scrape, for a refused port), so at a 1 s interval and timeout its target
# would read as down (ExporterDown) instead of reporting pg_up 0 (PostgresDown).
POSTGRES_EXPORTER_MIN_INTERVAL_S = 2.0


def job_intervals(topo: Topology) -> dict[str, float]:
    """The jobs scraped less often than the stack's interval, and how often."""
    if topo.metrics.scrape_interval_s >= POSTGRES_EXPORTER_MIN_INTERVAL_S:
        return {}
    return {"postgres": POSTGRES_EXPORTER_MIN_INTERVAL_S}


def scrape_targets(topo: Topology, host_of: Callable[[str], str]) -> dict[str, list[dict]]:
    jobs: dict[str, list[dict]] = {}

    def add(job: str, node: str, host_node: str, port: int) -> None:
        jobs.setdefault(job, []).append(
            {"address": f"{host_of(host_node)}:{port}", "labels": {"node": node}})

    exporters = {n.serves: n for n in topo.metrics_nodes() if n.serves}
    for node in topo.exported():
        if node.service == "kafka":  # the agent serves from inside the broker's JVM
            add("kafka", node.name, node.name, topo.exporter_port(node))
        else:
            beside = exporters[node.name]
            add(node.service, node.name, beside.name, beside.port)
    for name in topo.postgres.node_names:
        add("patroni", name, name, topo.postgres.rest_port(name))
    for node in topo.nodes("etcd"):
        add("etcd", node.name, node.name, node.port)
    if any(n.name == "process-exporter" for n in topo.metrics_nodes()):
        add("processes", "process-exporter", "process-exporter",
            topo.metrics.process_exporter_port)
    add("prometheus", "prometheus", "prometheus", topo.metrics.port)
    return jobs
