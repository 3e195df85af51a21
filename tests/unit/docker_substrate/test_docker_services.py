"""The docker substrate's services, proven with Pulumi's unit-test mocks for dev, staging
and prod: Patroni on the etcd containers, the Redis group and its Sentinels, the Kafka
quorum and its topics, and the migrations, each wired and ordered as the stack says.
(test_docker_stacks.py proves the containers themselves: images, hosts, limits, secrets.)"""

from __future__ import annotations

import yaml

from .conftest import BUNDLED, env_of, script_of, stacks, unwrap

# --- PostgreSQL ----------------------------------------------------------------------------


def patroni_yml(container) -> dict:
    (upload,) = [u for u in container.inputs["uploads"]
                 if u["file"] == "/etc/patroni/patroni.yml"]
    return yaml.safe_load(upload["content"])


@stacks
def test_postgres_members_run_patroni_on_the_etcd_containers(snapshots, stack):
    s = snapshots[stack]
    pg = s.topo.postgres
    etcd_urns = {s.container(n.name).urn for n in s.topo.nodes("etcd")}
    for node in s.topo.nodes("postgres"):
        c = s.container(node.name)
        assert unwrap(c.inputs["command"]) == ["patroni", "/etc/patroni/patroni.yml"]
        assert c.inputs["user"] == "postgres"
        conf = patroni_yml(c)
        assert conf["scope"] == s.topo.patroni_scope and conf["name"] == node.name
        host = (node.docker_host.split("@")[1] if stack == "prod"
                else f"datakit-{stack}-{node.name}")
        assert conf["postgresql"]["listen"] == f"0.0.0.0:{node.port}"
        assert conf["postgresql"]["connect_address"] == f"{host}:{node.port}"
        assert conf["restapi"]["connect_address"] == f"{host}:{pg.rest_port(node.name)}"
        etcd_hosts = conf["etcd3"]["hosts"]
        assert [h.split(":")[1] for h in etcd_hosts] == [str(n.port)
                                                          for n in s.topo.nodes("etcd")]
        dcs = conf["bootstrap"]["dcs"]
        assert dcs["synchronous_mode"] == "quorum"
        assert dcs["synchronous_node_count"] == pg.synchronous_standbys
        assert dcs["ttl"] == pg.patroni.ttl and dcs["loop_wait"] == pg.patroni.loop_wait
        assert dcs["postgresql"]["parameters"]["shared_buffers"] == \
            pg.settings.gucs()["shared_buffers"]
        assert conf["bootstrap"]["post_bootstrap"] == "/etc/patroni/post-bootstrap.sh"
        assert conf["postgresql"]["parameters"]["archive_mode"] == "on"
        assert all(line.endswith("scram-sha-256") for line in conf["postgresql"]["pg_hba"]
                   if line.startswith("host"))
        # No password in the file: Patroni reads them from its (secret) environment.
        assert "password" not in conf["postgresql"]["authentication"]["superuser"]
        assert "authentication" not in conf["restapi"]
        env = env_of(c)
        assert {"PATRONI_SUPERUSER_PASSWORD", "PATRONI_REPLICATION_PASSWORD",
                "PATRONI_RESTAPI_PASSWORD", "DATAKIT_APP_PASSWORD"} <= set(env)
        assert env["DATAKIT_APP_USER"] == pg.app_user and env["DATAKIT_DATABASE"] == pg.database
        assert etcd_urns <= set(c.dependencies)
        assert c.inputs["volumes"][0]["containerPath"] == "/var/lib/postgresql/data"
        assert "/readiness" in c.inputs["healthcheck"]["tests"][1]


@stacks
def test_pg_1_initialises_and_the_others_clone_it(snapshots, stack):
    s = snapshots[stack]
    first = s.container("pg-1")
    (script,) = [u["content"] for u in first.inputs["uploads"]
                 if u["file"] == "/etc/patroni/post-bootstrap.sh"]
    assert "CREATE ROLE" in script and "$DATAKIT_APP_PASSWORD" in script
    for name in ("pg-2", "pg-3"):
        assert first.urn in s.container(name).dependencies


# --- etcd ------------------------------------------------------------------------------------


@stacks
def test_etcd_members_form_one_static_cluster_of_the_stack(snapshots, stack):
    s = snapshots[stack]
    clusters = set()
    for node in s.topo.nodes("etcd"):
        cmd = unwrap(s.container(node.name).inputs["command"])
        args = dict(zip(cmd[1::2], cmd[2::2], strict=False))
        assert args["--name"] == node.name
        assert args["--initial-cluster-token"] == f"datakit-{stack}"
        assert args["--listen-client-urls"] == f"http://0.0.0.0:{node.port}"
        assert args["--heartbeat-interval"] == str(s.topo.etcd.heartbeat_ms)
        clusters.add(args["--initial-cluster"])
    (cluster,) = clusters
    assert cluster.count("=http://") == s.topo.etcd.nodes


