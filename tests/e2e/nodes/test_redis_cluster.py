"""Redis Cluster, 3 masters x 1 replica, for real."""

from __future__ import annotations

import pytest
import redis as redis_py
from redis.cluster import RedisCluster

from datakit.nodes import redis as rd
from datakit.nodes import redis_client
from datakit.nodes import redis_cluster as rc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(workdir, free_port, password, teardown) -> dict:
    base = workdir / "redis-cluster"
    base.mkdir()
    pw = password("redis-cluster")
    nodes = []
    for i in range(6):
        props = {"name": f"cluster{i}", "port": free_port(), "data_dir": str(base / f"n{i}"),
                 "password": pw, "cluster": {"node_timeout": 1000, "bus_port": free_port()},
                 "settings": {"maxmemory": "32mb"}}
        teardown.add(f"delete cluster{i}", lambda p=props: rd.delete(p, None))
        rd.create_server(props)
        nodes.append({"name": props["name"], "port": props["port"]})
    props = {"name": "cache", "password": pw, "nodes": nodes, "replicas": 1}
    return {"props": props, "outs": rc.form_cluster(props), "password": pw}


def test_three_masters_serve_all_slots_each_with_a_replica(cluster):
    nodes = cluster["outs"]["nodes"]
    masters = [n for n in nodes if n["role"] == "master"]
    replicas = [n for n in nodes if n["role"] == "replica"]
    assert len(masters) == 3 and len(replicas) == 3
    assert sum(n["slots"] for n in masters) == rc.SLOTS
    assert {r["master_id"] for r in replicas} == {m["id"] for m in masters}
    health = rc.health(cluster["props"])
    assert health["state"] == "ok" and health["slots_ok"] == rc.SLOTS
    assert health["known_nodes"] == 6


def test_keys_are_written_and_read_through_the_cluster_client(cluster):
    seed = cluster["props"]["nodes"][0]
    client = RedisCluster(host="127.0.0.1", port=seed["port"], password=cluster["password"],
                          decode_responses=True)
    try:
        keys = {f"key:{i}": str(i) for i in range(50)}  # spread over all three masters
        for key, value in keys.items():
            client.set(key, value)
        assert {key: client.get(key) for key in keys} == keys
        slots = {client.keyslot(key) for key in keys}
        owners = {client.get_node_from_key(key).port for key in keys}
        assert len(slots) > 10 and len(owners) == 3
    finally:
        client.close()


def test_forming_again_changes_nothing(cluster):
    again = rc.form_cluster(cluster["props"])
    assert again["nodes"] == cluster["outs"]["nodes"]


def test_cluster_nodes_refuse_unauthenticated_commands(cluster):
    for node in cluster["props"]["nodes"]:
        with pytest.raises(redis_py.AuthenticationError):
            redis_client.client(node, None).execute_command("CLUSTER", "INFO")
