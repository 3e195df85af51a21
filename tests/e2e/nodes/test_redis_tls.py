"""Redis with TLS, for real: a master, a replica and three Sentinels with certificates of one
CA listen on TLS only (plaintext port 0); the replica replicates and the Sentinels gossip
and watch over TLS; redis-py with the CA gets in; a plaintext client and a client trusting
another CA are refused; a wrong password is refused over TLS. A Redis Cluster forms and
serves over TLS (its bus included)."""

from __future__ import annotations

import pytest
import redis as redis_py
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from datakit.nodes import certs, redis_client, tls, tls_probe
from datakit.nodes import redis as rd
from datakit.nodes import redis_cluster as rc
from datakit.nodes import redis_sentinel as rs
from tests.support.tls_material import client_files, material

pytestmark = pytest.mark.slow
MASTER = "datakit"


@pytest.fixture(scope="module")
def ca() -> certs.Pair:
    return certs.new_ca("datakit redis test CA")


@pytest.fixture(scope="module")
def group(workdir, free_port, password, teardown, ca) -> dict:
    base = workdir / "redis-tls"
    base.mkdir()
    pw, spw = password("redis"), password("sentinel")
    peers: list[dict] = []
    data = []
    for i, name in enumerate(("redis-1", "redis-2")):
        props = {"name": name, "port": free_port(), "data_dir": str(base / name),
                 "password": pw, "settings": {"min-replicas-to-write": 1}, "replica": i > 0,
                 "peers": list(peers), "tls": material(ca, name)}
        teardown.add(f"delete {name}", lambda p=props: rd.delete(p, None))
        data.append((props, rd.create_server(props)))
        peers.append({"name": name, "port": props["port"]})
    sentinels = []
    for i in (1, 2, 3):
        name = f"sentinel-{i}"
        props = {"name": name, "port": free_port(), "data_dir": str(base / name),
                 "password": spw, "master_name": MASTER, "master_password": pw, "quorum": 2,
                 "settings": {"down-after-milliseconds": 1500, "failover-timeout": 10000},
                 "peers": peers, "tls": material(ca, name)}
        teardown.add(f"delete {name}", lambda p=props: rs.delete(p, None))
        sentinels.append((props, rs.create_sentinel(props)))
    client = client_files(base, ca)
    ready = rs.wait_sentinels({"sentinels": [{"name": p["name"], "port": p["port"],
                                              "client_tls": client} for p, _ in sentinels],
                               "password": spw, "master_name": MASTER})
    return {"data": data, "sentinels": sentinels, "pw": pw, "spw": spw, "ready": ready,
            "client": client, "base": base}


def _kit(group, props) -> redis_py.Redis:
    return redis_client.client({"name": props["name"], "port": props["port"],
                      "client_tls": group["client"]}, group["pw"])


def test_the_replica_replicates_over_tls(group):
    (master, _), (replica, _) = group["data"]
    conn = _kit(group, master)
    conn.set("greeting", "hello")
    assert conn.wait(1, 5000) == 1
    assert _kit(group, replica).get("greeting") == "hello"
    assert conn.config_get("port") == {"port": "0"}
    assert conn.config_get("tls-replication") == {"tls-replication": "yes"}


def test_the_sentinels_watch_and_name_the_master_over_tls(group):
    master = group["data"][0][0]
    assert group["ready"]["master"] == {"host": "127.0.0.1", "port": master["port"]}
    hosts = [("127.0.0.1", p["port"]) for p, _ in group["sentinels"]]
    kw = tls.redis(group["client"])
    sentinel = Sentinel(hosts, socket_timeout=2, password=group["pw"],
                        sentinel_kwargs={"password": group["spw"], **kw}, **kw)
    assert sentinel.discover_master(MASTER) == ("127.0.0.1", master["port"])
    assert sentinel.master_for(MASTER).ping()


def test_redis_refuses_a_plaintext_client(group):
    master = group["data"][0][0]
    plain = redis_py.Redis(port=master["port"], password=group["pw"], socket_timeout=2)
    with pytest.raises(redis_py.ConnectionError):
        plain.ping()
    assert tls_probe.handshake("127.0.0.1", master["port"], None,
                               request=b"PING\r\n").startswith("refused")


def test_a_client_trusting_another_ca_refuses_redis(group):
    other = client_files(group["base"], certs.new_ca("redis stranger CA"), "redis-stranger")
    master = group["data"][0][0]
    stranger = redis_py.Redis(port=master["port"], password=group["pw"], socket_timeout=2,
                              **tls.redis(other))
    with pytest.raises(redis_py.ConnectionError, match="certificate verify failed"):
        stranger.ping()


def test_redis_refuses_a_wrong_password_over_tls(group):
    master = group["data"][0][0]
    with pytest.raises(redis_client.WrongPassword):
        redis_client.call({"name": "redis-1", "port": master["port"],
                           "client_tls": group["client"]}, "wrong", "PING")


def test_a_redis_cluster_forms_and_serves_over_tls(workdir, free_port, password, teardown,
                                                    ca, group):
    base = workdir / "redis-cluster-tls"
    base.mkdir()
    pw = password("cluster")
    nodes = []
    for i in range(1, 4):
        name = f"rc-{i}"
        props = {"name": name, "port": free_port(), "data_dir": str(base / name),
                 "password": pw, "settings": {}, "tls": material(ca, name),
                 "cluster": {"node_timeout": 1000, "bus_port": free_port()}}
        teardown.add(f"delete {name}", lambda p=props: rd.delete(p, None))
        rd.create_server(props)
        nodes.append(props)
    rc.form_cluster({"name": "tls", "password": pw, "replicas": 0, "nodes": [
        {"name": p["name"], "port": p["port"], "client_tls": group["client"]} for p in nodes]})
    cluster = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p["port"]) for p in nodes],
                           password=pw, **tls.redis(group["client"]))
    try:
        for i in range(20):
            cluster.set(f"k{i}", i)
        assert cluster.get("k7") == b"7"
    finally:
        cluster.close()


def _serial(port: int) -> int:
    return certs.load(tls_probe.served_certificate("127.0.0.1", port), what="node").serial_number


def test_a_reissued_certificate_is_served_by_redis_without_a_restart_and_by_sentinel(
        group, ca):
    props, outs = group["data"][0]
    before = _serial(props["port"])
    new = {**props, "tls": material(ca, props["name"])}
    rd.update(props, outs, new)
    props["tls"] = new["tls"]
    assert _serial(props["port"]) != before
    assert rd.alive(props, outs), "the master was restarted"
    assert _kit(group, props).ping()
    sprops, souts = group["sentinels"][0]
    before = _serial(sprops["port"])
    snew = {**sprops, "tls": material(ca, sprops["name"])}
    souts.update(rs.update(sprops, souts, snew))  # Sentinel restarts on its state
    sprops["tls"] = snew["tls"]
    assert _serial(sprops["port"]) != before
    rs.wait_sentinels({"sentinels": [{"name": p["name"], "port": p["port"],
                                      "client_tls": group["client"]}
                                     for p, _ in group["sentinels"]],
                       "password": group["spw"], "master_name": MASTER})
