"""The docker substrate's metrics nodes, under Pulumi's mocks: an exporter beside each
server reaching it at its peer address, the exporters' PostgreSQL role made by a job,
Prometheus scraping every target with the stack's rules, and Kafka's agent in the broker's
JVM; no password in a plain input; nothing of it when metrics are off."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess

import pytest
import yaml

from datakit.errors import DatakitError
from datakit.infra import outputs as writer
from datakit.infra.docker.provider import host_name
from datakit.infra.scrape import scrape_targets
from datakit.nodes.metrics import rules
from datakit.nodes.metrics.exporters import MONITOR_CONNECTION_LIMIT
from datakit.topology import TopologyError, from_config

from .conftest import (
    PLENTY,
    Snapshot,
    build_snapshot,
    dev_config,
    env_of,
    plain_strings,
    run_program_from_config,
    script_of,
    stacks,
    unwrap,
)


def peer(topo, name: str) -> str:
    """How the stack's nodes reach `name`: its machine (host networking) or container."""
    node = next(n for n in (*topo.nodes(), *topo.metrics_nodes()) if n.name == name)
    if topo.name == "prod":
        return host_name(node.docker_host)
    return f"datakit-{topo.name}-{name}"


def upload(container, path: str) -> str:
    (text,) = [u["content"] for u in container.inputs["uploads"] if u["file"] == path]
    return text


def exporters(topo):
    return [n for n in topo.metrics_nodes() if n.service == "exporter"]


@stacks
def test_each_exporter_runs_beside_its_server_and_reaches_it_at_its_peer_address(
        snapshots, stack):
    s = snapshots[stack]
    for node in exporters(s.topo):
        c, served = s.container(node.name), s.topo.node(node.serves)
        assert c.provider == s.container(served.name).provider  # the same Docker host
        assert s.container(served.name).urn in c.dependencies  # after it is healthy
        args = unwrap(c.inputs["command"])
        assert f"--web.listen-address=:{node.port}" in args or \
            f"-web.listen-address=:{node.port}" in args
        address = f"{peer(s.topo, served.name)}:{served.port}"
        if served.service == "postgres":
            assert env_of(c)["DATA_SOURCE_URI"].startswith(f"{address}/postgres?")
            assert env_of(c)["DATA_SOURCE_USER"] == writer.POSTGRES_MONITOR_USER
            assert "--extend.query-path=/etc/postgres_exporter/queries.yml" in args
            assert "pg_standby" in upload(c, "/etc/postgres_exporter/queries.yml")
            up = "pg_up 1"
        else:
            assert f"-redis.addr=redis://{address}" in args
            up = "redis_up 1"
        # Healthy once it reaches its server, not merely once it listens.
        assert f"/metrics | grep -q '^{up}'" in c.inputs["healthcheck"]["tests"][1]


@stacks
def test_the_monitor_role_is_made_on_the_primary_before_the_postgres_exporters(
        snapshots, stack):
    s = snapshots[stack]
    job = s.container("postgres-monitor-role")
    members = {s.container(n.name).urn for n in s.topo.nodes("postgres")}
    assert members <= set(job.dependencies)
    script = script_of(job)
    assert "GRANT pg_monitor TO" in script
    assert f"CONNECTION LIMIT {MONITOR_CONNECTION_LIMIT} " in script
    assert "NOSUPERUSER" in script and "\\gexec" in script  # create, or update the password
    env = env_of(job)
    assert env["DATAKIT_MONITOR_USER"] == writer.POSTGRES_MONITOR_USER
    assert "target_session_attrs=read-write" in env["DATAKIT_DSN"]
    hosts = re.search(r"host=(\S+)", env["DATAKIT_DSN"]).group(1).split(",")
    assert hosts == [peer(s.topo, n.name) for n in s.topo.nodes("postgres")]
    for node in exporters(s.topo):
        if node.serves.startswith("pg-"):
            assert job.urn in s.container(node.name).dependencies


@stacks
def test_no_metrics_password_is_in_a_plain_input(snapshots, stack):
    s = snapshots[stack]
    secrets = s.stack_outputs.secrets
    monitor, redis, sentinel = (secrets.postgres.monitor, secrets.redis.default,
                                secrets.redis.sentinel)
    metrics = [c for c in s.containers
               if c.name.endswith("-exporter") or c.name in ("prometheus",
                                                              "postgres-monitor-role")]
    for c in metrics:
        plain = " ".join(text for _path, text in plain_strings(c.inputs))
        assert not any(pw in plain for pw in s.passwords), c.name
    # ...and each exporter has its server's password, as a secret env entry only.
    for node in exporters(s.topo):
        c = s.container(node.name)
        want = {"postgres": ("DATA_SOURCE_PASS", monitor), "redis": ("REDIS_PASSWORD", redis),
                "sentinel": ("REDIS_PASSWORD", sentinel)}[s.topo.node(node.serves).service]
        assert env_of(c)[want[0]] == want[1], node.name
    assert env_of(s.container("postgres-monitor-role"))["DATAKIT_MONITOR_PASSWORD"] == monitor


