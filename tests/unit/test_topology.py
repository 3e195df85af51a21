"""The topology: every shipped stack loads; every bad config is one line naming stack and key."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from datakit.errors import DatakitError
from datakit.paths import PROJECT_DIR
from datakit.topology import (
    TopologyError,
    from_config,
    from_pulumi_config,
    load,
    memory_budget,
    memory_total,
    parse_duration_ms,
    parse_size,
    port_sources,
)

GiB = 1024**3
PLENTY = 64 * GiB
STACKS = ("local", "dev", "staging", "prod")


def local_config() -> dict:
    text = (PROJECT_DIR / "stacks" / "Pulumi.local.yaml").read_text()
    return yaml.safe_load(text)["config"]


def with_change(path: str, value, config: dict | None = None) -> dict:
    """The local stack's config with one value set: path like `postgres.settings.nodes`
    (`kafka.topics.0.partitions` for list items)."""
    config = copy.deepcopy(config if config is not None else local_config())
    first, *rest = path.split(".")
    node = config.setdefault(f"datakit:{first}", {})
    if not rest:
        config[f"datakit:{first}"] = value
        return config
    for seg in rest[:-1]:
        node = node[int(seg)] if seg.isdigit() else node.setdefault(seg, {})
    node[int(rest[-1]) if rest[-1].isdigit() else rest[-1]] = value
    return config


def problems_of(config: dict, stack: str = "local", memory: int = PLENTY) -> list[str]:
    with pytest.raises(TopologyError) as err:
        from_config(config, stack=stack, memory_total=memory)
    return err.value.lines


# --- the shipped stacks ---------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stack_loads_and_validates(stack):
    topology = load(stack, PROJECT_DIR, memory_total=memory_total())
    assert topology.name == stack
    assert {t.name for t in topology.kafka.topics} == {"ms.agent.events", "ms.system.metrics"}
    assert topology.postgres.settings.password_encryption == "scram-sha-256"
    assert topology.kafka.unclean_leader_election is False


def test_local_stack_is_the_ha_data_layer_on_loopback_ports():
    t = load("local", PROJECT_DIR)
    assert (t.substrate, t.disposable) == ("local", True)
    assert (t.postgres.synchronous_standbys, t.postgres.patroni.synchronous_mode_strict) == (
        1, True)
    assert t.redis.mode == "sentinel"
    assert (t.redis.sentinel.count, t.redis.sentinel.quorum) == (3, 2)
    assert t.redis.sentinel.down_after_ms == 1500  # the floor: fast drills, no double failover
    topics = {x.name: x for x in t.kafka.topics}
    assert topics["ms.agent.events"].partitions == 12
    assert topics["ms.agent.events"].retention_ms == 7 * 86_400_000
    assert topics["ms.system.metrics"].partitions == 6
    assert topics["ms.system.metrics"].retention_ms == 3 * 86_400_000
    assert all(x.replication_factor == 3 and x.min_insync_replicas == 2 for x in topics.values())
    assert 512 * 1024**2 <= t.kafka.heap <= 768 * 1024**2
    assert all(64000 <= port <= 64999 for _key, _node, port in port_sources(t))
    assert sum(memory_budget(t).values()) < 4 * GiB


def test_stacks_grow_from_dev_to_prod_and_only_prod_keeps_its_data():
    dev, staging, prod = (load(s, PROJECT_DIR) for s in ("dev", "staging", "prod"))
    assert all(t.substrate == "docker" for t in (dev, staging, prod))
    for size in (
        lambda t: t.postgres.settings.shared_buffers,
        lambda t: t.kafka.heap,
        lambda t: t.redis.settings.maxmemory,
    ):
        assert size(dev) < size(staging) < size(prod)
    assert (dev.disposable, staging.disposable, prod.disposable) == (True, True, False)


# --- the node list --------------------------------------------------------------------


def test_nodes_carry_names_initial_roles_and_ports():
    t = load("local", PROJECT_DIR)
    summary = [(n.service, n.name, n.initial_role, n.port, n.replica_of) for n in t.nodes()]
    assert summary == [
        ("postgres", "pg-1", "primary", 64100, None),
        ("postgres", "pg-2", "replica", 64101, "pg-1"),
        ("postgres", "pg-3", "replica", 64102, "pg-1"),
        ("redis", "redis-1", "master", 64200, None),
        ("redis", "redis-2", "replica", 64201, "redis-1"),
        ("redis", "redis-3", "replica", 64202, "redis-1"),
        ("sentinel", "sentinel-1", "sentinel", 64300, None),
        ("sentinel", "sentinel-2", "sentinel", 64301, None),
        ("sentinel", "sentinel-3", "sentinel", 64302, None),
        ("kafka", "kafka-1", "broker+controller", 64500, None),
        ("kafka", "kafka-2", "broker+controller", 64501, None),
        ("kafka", "kafka-3", "broker+controller", 64502, None),
        ("etcd", "etcd-1", "member", 64700, None),
        ("etcd", "etcd-2", "member", 64701, None),
        ("etcd", "etcd-3", "member", 64702, None),
    ]
    assert [n.ports() for n in t.nodes("kafka")][0] == {"client": 64500, "controller": 64600,
                                                        "metrics": 64550}  # its JVM's agent
    assert t.node("kafka-3").index == 3
    metrics = [(n.service, n.name, n.port, n.serves) for n in t.metrics_nodes()]
    assert metrics[0] == ("exporter", "pg-1-exporter", 64250, "pg-1")
    assert metrics[-1] == ("prometheus", "prometheus", 64900, None)
    assert [m[1] for m in metrics if m[3]] == [
        f"{n.name}-exporter" for n in t.nodes() if n.service in ("postgres", "redis", "sentinel")]


def test_metrics_off_makes_no_metrics_nodes_and_a_bad_retention_is_named():
    t = from_config(with_change("metrics.enabled", False), stack="m", memory_total=PLENTY)
    assert t.metrics_nodes() == () and t.node("kafka-1").metrics_port is None
    lines = problems_of(with_change("metrics.retention", "3 hours"))
    assert any("datakit:metrics.retention" in line for line in lines), lines


def test_redis_cluster_mode_has_masters_replicas_bus_ports_and_no_sentinels():
    t = from_config(with_change("redis.mode", "cluster"), stack="local", memory_total=PLENTY)
    redis = t.nodes("redis")
    assert [n.initial_role for n in redis] == ["master"] * 3 + ["replica"] * 3
    assert [n.replica_of for n in redis[3:]] == ["redis-1", "redis-2", "redis-3"]
    assert [n.bus_port for n in redis] == list(range(64400, 64406))
    assert t.nodes("sentinel") == ()


def test_docker_nodes_name_their_own_host_or_the_stacks():
    prod = load("prod", PROJECT_DIR)
    assert prod.node("pg-1").docker_host == "ssh://deploy@data-1.prod.internal"
    assert prod.node("pg-3").docker_host == "ssh://deploy@data-3.prod.internal"
    assert load("local", PROJECT_DIR).node("pg-3").docker_host is None


def test_local_nodes_have_a_loopback_address_each_by_service_and_index():
    local = load("local", PROJECT_DIR)
    hosts = {n.name: n.host for n in local.nodes()}
    assert hosts["pg-2"] == "127.10.1.2" and hosts["redis-1"] == "127.10.2.1"
    assert hosts["sentinel-3"] == "127.10.3.3" and hosts["kafka-3"] == "127.10.4.3"
    assert hosts["etcd-1"] == "127.10.5.1"
    assert len(set(hosts.values())) == len(hosts)
    assert all(m.host is None for m in local.metrics_nodes())  # they watch from 127.0.0.1
    moved = from_config(with_change("local.address_base", "127.44.0.0"), stack="local",
                        memory_total=PLENTY)
    assert moved.node("pg-2").host == "127.44.1.2"
    # scaling keeps every other node's address
    more = from_config(with_change("postgres.nodes", 5), stack="local", memory_total=PLENTY)
    assert more.node("redis-1").host == "127.10.2.1" and more.node("pg-5").host == "127.10.1.5"
    assert load("prod", PROJECT_DIR).node("pg-1").host is None  # docker: its own network


@pytest.mark.parametrize("base", ["10.0.0.0", "127.0.0.0", "127.10.0.1", "127.10.5.0",
                                  "localhost", "127.300.0.0"])
def test_an_address_base_that_is_not_a_loopback_16_of_its_own_is_named(base):
    lines = problems_of(with_change("local.address_base", base))
    assert any("local.address_base" in line and repr(base) in line for line in lines), lines


def test_scaling_replicas_changes_only_the_node_list_tail():
    one = from_config(with_change("postgres.nodes", 2), stack="local", memory_total=PLENTY)
    assert [n.name for n in one.nodes("postgres")] == ["pg-1", "pg-2"]
    assert [n.name for n in one.nodes("etcd")] == ["etcd-1", "etcd-2", "etcd-3"]


def test_settings_render_for_the_servers():
    t = load("local", PROJECT_DIR)
    gucs = t.postgres.settings.gucs()
    assert gucs["shared_buffers"] == "128MB"
    assert gucs["hot_standby_feedback"] == "on"
    assert gucs["wal_log_hints"] == "on"
    assert t.redis.settings.directives()["min-replicas-to-write"] == "1"
    assert t.redis.settings.directives()["appendonly"] == "yes"
    assert t.kafka.heap_opts() == "-Xms512m -Xmx512m"
    assert t.kafka.server_properties()["unclean.leader.election.enable"] == "false"


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [("256MB", 256 * 1024**2), ("512m", 512 * 1024**2), ("1GB", GiB), ("64kB", 65536), (100, 100)],
)
def test_sizes_parse_to_bytes(text, nbytes):
    assert parse_size(text) == nbytes


@pytest.mark.parametrize(
    ("text", "ms"), [("7d", 604_800_000), ("3d", 259_200_000), ("30s", 30_000), ("500ms", 500)]
)
def test_durations_parse_to_milliseconds(text, ms):
    assert parse_duration_ms(text) == ms


# --- bad input ------------------------------------------------------------------------

BAD = [
    # (change, value, key in the line, words in the line)
    ("postgres.nodes", 0, "postgres.nodes", "allowed: > 0"),
    ("postgres.nodes", -2, "postgres.nodes", "allowed: > 0"),
    ("redis.nodes", 0, "redis.nodes", "allowed: > 0"),
    ("redis.sentinel.count", 0, "redis.sentinel.count", "allowed: > 0"),
    ("kafka.nodes", -1, "kafka.nodes", "allowed: > 0"),
    ("kafka.topics.0.partitions", 0, "kafka.topics[0].partitions", "allowed: > 0"),
    ("postgres.pool.max_size", 0, "postgres.pool.max_size", "allowed: > 0"),
    ("redis.sentinel.quorum", 4, "redis.sentinel.quorum", "larger than the 3 Sentinels"),
    ("kafka.default_replication_factor", 4, "kafka.default_replication_factor", "3 brokers"),
    ("kafka.min_insync_replicas", 4, "kafka.min_insync_replicas", "3 brokers"),
    ("kafka.topics.1.replication_factor", 5, "kafka.topics[1].replication_factor", "3 brokers"),
    (
        "kafka.topics.0.min_insync_replicas",
        4,
        "kafka.topics[0].min_insync_replicas",
        "ms.agent.events",
    ),
    ("postgres.synchronous_standbys", 3, "postgres.synchronous_standbys", "only 2 replicas"),
    ("postgress", {"nodes": 3}, "postgress", "unknown key; allowed: baselines, data_dir"),
    ("postgres.settings.shard_buffers", "1GB", "postgres.settings.shard_buffers", "unknown key"),
    ("kafka.topics.1.retentoin", "3d", "kafka.topics[1].retentoin", "unknown key"),
    ("postgres.port_base", 5432, "postgres.port_base", "61000-65535"),
    ("kafka.port_base", 40000, "kafka.port_base", "ephemeral"),
    ("redis.port_base", 65534, "redis.port_base", "port 65536 is not usable"),
    ("kafka.controller_port_base", 64101, "kafka.controller_port_base", "collides with pg-2"),
    ("postgres.settings.shared_buffers", "256XB", "postgres.settings.shared_buffers", "bad size"),
    ("kafka.heap", "lots", "kafka.heap", "bad size"),
    ("kafka.topics.0.retention", "7 fortnights", "kafka.topics[0].retention", "bad duration"),
    ("redis.sentinel.down_after_ms", "soon", "redis.sentinel.down_after_ms", "bad duration"),
    ("redis.sentinel.down_after_ms", 1000, "redis.sentinel.down_after_ms", ">= 1500"),
    ("substrate", "k8s", "substrate", "'local' or 'docker'"),
    ("kafka.unclean_leader_election", True, "kafka.unclean_leader_election", "allowed: false"),
    (
        "postgres.settings.password_encryption",
        "md5",
        "postgres.settings.password_encryption",
        "scram-sha-256",
    ),
    ("postgres.settings.extra.port", 5432, "postgres.settings.extra.port", "set by datakit"),
    ("postgres.migrations", "no/such/dir", "postgres.migrations", "folder no/such/dir not found"),
    ("redis.settings.min_replicas_to_write", 3, "redis.settings.min_replicas_to_write", "refused"),
    ("baselines.rto_s.postgres-failovr", 3, 'baselines.rto_s["postgres-failovr"]', "allowed"),
    ("docker.images.postgres", "postgres:latest", "docker.images.postgres", "not pinned"),
    ("docker.images.postgres", "postgres:16.4", "docker.images.postgres", "not PostgreSQL 15"),
    ("docker.host", "http://docker", "docker.host", "DOCKER_HOST URL"),
    ("docker.node_hosts", {"pg-9": "ssh://x"}, 'docker.node_hosts["pg-9"]', "no such node"),
]


@pytest.mark.parametrize(("change", "value", "key", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_one_line_naming_stack_and_key(change, value, key, words):
    lines = problems_of(with_change(change, value))
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"stack local: datakit:{key}: ")
    assert "; allowed: " in lines[0]
    assert words in lines[0]


def test_redis_cluster_needs_three_masters():
    config = with_change("redis.cluster.masters", 2, with_change("redis.mode", "cluster"))
    (line,) = problems_of(config)
    assert line.startswith("stack local: datakit:redis.cluster.masters: ")


def test_memory_budget_larger_than_the_machine_names_the_biggest_part():
    (line,) = problems_of(local_config(), memory=1 * GiB)
    assert line.startswith("stack local: datakit:kafka.heap: memory budget 2.4 GiB")
    assert "+ Patroni 3 x 64.0 MiB + etcd 3 x 64.0 MiB)" in line
    assert "larger than this machine's 1.0 GiB" in line


def test_docker_stacks_are_not_held_to_this_machines_memory():
    config = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.prod.yaml").read_text())["config"]
    assert from_config(config, stack="prod", memory_total=1 * GiB).name == "prod"


def test_docker_container_memory_must_hold_the_service():
    config = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.prod.yaml").read_text())["config"]
    config["datakit:docker"]["resources"]["kafka"]["memory"] = "2GB"
    (line,) = problems_of(config, stack="prod")
    assert line.startswith("stack prod: datakit:docker.resources.kafka.memory: 2.0 GiB")


def test_several_problems_are_reported_together():
    config = with_change("postgres.synchronous_standbys", 5)
    config = with_change("redis.sentinel.quorum", 9, config)
    config = with_change("kafka.min_insync_replicas", 7, config)
    config = with_change("kafka.topics.0.replication_factor", 4, config)
    config = with_change("baselines.min_rps", -1, config)
    config = with_change("postgres.settings.shared_buffers", "huge", config)
    config["datakit:typo"] = 1
    lines = problems_of(config)
    keys = sorted(line.split(": ")[1] for line in lines)
    assert keys == [
        "datakit:baselines.min_rps",
        "datakit:kafka.min_insync_replicas",
        "datakit:kafka.topics[0].replication_factor",
        "datakit:postgres.settings.shared_buffers",
        "datakit:postgres.synchronous_standbys",
        "datakit:redis.sentinel.quorum",
        "datakit:typo",
    ]
    assert all(line.startswith("stack local: ") and "\n" not in line for line in lines)


def test_topology_error_is_a_datakit_error_with_one_line_per_problem():
    with pytest.raises(DatakitError) as err:
        from_config(with_change("kafka.nodes", 0), stack="local", memory_total=PLENTY)
    assert str(err.value) == "\n".join(err.value.lines)


# --- reading stack files and Pulumi config --------------------------------------------


def write_stack(project: Path, name: str, doc: dict) -> None:
    (project / "stacks").mkdir(exist_ok=True)
    (project / "stacks" / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(doc))


def test_missing_stack_file_is_one_line_naming_the_file(tmp_path):
    write_stack(tmp_path, "local", {"config": {}})
    with pytest.raises(TopologyError) as err:
        load("qa", tmp_path)
    (line,) = err.value.lines
    assert line == (
        f"stack qa: {tmp_path / 'stacks' / 'Pulumi.qa.yaml'}: no such stack file; allowed: local"
    )


def test_engine_lines_and_other_namespaces_are_ignored(tmp_path):
    doc = {
        "encryptionsalt": "v1:abc:def",
        "secretsprovider": "passphrase",
        "config": {"datakit:substrate": "local", "aws:region": "eu-west-1", "pulumi:tags": {}},
    }
    write_stack(tmp_path, "mini", doc)
    assert load("mini", tmp_path, memory_total=PLENTY).postgres.nodes == 3


def test_stack_config_dir_comes_from_pulumi_yaml(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: datakit\nruntime: python\nstackConfigDir: envs\n")
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "Pulumi.x.yaml").write_text("config:\n  datakit:disposable: true\n")
    assert load("x", tmp_path, memory_total=PLENTY).disposable is True


def test_invalid_yaml_is_one_line(tmp_path):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.broken.yaml").write_text("config:\n  datakit:postgres: [\n")
    with pytest.raises(TopologyError, match=r"^stack broken: .*not valid YAML at line \d+"):
        load("broken", tmp_path)


def test_from_config_takes_bare_keys_as_pulumi_config_gives_them():
    bare = {key.removeprefix("datakit:"): value for key, value in local_config().items()}
    assert from_config(bare, stack="local", memory_total=PLENTY) == load("local", PROJECT_DIR)


def test_from_pulumi_config_reads_the_datakit_namespace(monkeypatch):
    import pulumi
    from pulumi.runtime import config as runtime_config

    flat = {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in local_config().items()
    }
    flat["aws:region"] = "eu-west-1"
    monkeypatch.setattr(pulumi, "get_stack", lambda: "local")
    token = runtime_config.CONFIG.set(flat)
    try:
        topology = from_pulumi_config(memory_total=PLENTY)
    finally:
        runtime_config.CONFIG.reset(token)
    assert topology == load("local", PROJECT_DIR)


def test_memory_total_reads_this_machine():
    assert memory_total() > 256 * 1024**2
