"""Metrics of a stack's servers, free of Pulumi: the standard exporters beside each server,
a Prometheus server that scrapes them and evaluates alert rules, and a client of its API.

- `exporters`: postgres_exporter and redis_exporter daemons (one per server, with a
  least-privilege account and a password that never reaches argv), and the JMX exporter
  javaagent's argument and config for Kafka's JVMs;
- `prometheus`: prometheus.yml (scrape interval, targets by job, rules file), and the
  server's start, readiness, reload and stop, as its service user;
- `rules`: alert rules from a stack's baselines, as Prometheus rule YAML;
- `query`: `query_range`, `targets` and `alerts` over Prometheus's HTTP API;
- `daemon`: what the three kinds of daemon share (spawn, find again, stop, HTTP GET).
"""