@stacks
def test_prometheus_scrapes_every_target_with_the_stacks_rules(snapshots, stack):
    s = snapshots[stack]
    topo, c = s.topo, s.container("prometheus")
    config = yaml.safe_load(upload(c, "/etc/prometheus/prometheus.yml"))
    scraped = {(job["job_name"], sc["labels"]["node"], target)
               for job in config["scrape_configs"] for sc in job["static_configs"]
               for target in sc["targets"]}
    expected = {(job, t["labels"]["node"], t["address"])
                for job, members in scrape_targets(topo, lambda n: peer(topo, n)).items()
                for t in members}
    assert scraped == expected
    # Every server has its target: an exporter beside it, or its own /metrics.
    about = {node for _job, node, _address in scraped}
    assert about == {n.name for n in topo.nodes()} | {"prometheus"}
    for node in exporters(topo):
        assert (topo.node(node.serves).service, node.serves,
                f"{peer(topo, node.name)}:{node.port}") in scraped
    for node in topo.nodes("kafka"):
        assert ("kafka", node.name, f"{peer(topo, node.name)}:{node.metrics_port}") in scraped
    # The outputs list the same targets, at the addresses Prometheus scrapes (its
    # `instance`, which verify matches them by).
    listed = {(t.job, t.node, t.address) for t in s.stack_outputs.endpoints.metrics.targets}
    assert listed == scraped
    assert config["global"]["scrape_interval"] == f"{topo.metrics.scrape_interval_s:g}s"
    assert config["global"]["external_labels"] == {"stack": stack}
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]
    assert upload(c, "/etc/prometheus/rules.yml") == rules.render(
        topo.baselines, for_s=topo.metrics.alert_for_s)


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
@stacks
def test_promtool_accepts_the_uploaded_config_and_rules(snapshots, stack, tmp_path):
    c = snapshots[stack].container("prometheus")
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(upload(c, "/etc/prometheus/rules.yml"))
    config = tmp_path / "prometheus.yml"
    config.write_text(upload(c, "/etc/prometheus/prometheus.yml").replace(
        "/etc/prometheus/rules.yml", str(rules_file)))
    check = subprocess.run(["promtool", "check", "config", str(config)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


@stacks
def test_prometheus_keeps_the_stacks_retention_after_the_exporters(snapshots, stack):
    s = snapshots[stack]
    c = s.container("prometheus")
    args = unwrap(c.inputs["command"])
    assert f"--storage.tsdb.retention.time={s.topo.metrics.retention}" in args
    assert f"--web.listen-address=0.0.0.0:{s.topo.metrics.port}" in args
    assert "/-/ready" in c.inputs["healthcheck"]["tests"][1]
    assert {s.container(n.name).urn for n in exporters(s.topo)} <= set(c.dependencies)


@stacks
def test_kafka_loads_the_jmx_agent_in_the_broker_jvm_only(snapshots, stack):
    s = snapshots[stack]
    for node in s.topo.nodes("kafka"):
        c = s.container(node.name)
        script = script_of(c)
        agent = (f"-javaagent:/opt/datakit/jmx/jmx_prometheus_javaagent.jar=0.0.0.0:"
                 f"{node.metrics_port}:/opt/datakit/jmx/jmx-exporter.yml")
        export = f'export KAFKA_OPTS="${{KAFKA_OPTS:-}} {agent}"'
        # After the format (its JVM would bind the port too), just before the broker.
        assert script.index("kafka-storage.sh format") < script.index(export) < \
            script.index("exec /opt/kafka/bin/kafka-server-start.sh")
        assert "KAFKA_OPTS" not in env_of(c)  # the health probe's JVM runs without it
        assert "kafka.server:type=ReplicaManager" in upload(c, "/opt/datakit/jmx/jmx-exporter.yml")
        if stack != "prod":
            assert node.metrics_port in [p["internal"] for p in c.inputs["ports"]]
    assert "javaagent" not in script_of(s.container("kafka-topics"))


def _dev(**metrics) -> dict:
    config = copy.deepcopy(dev_config())
    config["datakit:metrics"] = {**config.get("datakit:metrics", {}), **metrics}
    return config


def test_metrics_off_makes_no_metrics_containers_and_no_agent():
    topo = from_config(_dev(enabled=False), stack="dev", memory_total=PLENTY)
    s = build_snapshot(topo)
    names = {c.name for c in s.containers}
    assert names == {n.name for n in topo.nodes()} | {"kafka-topics"}
    for node in topo.nodes("kafka"):
        c = s.container(node.name)
        assert "javaagent" not in script_of(c)
        assert c.inputs["image"] == f"sha256-of-{topo.docker.images.kafka}"
    assert s.stack_outputs.endpoints.metrics is None


def test_a_missing_jmx_agent_fails_before_any_container(monkeypatch, tmp_path):
    monkeypatch.setenv("DATAKIT_CACHE", str(tmp_path))
    snapshot = Snapshot(topo=None)  # type: ignore[arg-type]
    with pytest.raises(DatakitError, match="JMX exporter javaagent is missing.*bootstrap"):
        run_program_from_config(dev_config(), snapshot)
    assert not [r for r in snapshot.resources if r.type.startswith("docker:")]


def test_prometheus_may_have_its_own_docker_host_and_an_exporter_may_not():
    config = copy.deepcopy(dev_config())
    config["datakit:docker"]["host"] = "ssh://deploy@data.internal"
    config["datakit:docker"]["node_hosts"] = {"prometheus": "ssh://deploy@monitor.internal"}
    topo = from_config(config, stack="dev", memory_total=PLENTY)
    assert topo.metrics_nodes()[-1].docker_host == "ssh://deploy@monitor.internal"
    assert topo.metrics_nodes()[0].docker_host == "ssh://deploy@data.internal"
    config["datakit:docker"]["node_hosts"] = {"pg-1-exporter": "ssh://deploy@x"}
    with pytest.raises(TopologyError) as err:
        from_config(config, stack="dev", memory_total=PLENTY)
    assert any('node_hosts["pg-1-exporter"]' in line for line in err.value.lines)
