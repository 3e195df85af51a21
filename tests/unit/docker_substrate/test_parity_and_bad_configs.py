"""The docker and local substrates give one topology the same nodes and endpoint shape;
a bad config stops the program before it registers any resource."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from datakit.errors import DatakitError
from datakit.paths import PROJECT_DIR
from datakit.topology import TopologyError, from_config

from .conftest import PLENTY, Snapshot, build_snapshot, dev_config, run_program_from_config


def shape(dsn: str) -> str:
    """A DSN with its host names blanked: what stays the same across substrates."""
    return re.sub(r"host=\S+", "host=H", dsn)


# One process-exporter reads every node's /proc on the local machine; a docker stack's
# nodes are spread over hosts, where it has no such view.
LOCAL_ONLY = {"process-exporter"}


def test_local_and_docker_make_the_same_nodes_and_endpoint_shape():
    config = dev_config()
    docker_topo = from_config(config, stack="dev", memory_total=PLENTY)
    local_topo = from_config({**config, "datakit:substrate": "local"}, stack="dev",
                             memory_total=PLENTY)
    # Both exports validated by the outputs schema (conftest.build_snapshot).
    docker = build_snapshot(docker_topo).stack_outputs
    local = build_snapshot(local_topo).stack_outputs

    def nodes(out):
        return [(n.service, n.role, n.name, n.port, n.ports) for n in out.nodes
                if n.name not in LOCAL_ONLY]

    def ports(hostports: list[str]) -> list[str]:
        return [p.split(":")[1] for p in hostports]

    assert nodes(docker) == nodes(local)
    assert [n.name for n in local.of("etcd")] == ["etcd-1", "etcd-2", "etcd-3"]

    def rest_ports(out):
        return [n.rest_url and n.rest_url.rsplit(":", 1)[1] for n in out.nodes
                if n.name not in LOCAL_ONLY]

    assert rest_ports(docker) == rest_ports(local)
    assert all(rest_ports(local)[:3])
    for key in ("cluster", "namespace", "rest_user"):
        assert getattr(docker.endpoints.postgres, key) == getattr(local.endpoints.postgres, key)
    assert ports(docker.endpoints.postgres.dcs) == ports(local.endpoints.postgres.dcs)
    assert docker.model_fields_set == local.model_fields_set
    for service in ("postgres", "redis", "kafka"):
        assert getattr(docker.endpoints, service).model_fields_set == getattr(
            local.endpoints, service).model_fields_set
    d, lo = docker.endpoints, local.endpoints
    # TLS is the local substrate's alone so far: its DSNs add verify-full and the CA.
    tls = f" sslmode=verify-full sslrootcert={local.tls.ca_path}"
    assert lo.postgres.write_dsn.endswith(tls) and local.tls.enabled and not docker.tls.enabled
    assert shape(d.postgres.write_dsn) == shape(lo.postgres.write_dsn.removesuffix(tls))
    assert shape(d.postgres.read_dsn) == shape(lo.postgres.read_dsn.removesuffix(tls))
    assert ports(d.redis.sentinels) == ports(lo.redis.sentinels)
    assert ports(d.redis.seeds) == ports(lo.redis.seeds)
    assert ports(d.kafka.bootstrap_servers.split(",")) == ports(
        lo.kafka.bootstrap_servers.split(","))
    assert docker.secrets.model_fields_set == local.secrets.model_fields_set
    assert {n.handle.kind for n in docker.nodes} == {"docker"}
    assert {n.handle.kind for n in local.nodes} == {"local"}


def test_local_and_docker_make_the_same_metrics_nodes_and_endpoints_shape():
    config = dev_config()
    docker = build_snapshot(from_config(config, stack="dev", memory_total=PLENTY)).stack_outputs
    local = build_snapshot(from_config({**config, "datakit:substrate": "local"}, stack="dev",
                                       memory_total=PLENTY)).stack_outputs

    def metrics_nodes(out):
        return [(n.service, n.role, n.name, n.port, n.ports) for n in out.nodes
                if n.service in ("exporter", "prometheus") and n.name not in LOCAL_ONLY]

    assert metrics_nodes(docker) == metrics_nodes(local)
    assert len(metrics_nodes(local)) == 9 + 1  # pg, redis and sentinel exporters, Prometheus
    assert "process-exporter" in {n.name for n in local.nodes}
    d, lo = docker.endpoints.metrics, local.endpoints.metrics
    assert d is not None and lo is not None
    assert d.model_fields_set == lo.model_fields_set

    def targets(m):  # the address's host is the substrate's; the job, node and port are not
        return [(t.job, t.node, t.address.rsplit(":", 1)[1]) for t in m.targets
                if t.node not in LOCAL_ONLY]

    assert targets(d) == targets(lo)
    assert {job for job, _node, _port in targets(lo)} == {
        "postgres", "redis", "sentinel", "kafka", "patroni", "etcd", "prometheus"}
    assert d.prometheus_url.rsplit(":", 1)[1] == lo.prometheus_url.rsplit(":", 1)[1]
    assert (d.scrape_interval_s, d.postgres_user) == (lo.scrape_interval_s, lo.postgres_user)
    assert docker.secrets.postgres.monitor and local.secrets.postgres.monitor


BAD = [
    ("images", {"postgres": "postgres:latest"}, "datakit:docker.images.postgres"),
    ("images", {"kafka": "apache/kafka:3.9.0"}, "datakit:docker.images.kafka"),
    ("host", "http://docker.internal", "datakit:docker.host"),
    ("node_hosts", {"pg-9": "ssh://deploy@x"}, 'datakit:docker.node_hosts["pg-9"]'),
    ("resources", {"kafka": {"memory": "512MB"}}, "datakit:docker.resources.kafka.memory"),
    ("publish", ["postgres", "mysql"], "datakit:docker.publish"),
]


@pytest.mark.parametrize(("key", "value", "named"), BAD, ids=[b[2].split(":")[1] for b in BAD])
def test_a_bad_docker_config_fails_before_any_resource(key, value, named):
    config = copy.deepcopy(dev_config())
    config["datakit:docker"][key] = value
    snapshot = Snapshot(topo=None)  # type: ignore[arg-type]
    with pytest.raises(TopologyError) as err:
        run_program_from_config(config, snapshot)
    assert any(named in line and "dev" in line for line in err.value.lines), err.value.lines
    assert snapshot.resources == []


def test_the_shipped_dev_config_runs_through_the_same_path():
    snapshot = run_program_from_config(dev_config())
    # 15 nodes (3 of them etcd), 9 exporters, Prometheus, the topic and monitor-role jobs
    assert len(snapshot.containers) == 27


def test_a_stack_spanning_hosts_with_a_node_on_the_local_engine_is_refused():
    config = copy.deepcopy(dev_config())
    config["datakit:docker"]["node_hosts"] = {"pg-2": "ssh://deploy@data-2"}
    snapshot = Snapshot(topo=None)  # type: ignore[arg-type]
    with pytest.raises(DatakitError, match="pg-1.*local engine"):
        run_program_from_config(config, snapshot)
    assert not [r for r in snapshot.resources if r.type.startswith("docker:")]


def prod_config() -> dict:
    return yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.prod.yaml").read_text())["config"]


def test_tls_off_on_a_stack_that_is_not_disposable_fails_before_any_resource():
    config = {**prod_config(), "datakit:tls": {"enabled": False}}
    snapshot = Snapshot(topo=None)  # type: ignore[arg-type]
    with pytest.raises(TopologyError) as err:
        run_program_from_config(config, snapshot, stack="prod")
    assert any(line.startswith("stack prod: datakit:tls.enabled: false on a stack that is not "
                               "disposable") for line in err.value.lines), err.value.lines
    assert snapshot.resources == []


def test_tls_off_on_a_disposable_stack_is_said_out_loud(caplog):
    config = {**dev_config(), "datakit:tls": {"enabled": False}}
    run_program_from_config(config)
    assert "stack dev: TLS is off (datakit:tls.enabled false)" in caplog.text
