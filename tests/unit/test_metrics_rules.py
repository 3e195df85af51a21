"""The alert rules and prometheus.yml as rendered, checked by Prometheus's own promtool:
`check rules` and `check config` parse them, and `test rules` runs the rule engine on
synthetic series, so each threshold from the baselines is proven to fire above it and
to stay quiet below it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from datakit.errors import DatakitError
from datakit.nodes.metrics import prometheus, rules
from datakit.topology.baselines import Baselines

BASELINES = Baselines(replica_lag_max_bytes=16 * 1024**2, replica_lag_max_s=1.0)


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def rule_file(tmp_path) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(rules.render(BASELINES, for_s=5))
    return path


def test_promtool_accepts_the_rules(rule_file):
    checked = _promtool("check", "rules", str(rule_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(rules.alert_rules(BASELINES))} rules found" in checked.stdout


def test_promtool_accepts_a_config_with_targets_by_job_and_the_rules(tmp_path, rule_file):
    conf = tmp_path / "prometheus.yml"
    conf.write_text(prometheus.render_config(
        targets={"postgres": [{"address": "127.0.0.1:63001", "labels": {"node": "pg-1"}}],
                 "redis": [{"address": "127.0.0.1:63002", "labels": {"node": "redis-1"}},
                           {"address": "127.0.0.1:63003", "labels": {"node": "redis-2"}}]},
        scrape_interval_s=1, rules_file=str(rule_file), external_labels={"stack": "local"}))
    checked = _promtool("check", "config", str(conf))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    loaded = yaml.safe_load(conf.read_text())
    assert loaded["global"]["scrape_interval"] == "1s"
    assert [job["job_name"] for job in loaded["scrape_configs"]] == ["postgres", "redis"]
    assert loaded["scrape_configs"][1]["static_configs"][1] == {
        "targets": ["127.0.0.1:63003"], "labels": {"node": "redis-2"}}


def _case(series: dict[str, str], alert: str, fired: list[tuple[dict, str]],
          at: str = "20s") -> dict:
    """Series (promtool's expanding notation), and the alerts expected `at`: (labels,
    summary) each."""
    return {"interval": "1s",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": [
                {"exp_labels": labels, "exp_annotations": {"summary": summary}}
                for labels, summary in fired]}]}


LAG = 'pg_stat_replication_pg_wal_lsn_diff{instance="a:1",node="pg-1",application_name="r1"}'
STANDBY = 'pg_standby_replay_lag_seconds{instance="a:1",node="pg-1",application_name="r1"}'
SENTINEL = 'redis_sentinel_master_status{instance="s:1",node="s1",master_name="dk",'
SLOTS = {'pg_settings_max_connections{instance="a:1",node="pg-1"}': "43x30",
         'pg_settings_superuser_reserved_connections{instance="a:1",node="pg-1"}': "3x30"}
BACKENDS = 'pg_stat_database_numbackends{instance="a:1",node="pg-1",datname="app"}'
PG1 = {"instance": "a:1", "node": "pg-1"}
CASES = [
    # replication lag in bytes: 17 MiB is above the 16 MiB baseline, 15 MiB is not
    _case({LAG: f"{17 * 1024**2}x30"}, "PostgresReplicationLagBytes", [(
        {"severity": "warning", **PG1, "application_name": "r1"},
        "standby r1 of pg-1 (a:1) is 17MiB behind (baseline 16.0 MiB)")]),
    _case({LAG: f"{15 * 1024**2}x30"}, "PostgresReplicationLagBytes", []),
    # replication lag in seconds, and `for: 5s`: true for 3 s only is still pending
    _case({STANDBY: "2x30"}, "PostgresReplicationLagSeconds", [(
        {"severity": "warning", **PG1, "application_name": "r1"},
        "standby r1 of pg-1 (a:1) replays 2s behind (baseline 1 s)")]),
    _case({STANDBY: "0x16 2x3"}, "PostgresReplicationLagSeconds", []),
    _case({'up{job="redis",instance="b:2",node="redis-1"}': "1x10 0x20"}, "ExporterDown", [(
        {"severity": "critical", "job": "redis", "instance": "b:2", "node": "redis-1"},
        "redis target redis-1 (b:2) does not answer its scrape")]),
    _case({SENTINEL + 'master_status="odown"}': "0x30"}, "SentinelWithoutMaster", [(
        {"severity": "critical", "instance": "s:1", "node": "s1", "master_name": "dk"},
        "Sentinel s1 (s:1) sees no live master dk")]),
    _case({SENTINEL + 'master_status="ok"}': "1x30"}, "SentinelWithoutMaster", []),
    # pool saturation: 38 of 43 - 3 reserved slots is above 90 %; 30 of them is not
    _case({BACKENDS: "38x30", **SLOTS}, "PostgresConnectionsSaturated", [(
        {"severity": "warning", **PG1}, "pg-1 (a:1) uses 95% of its connection slots")]),
    _case({BACKENDS: "30x30", **SLOTS}, "PostgresConnectionsSaturated", []),
    _case({'kafka_controller_kafkacontroller_offlinepartitionscount{instance="k:1",node="k1"}':
           "0x10 2x20"}, "KafkaOfflinePartitions", [(
               {"severity": "critical", "instance": "k:1", "node": "k1"},
               "controller k1 (k:1) counts 2 offline partitions")]),
    _case({'kafka_server_replicamanager_underreplicatedpartitions{instance="k:2",node="k2"}':
           "3x30"}, "KafkaUnderReplicatedPartitions", [(
               {"severity": "warning", "instance": "k:2", "node": "k2"},
               "broker k2 (k:2) leads 3 under-replicated partitions")]),
]


def test_each_alert_fires_above_its_threshold_and_not_below(tmp_path, rule_file):
    tests = tmp_path / "rules_test.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rule_file)],
                                     "evaluation_interval": "1s", "tests": CASES}))
    ran = _promtool("test", "rules", str(tests))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SUCCESS" in ran.stdout


def test_thresholds_follow_the_baselines():
    by_name = {r["alert"]: r for r in rules.alert_rules(
        Baselines(replica_lag_max_bytes=1024, replica_lag_max_s=2.5), for_s=0.5)}
    assert by_name["PostgresReplicationLagBytes"]["expr"].endswith("> 1024")
    assert by_name["PostgresReplicationLagSeconds"]["expr"].endswith("> 2.5")
    assert {r["for"] for r in by_name.values()} == {"500ms"}


def test_a_bad_duration_is_one_line_naming_the_form():
    assert prometheus.duration(1) == "1s" and prometheus.duration("3h") == "3h"
    with pytest.raises(DatakitError, match="is not a Prometheus duration: write it as"):
        prometheus.duration("3 hours", "retention")
