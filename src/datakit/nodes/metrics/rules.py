"""Alert rules from a stack's baselines, as a Prometheus rule file.

Each alert reads what the standard exporters expose (exporters.py), by these metrics:

- ExporterDown: `up == 0`, Prometheus's own scrape result: an exporter (or a Kafka JVM,
  whose agent serves its metrics) does not answer;
- PostgresDown / RedisDown: `pg_up == 0` / `redis_up == 0`: the exporter runs but cannot
  reach its server;
- PostgresReplicationLagBytes: `pg_stat_replication_pg_wal_lsn_diff` (the primary's WAL
  position minus each standby's replay position) above `replica_lag_max_bytes`;
- PostgresReplicationLagSeconds: `pg_standby_replay_lag_seconds` (datakit's query of
  pg_stat_replication.replay_lag, as the primary measures it) above `replica_lag_max_s`;
- PostgresReplicaNotStreaming: `pg_replication_slots_active == 0`: a replica's slot
  with no WAL sender, i.e. that replica is not connected;
- PostgresConnectionsSaturated (pool saturation): the server's connection slots, which
  every client pool draws from: `sum(pg_stat_database_numbackends)` over
  `pg_settings_max_connections - pg_settings_superuser_reserved_connections`, above
  `pool_saturation`. The load generator's own pools are client-side and invisible to any
  exporter; their wait time is a load baseline (pool_wait_p95_ms) already;
- RedisClientsSaturated: `redis_connected_clients / redis_config_maxclients` likewise;
- SentinelWithoutMaster: a Sentinel's `redis_sentinel_master_status` is 0 (its master is
  sdown/odown) or it monitors none (`redis_sentinel_masters == 0`);
- KafkaUnderReplicatedPartitions, KafkaUnderMinIsrPartitions, KafkaOfflinePartitions:
  `kafka_server_replicamanager_underreplicatedpartitions`,
  `kafka_server_replicamanager_underminisrpartitioncount` and
  `kafka_controller_kafkacontroller_offlinepartitionscount` above 0 (the JMX agent's names).

An alert fires once its condition held for `for_s` (5 s suits local's 1 s scrapes; a
drill's fault fires it, and it clears when the stack has recovered).
"""

from __future__ import annotations

import yaml

from datakit.nodes.metrics.prometheus import duration
from datakit.topology.baselines import Baselines
from datakit.topology.units import human_size

GROUP = "datakit"


def _alert(name: str, expr: str, for_s: float, severity: str, summary: str) -> dict:
    return {"alert": name, "expr": expr, "for": duration(for_s, "alert for"),
            "labels": {"severity": severity}, "annotations": {"summary": summary}}


def alert_rules(baselines: Baselines, *, for_s: float = 5,
                pool_saturation: float = 0.9) -> list[dict]:
    """The alerting rules of one stack, thresholds from its baselines."""
    lag_bytes, lag_s = int(baselines.replica_lag_max_bytes), float(baselines.replica_lag_max_s)
    who = "{{ $labels.node }} ({{ $labels.instance }})"
    return [
        _alert("ExporterDown", "up == 0", for_s, "critical",
               f"{{{{ $labels.job }}}} target {who} does not answer its scrape"),
        _alert("PostgresDown", "pg_up == 0", for_s, "critical",
               f"postgres_exporter {who} cannot reach its PostgreSQL server"),
        _alert("RedisDown", "redis_up == 0", for_s, "critical",
               f"redis_exporter {who} cannot reach its Redis server or Sentinel"),
        _alert("PostgresReplicationLagBytes",
               f"pg_stat_replication_pg_wal_lsn_diff > {lag_bytes}", for_s, "warning",
               f"standby {{{{ $labels.application_name }}}} of {who} is "
               f"{{{{ $value | humanize1024 }}}}B behind (baseline {human_size(lag_bytes)})"),
        _alert("PostgresReplicationLagSeconds", f"pg_standby_replay_lag_seconds > {lag_s:g}",
               for_s, "warning",
               f"standby {{{{ $labels.application_name }}}} of {who} replays "
               f"{{{{ $value | humanizeDuration }}}} behind (baseline {lag_s:g} s)"),
        _alert("PostgresReplicaNotStreaming", "pg_replication_slots_active == 0", for_s,
               "warning", f"slot {{{{ $labels.slot_name }}}} on {who} has no WAL sender: "
                          "its replica is not streaming"),
        _alert("PostgresConnectionsSaturated",
               "sum by (instance, node) (pg_stat_database_numbackends) / on (instance) "
               "group_left() (max by (instance) (pg_settings_max_connections) - max by "
               f"(instance) (pg_settings_superuser_reserved_connections)) > {pool_saturation:g}",
               for_s, "warning",
               f"{who} uses {{{{ $value | humanizePercentage }}}} of its connection slots"),
        _alert("RedisClientsSaturated",
               f"redis_connected_clients / redis_config_maxclients > {pool_saturation:g}",
               for_s, "warning",
               f"{who} uses {{{{ $value | humanizePercentage }}}} of maxclients"),
        _alert("SentinelWithoutMaster",
               "max by (instance, node, master_name) (redis_sentinel_master_status) == 0 "
               "or redis_sentinel_masters == 0", for_s, "critical",
               f"Sentinel {who} sees no live master {{{{ $labels.master_name }}}}"),
        _alert("KafkaUnderReplicatedPartitions",
               "kafka_server_replicamanager_underreplicatedpartitions > 0", for_s, "warning",
               f"broker {who} leads {{{{ $value }}}} under-replicated partitions"),
        _alert("KafkaUnderMinIsrPartitions",
               "kafka_server_replicamanager_underminisrpartitioncount > 0", for_s, "critical",
               f"broker {who} leads {{{{ $value }}}} partitions under min.insync.replicas"),
        _alert("KafkaOfflinePartitions",
               "kafka_controller_kafkacontroller_offlinepartitionscount > 0", for_s,
               "critical", f"controller {who} counts {{{{ $value }}}} offline partitions"),
    ]


def render(baselines: Baselines, *, for_s: float = 5, pool_saturation: float = 0.9,
           evaluation_interval_s: float | None = None) -> str:
    """The rule file (YAML) for prometheus.start's `rules`."""
    group: dict = {"name": GROUP}
    if evaluation_interval_s:
        group["interval"] = duration(evaluation_interval_s, "evaluation interval")
    group["rules"] = alert_rules(baselines, for_s=for_s, pool_saturation=pool_saturation)
    return "# Written by datakit from the stack's baselines; edits are overwritten.\n" + \
        yaml.safe_dump({"groups": [group]}, sort_keys=False, width=1000)
