"""The docker substrate, proven with Pulumi's unit-test mocks for dev, staging and prod:
what containers are made, from which pinned images, with which command, environment,
health check, volume and network, in which order, and that no secret is stored plain."""

from __future__ import annotations

from pathlib import Path

from datakit.infra import outputs as writer
from datakit.toolchain.versions import pinned
from datakit.topology import load

from .conftest import plain_strings, stacks, unwrap

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
BUILT = "docker:index/image:Image"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
JOBS = ("kafka-topics", "postgres-monitor-role")  # one-shot containers


def every_node(topo):
    """The servers, then the metrics nodes (exporters, Prometheus)."""
    return [*topo.nodes(), *topo.metrics_nodes()]


@stacks
def test_one_container_per_node_plus_the_jobs(snapshots, stack):
    s = snapshots[stack]
    topo = s.topo
    names = sorted(c.name for c in s.containers)
    expected = sorted([n.name for n in every_node(topo)] + list(JOBS))
    assert names == expected
    servers = [c.name for c in s.containers
               if c.name not in JOBS and not c.name.endswith("-exporter") and
               c.name != "prometheus"]
    kinds = {name: name.rsplit("-", 1)[0] for name in servers}
    exporters = [c.name.removesuffix("-exporter") for c in s.containers
                 if c.name.endswith("-exporter")]
    # One exporter per PostgreSQL, Redis and Sentinel node (Kafka's is in its JVM).
    assert sorted(exporters) == sorted(n.name for n in topo.nodes()
                                       if n.service in ("postgres", "redis", "sentinel"))
    assert sum(k == "pg" for k in kinds.values()) == topo.postgres.nodes
    assert sum(k == "redis" for k in kinds.values()) == topo.redis.nodes
    assert sum(k == "sentinel" for k in kinds.values()) == topo.redis.sentinel.count
    assert sum(k == "kafka" for k in kinds.values()) == topo.kafka.nodes
    assert sum(k == "etcd" for k in kinds.values()) == topo.etcd.nodes
    # Container names are unique per stack (and carry it, so stacks share an engine).
    docker_names = [c.inputs["name"] for c in s.containers]
    assert len(set(docker_names)) == len(docker_names)
    assert all(n.startswith(f"datakit-{stack}-") for n in docker_names)


@stacks
def test_images_are_the_stacks_pinned_tags(snapshots, stack):
    s = snapshots[stack]
    images = s.topo.docker.images
    pinned = {images.redis, images.kafka, images.etcd, images.postgres_exporter,
              images.redis_exporter, images.prometheus}
    assert {i.inputs["name"] for i in s.of_type(IMAGE)} == pinned
    family = {"redis": images.redis, "sentinel": images.redis, "etcd": images.etcd,
              "prometheus": images.prometheus}
    assert s.container("kafka-topics").inputs["image"] == f"sha256-of-{images.kafka}"
    for c in s.containers:
        if c.name.startswith(("pg-", "kafka-")) and not c.name.endswith("-exporter") or \
                c.name in JOBS:
            continue  # the built PostgreSQL and Kafka images (below) and the jobs
        if c.name.endswith("-exporter"):
            want = images.postgres_exporter if c.name.startswith("pg-") else \
                images.redis_exporter
        else:
            want = family[c.name.split("-")[0]]
        assert c.inputs["image"] == f"sha256-of-{want}", c.name


@stacks
def test_postgres_image_is_built_from_the_pinned_image_plus_pinned_patroni(snapshots, stack):
    s = snapshots[stack]
    built = [i for i in s.of_type(BUILT) if i.name.startswith("image-postgres-patroni")]
    assert len(built) == (3 if stack == "prod" else 1)  # one per Docker host
    patroni = pinned()["PATRONI_VERSION"]
    for image in built:
        assert image.inputs["skipPush"] is True
        assert image.inputs["build"]["args"] == {
            "POSTGRES_IMAGE": s.topo.docker.images.postgres, "PATRONI_VERSION": patroni}
        dockerfile = Path(image.inputs["build"]["dockerfile"]).read_text()
        assert "FROM ${POSTGRES_IMAGE}" in dockerfile
        assert 'patroni[etcd3,psycopg3]==${PATRONI_VERSION}' in dockerfile
        assert image.inputs["imageName"] == f"datakit/postgres-15.8-patroni:{patroni}"
    for name in [n.name for n in s.topo.nodes("postgres")] + ["postgres-monitor-role"]:
        assert s.container(name).inputs["image"] == f"datakit/postgres-15.8-patroni:{patroni}"