# --- Redis -----------------------------------------------------------------------------------


@stacks
def test_redis_replicas_follow_the_master_with_auth(snapshots, stack):
    s = snapshots[stack]
    master = s.container("redis-1")
    master_conf = script_of(master)
    assert 'requirepass "${DATAKIT_REDIS_PASSWORD}"' in master_conf
    assert "replicaof" not in master_conf
    assert f"maxmemory {s.topo.redis.settings.directives()['maxmemory']}" in master_conf
    for name in ("redis-2", "redis-3"):
        c = s.container(name)
        conf = script_of(c)
        host = "data-1.prod.internal" if stack == "prod" else f"datakit-{stack}-redis-1"
        assert f"replicaof {host} 64200" in conf
        assert 'masterauth "${DATAKIT_REDIS_PASSWORD}"' in conf
        assert "if [ ! -s /data/redis.conf ]" in conf  # Redis owns the file after a failover
        assert {"DATAKIT_REDIS_PASSWORD", "REDISCLI_AUTH"} <= set(env_of(c))
        assert "master_link_status:up" in c.inputs["healthcheck"]["tests"][1]
        assert master.urn in c.dependencies


@stacks
def test_sentinels_watch_the_master_after_every_data_node(snapshots, stack):
    s = snapshots[stack]
    spec = s.topo.redis
    data = {s.container(n.name).urn for n in s.topo.nodes("redis")}
    host = "data-1.prod.internal" if stack == "prod" else f"datakit-{stack}-redis-1"
    for node in s.topo.nodes("sentinel"):
        c = s.container(node.name)
        conf = script_of(c)
        assert (f"sentinel monitor {spec.master_name} {host} 64200 {spec.sentinel.quorum}"
                in conf)
        assert f"down-after-milliseconds {spec.master_name} {spec.sentinel.down_after_ms}" in conf
        assert 'sentinel auth-pass datakit "${DATAKIT_REDIS_PASSWORD}"' in conf
        assert 'requirepass "${DATAKIT_SENTINEL_PASSWORD}"' in conf
        assert "--sentinel" in conf
        assert data <= set(c.dependencies)


# --- Kafka -----------------------------------------------------------------------------------


@stacks
def test_kafka_nodes_share_one_cluster_id_and_voter_list(snapshots, stack):
    s = snapshots[stack]
    ids, voters = set(), set()
    for node in s.topo.nodes("kafka"):
        c = s.container(node.name)
        script = script_of(c)
        props = dict(line.split("=", 1) for line in script.splitlines()
                     if "=" in line and line.split("=", 1)[0] in (
                         "node.id", "controller.quorum.voters", "advertised.listeners",
                         "process.roles", "inter.broker.listener.name"))
        assert props["node.id"] == str(node.index)
        assert props["process.roles"] == "broker,controller"
        voters.add(props["controller.quorum.voters"])
        ids.add(env_of(c)["DATAKIT_CLUSTER_ID"])
        assert "kafka-storage.sh format" in script and "meta.properties" in script
        assert script.count("--add-scram") == 2  # admin and app, at format
        assert "unclean.leader.election.enable=false" in script
        assert env_of(c)["KAFKA_HEAP_OPTS"] == s.topo.kafka.heap_opts()
    assert len(ids) == 1 and len(voters) == 1
    (voter_list,) = voters
    assert voter_list.count("@") == s.topo.kafka.nodes
    host = "data-1.prod.internal" if stack == "prod" else f"datakit-{stack}-kafka-1"
    assert voter_list.startswith(f"1@{host}:64600")


@stacks
def test_topics_are_created_after_every_broker(snapshots, stack):
    s = snapshots[stack]
    job = s.container("kafka-topics")
    brokers = {s.container(n.name).urn for n in s.topo.nodes("kafka")}
    assert brokers <= set(job.dependencies)
    script = script_of(job)
    for topic in s.topo.kafka.topics:
        assert (f"--create --if-not-exists --topic {topic.name} --partitions "
                f"{topic.partitions} --replication-factor {topic.replication_factor}") in script
        assert f"--entity-name {topic.name}" in script
        assert f"retention.ms={topic.retention_ms}" in script


# --- migrations ---------------------------------------------------------------------------


@stacks
def test_migrations_run_after_the_first_member(snapshots, stack):
    s = snapshots[stack]
    (run,) = [r for r in s.resources if r.name == "migrations"]
    assert s.container("pg-1").urn in run.dependencies
    assert s.by_urn(run.parent).type == "datakit:index:PostgresCluster"
    assert "target_session_attrs=read-write" in run.inputs["dsn"]
    assert "password" not in run.inputs["dsn"]
    # every bundled file's checksum is an input, so a new or edited one shows in preview
    bundled = sorted(p.name for p in BUNDLED.glob("*.sql"))
    assert sorted(run.inputs["files"]) == bundled and len(bundled) >= 14
    assert all(len(digest) == 64 for digest in run.inputs["files"].values())