@stacks
def test_kafka_image_is_the_pinned_image_plus_the_checked_jmx_agent(snapshots, stack):
    s = snapshots[stack]
    built = [i for i in s.of_type(BUILT) if i.name.startswith("image-kafka-jmx")]
    assert len(built) == (3 if stack == "prod" else 1)  # one per Docker host
    versions = pinned()
    name = f"datakit/kafka-4.1.1-jmx:{versions['JMX_EXPORTER_VERSION']}"
    for image in built:
        assert image.inputs["skipPush"] is True and image.inputs["imageName"] == name
        build = image.inputs["build"]
        assert build["args"] == {"KAFKA_IMAGE": s.topo.docker.images.kafka,
                                 "JMX_EXPORTER_SHA256": versions["JMX_EXPORTER_SHA256"]}
        # The context is tools/build-jmx-exporter's cache dir, with the jar in it.
        assert (Path(build["context"]) / "jmx_prometheus_javaagent.jar").is_file()
        dockerfile = Path(build["dockerfile"]).read_text()
        assert "FROM ${KAFKA_IMAGE}" in dockerfile and "sha256sum -c" in dockerfile
    for node in s.topo.nodes("kafka"):
        assert s.container(node.name).inputs["image"] == name


@stacks
def test_each_stateful_node_has_its_own_named_volume(snapshots, stack):
    s = snapshots[stack]
    volumes = {v.inputs["name"] for v in s.of_type(VOLUME)}
    for node in s.topo.nodes():
        c = s.container(node.name)
        (mount,) = c.inputs["volumes"]
        assert mount["volumeName"] == f"datakit-{stack}-{node.name}-data"
        assert mount["volumeName"] in volumes
    # Prometheus keeps its samples across a new container; exporters and jobs keep nothing.
    (mount,) = s.container("prometheus").inputs["volumes"]
    assert mount == {"volumeName": f"datakit-{stack}-prometheus-data",
                     "containerPath": "/prometheus"}
    for c in s.containers:
        if c.name in JOBS or c.name.endswith("-exporter"):
            assert "volumes" not in c.inputs, c.name


def test_single_host_stacks_share_one_bridge_network(snapshots):
    for stack in ("dev", "staging"):
        s = snapshots[stack]
        (network,) = s.of_type(NETWORK)
        assert network.inputs["name"] == f"datakit-{stack}"
        for c in s.containers:
            (attached,) = c.inputs["networksAdvanced"]
            assert attached["name"] == f"datakit-{stack}"
            assert c.inputs["name"] in attached["aliases"]
            assert "networkMode" not in c.inputs


def test_prod_spans_three_hosts_on_host_networking(snapshots):
    s = snapshots["prod"]
    assert s.of_type(NETWORK) == []
    providers = {p.name: p.inputs["host"] for p in s.of_type("pulumi:providers:docker")}
    assert sorted(providers.values()) == [f"ssh://deploy@data-{i}.prod.internal"
                                          for i in (1, 2, 3)]
    for node in every_node(s.topo):
        c = s.container(node.name)
        assert c.inputs["networkMode"] == "host"
        provider_name = c.provider.split("::")[-2]  # URN::ID of the provider
        assert providers[provider_name] == node.docker_host, node.name
    # An exporter runs on its server's machine; Prometheus on docker.host (data-1).
    for node in s.topo.metrics_nodes():
        want = s.topo.node(node.serves).docker_host if node.serves else s.topo.docker.host
        assert node.docker_host == want, node.name
    # Each host pulls its own copy of each image it runs: redis, etcd and both exporters on
    # every host; Prometheus and Kafka's (for the topic job) on data-1 only.
    assert len(s.of_type(IMAGE)) == 3 * 4 + 2


def test_staging_runs_on_its_ssh_docker_host(snapshots):
    s = snapshots["staging"]
    (provider,) = s.of_type("pulumi:providers:docker")
    assert provider.inputs["host"] == "ssh://deploy@staging-data.internal"
    for r in s.resources:
        if r.type.startswith("docker:index/"):
            assert "docker-deploy-staging-data-internal" in r.provider, r.name


def test_dev_uses_the_default_engine(snapshots):
    s = snapshots["dev"]
    assert s.of_type("pulumi:providers:docker") == []


@stacks
def test_limits_restart_and_health_checks(snapshots, stack):
    s = snapshots[stack]
    res = s.topo.docker.resources
    for node in every_node(s.topo):
        c = s.container(node.name)
        limits = res[node.service]
        assert c.inputs["memory"] == limits.memory // 1024**2
        assert float(c.inputs["cpus"]) == limits.cpus
        assert c.inputs["restart"] == "unless-stopped"
        assert c.inputs["wait"] is True  # `up` waits for healthy: what depends_on relies on
        check = c.inputs["healthcheck"]
        # etcd's image has no shell: its check is exec form.
        assert check["tests"][0] == ("CMD" if node.service == "etcd" else "CMD-SHELL")
        probe_port = 19092 if node.service == "kafka" and stack != "prod" else node.port
        if node.service == "postgres":  # Patroni's readiness, on its REST API
            probe_port = s.topo.postgres.rest_port(node.name)
        assert f"{probe_port}" in " ".join(check["tests"][1:]), node.name
    for name in JOBS:
        job = s.container(name)
        assert job.inputs["restart"] == "no" and job.inputs["mustRun"] is False
        assert job.inputs["attach"] is True


@stacks
def test_published_ports_are_unique_per_docker_host(snapshots, stack):
    s = snapshots[stack]
    seen: dict[tuple[str, int], str] = {}
    for c in s.containers:
        for port in c.inputs.get("ports", []):
            key = (c.provider, port["external"])
            assert key not in seen, f"{c.name} and {seen[key]} both publish {key[1]}"
            seen[key] = c.name
            assert port["ip"] == s.topo.docker.publish_address
    if stack != "prod":
        # dev/staging publish every client port, Patroni's REST API and Kafka's agent
        assert len(seen) == (len(every_node(s.topo)) + s.topo.postgres.nodes
                             + s.topo.kafka.nodes)
    ports = [p for n in every_node(s.topo) for p in n.ports().values()]
    assert len(ports) == len(set(ports))  # host networking needs stack-wide unique ports


# --- secrets, outputs ---------------------------------------------------------------------


@stacks
def test_no_secret_is_stored_in_plain_text(snapshots, stack):
    s = snapshots[stack]
    assert len(s.passwords) == 9  # postgres: 5 (monitor: the exporters), redis 2, kafka 2
    leaks = [(r.type, r.name, path) for r in s.resources
             for path, text in plain_strings(r.inputs)
             for pw in s.passwords if pw in text]
    assert leaks == []
    # ...while the containers do get them, as secret env entries.
    env = [e for c in s.containers for e in unwrap(c.inputs.get("envs", []))]
    assert all(any(pw in e for e in env) for pw in s.passwords)


@stacks
def test_outputs_match_the_schema(snapshots, stack):
    s = snapshots[stack]
    out = s.stack_outputs  # validated by the schema's model (conftest.build_snapshot)
    assert out.model_fields_set == {"stack", "substrate", "disposable", "endpoints", "nodes",
                                    "secrets", "tls"}
    assert out.substrate == "docker" and out.stack == stack
    assert out.tls.enabled is False  # containers take no certificates yet
    assert out.endpoints.model_fields_set == {"postgres", "redis", "kafka", "metrics"}
    assert out.secrets.model_fields_set == {"postgres", "redis", "kafka"}
    assert out.secrets.postgres.monitor
    assert [n.name for n in out.nodes] == [n.name for n in every_node(s.topo)]
    for node, planned in zip(out.nodes, every_node(s.topo), strict=True):
        assert node.model_fields_set == {"service", "role", "name", "host", "port", "ports",
                                         "handle", "testinfra", "rest_url"}
        if node.service == "postgres":
            assert node.rest_url == f"http://{node.host}:{s.topo.postgres.rest_port(node.name)}"
        else:
            assert node.rest_url is None
        container = f"datakit-{stack}-{node.name}"
        assert node.handle.model_dump(exclude_unset=True) == {
            "kind": "docker", "container": container,
            "docker_host": planned.docker_host}
        assert node.testinfra == f"docker://{container}"
    pg = out.endpoints.postgres
    assert pg.write_dsn.endswith("target_session_attrs=read-write connect_timeout=3")
    if stack == "prod":
        assert "host=data-1.prod.internal,data-2.prod.internal,data-3.prod.internal" in (
            pg.write_dsn)
    else:  # published on 127.0.0.1 of the Docker host
        assert pg.write_dsn.startswith("host=127.0.0.1,127.0.0.1,127.0.0.1 "
                                       "port=64100,64101,64102 ")
    assert pg.cluster == f"datakit-{stack}" and pg.dcs_prefix == f"/datakit/datakit-{stack}/"
    assert [d.split(":")[1] for d in pg.dcs] == [str(n.port) for n in s.topo.nodes("etcd")]
    assert out.endpoints.kafka.username == writer.KAFKA_APP_USER
    assert len(out.endpoints.redis.sentinels) == 3
    metrics = out.endpoints.metrics
    # Clients reach Prometheus at its published port (dev, staging) or its machine (prod).
    host = "data-1.prod.internal" if stack == "prod" else "127.0.0.1"
    assert metrics.prometheus_url == f"http://{host}:{s.topo.metrics.port}"
    assert metrics.scrape_interval_s == s.topo.metrics.scrape_interval_s
    assert metrics.postgres_user == writer.POSTGRES_MONITOR_USER


def test_prod_volumes_outlive_the_stack_and_dev_volumes_do_not(snapshots):
    # Not visible in inputs: retain_on_delete is a resource option. Check the topology flag
    # that selects it instead, so a flipped default is noticed here.
    assert load("prod").disposable is False and load("dev").disposable is True
