"""Redis master + 2 replicas + 3 Sentinels (quorum 2), for real."""

from __future__ import annotations

import grp
import pwd
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as redis_py
from redis.sentinel import Sentinel

from datakit.errors import DatakitError
from datakit.nodes import process
from datakit.nodes import redis as rd
from datakit.nodes import redis_client as rc
from datakit.nodes import redis_sentinel as rs

pytestmark = pytest.mark.slow
MASTER = "datakit"
SETTINGS = {"maxmemory": "64mb", "maxmemory-policy": "allkeys-lru",
            "min-replicas-to-write": 1, "min-replicas-max-lag": 10}


@dataclass
class Group:
    data: list[tuple[dict, dict]]  # (props, outs), master first
    sentinels: list[tuple[dict, dict]]
    password: str
    sentinel_password: str
    ready: dict

    def addr(self, props: dict) -> dict:
        return {"name": props["name"], "port": props["port"]}


@pytest.fixture(scope="module")
def group(workdir, free_port, password, teardown) -> Group:
    base = workdir / "redis"
    base.mkdir()
    pw, spw = password("redis"), password("sentinel")
    data: list[tuple[dict, dict]] = []
    peers: list[dict] = []
    for i, name in enumerate(("redis1", "redis2", "redis3")):
        props = {"name": name, "port": free_port(), "data_dir": str(base / name), "password": pw,
                 "settings": dict(SETTINGS), "replica": i > 0, "peers": list(peers)}
        teardown.add(f"delete {name}", lambda p=props: rd.delete(p, None))
        data.append((props, rd.create_server(props)))
        peers.append({"name": name, "port": props["port"]})
    sentinels = []
    for name in ("sentinel1", "sentinel2", "sentinel3"):
        props = {"name": name, "port": free_port(), "data_dir": str(base / name),
                 "password": spw, "master_name": MASTER, "master_password": pw, "quorum": 2,
                 "settings": {"down-after-milliseconds": 1000, "failover-timeout": 10000},
                 "peers": peers}
        teardown.add(f"delete {name}", lambda p=props: rs.delete(p, None))
        sentinels.append((props, rs.create_sentinel(props)))
    ready = rs.wait_sentinels({"sentinels": [{"name": p["name"], "port": p["port"]}
                                             for p, _ in sentinels],
                               "password": spw, "master_name": MASTER})
    return Group(data, sentinels, pw, spw, ready)


def test_a_key_set_on_the_master_is_read_on_every_replica(group):
    (master, _), *replicas = group.data
    conn = rc.client(group.addr(master), group.password)
    conn.set("greeting", "hello")
    assert conn.wait(2, 5000) == 2
    for props, outs in replicas:
        assert rc.client(group.addr(props), group.password).get("greeting") == "hello"
        assert rd.health(props, outs)["role"] == "replica"
    assert rd.health(*group.data[0])["replicas"] == 2


def test_the_sentinels_agree_on_the_master(group):
    master = group.data[0][0]
    assert group.ready["master"] == {"host": "127.0.0.1", "port": master["port"]}
    for props, outs in group.sentinels:
        node = group.addr(props)
        assert rc.call(node, group.sentinel_password, "SENTINEL", "CKQUORUM", MASTER,
                       kind="sentinel").startswith("OK 3 usable Sentinels")
        assert len(rc.call(node, group.sentinel_password, "SENTINEL", "SENTINELS", MASTER,
                           kind="sentinel")) == 2
        assert rs.health(props, outs)["quorum_ok"]


def test_clients_find_the_master_through_sentinel(group):
    sentinel = Sentinel([("127.0.0.1", p["port"]) for p, _ in group.sentinels],
                        sentinel_kwargs={"password": group.sentinel_password},
                        password=group.password, socket_timeout=2)
    assert sentinel.discover_master(MASTER) == ("127.0.0.1", group.data[0][0]["port"])
    sentinel.master_for(MASTER).set("via-sentinel", "yes")
    assert sentinel.slave_for(MASTER).get("via-sentinel") in ("yes", b"yes", None)
    assert rc.live_master([group.addr(p) for p, _ in group.data],
                          password=group.password)["name"] == "redis1"


def test_unauthenticated_and_wrong_password_commands_are_refused(group):
    for props, _ in group.data + group.sentinels:
        with pytest.raises(redis_py.AuthenticationError):
            rc.client(group.addr(props), None).get("greeting")
    node = group.addr(group.data[1][0])
    with pytest.raises(rc.WrongPassword, match=r"redis node redis2 \(127\.0\.0\.1:\d+\)"):
        rc.call(node, "wrong", "PING")


def test_config_files_hold_passwords_privately(group, all_cmdlines):
    redis_user = pwd.getpwnam("redis")
    argv = all_cmdlines()
    for _, outs in group.data + group.sentinels:
        conf = Path(outs["conf_path"])
        st = conf.stat()
        assert st.st_mode & 0o777 == 0o600
        assert (st.st_uid, grp.getgrgid(st.st_gid).gr_name) == (redis_user.pw_uid, "redis")
        for secret in (group.password, group.sentinel_password):
            assert secret not in argv
            assert secret not in Path(outs["log_path"]).read_text()


def test_a_live_setting_is_set_without_restart_and_kept_in_the_file(group):
    props, outs = group.data[0]
    new = {**props, "settings": {**props["settings"], "maxmemory": "96mb"}}
    updated = rd.update(props, outs, new)
    assert updated["applied"]["set"] == ["maxmemory"] and updated["pid"] == outs["pid"]
    assert rc.call(group.addr(props), group.password, "CONFIG", "GET", "maxmemory") == \
        {"maxmemory": str(96 * 1024 * 1024)}
    assert "maxmemory 96mb" in Path(outs["conf_path"]).read_text()
    group.data[0] = (new, updated)


def test_an_immutable_setting_is_applied_by_restart(group):
    props, outs = group.data[2]
    new = {**props, "settings": {**props["settings"], "databases": 8}}
    updated = rd.update(props, outs, new)
    assert updated["applied"] == {"set": [], "restarted": ["databases"], "removed_but_kept": []}
    assert updated["pid"] != outs["pid"]
    assert not process.is_running(outs["pid"], outs["start_time"])
    assert rd.health(new, updated)["link"] == "up"
    group.data[2] = (new, updated)


def test_a_sentinel_setting_is_applied_live(group):
    props, outs = group.sentinels[0]
    new = {**props, "settings": {**props["settings"], "down-after-milliseconds": 1500}}
    updated = rs.update(props, outs, new)
    assert updated["applied"] == {"set": ["down-after-milliseconds"]}
    state = rs.master_state(group.addr(props), group.sentinel_password, MASTER)
    assert state["down-after-milliseconds"] == "1500"
    group.sentinels[0] = (new, updated)


def test_min_replicas_to_write_refuses_writes_without_a_replica(workdir, free_port, password):
    base = workdir / "redis"
    master = {"name": "lonely", "port": free_port(), "data_dir": str(base / "lonely"),
              "password": password("redis"), "settings": {"min-replicas-to-write": 1}}
    replica = {"name": "company", "port": free_port(), "data_dir": str(base / "company"),
               "password": password("redis"), "replica": True,
               "peers": [{"name": "lonely", "port": master["port"]}]}
    try:
        rd.create_server(master)
        conn = rc.client(master, master["password"])
        with pytest.raises(redis_py.ResponseError, match="NOREPLICAS"):
            conn.set("k", "v")
        rd.create_server(replica)
        assert conn.set("k", "v")
    finally:
        rd.delete(replica)
        rd.delete(master)


def test_a_port_in_use_is_refused(workdir, free_port, password):
    port = free_port()
    props = {"name": "squatted", "port": port, "data_dir": str(workdir / "redis" / "squatted"),
             "password": password("redis")}
    with socket.socket() as holder:
        # As servers do: a client socket of an earlier run in TIME_WAIT must not matter.
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(DatakitError, match=rf"redis node squatted .*{port} is already in use"):
            rd.create_server(props)
    assert not Path(props["data_dir"]).exists()


def test_a_deleted_node_leaves_no_process_or_dir(group, workdir, free_port, password):
    props = {"name": "redis9", "port": free_port(), "data_dir": str(workdir / "redis" / "r9"),
             "password": group.password, "replica": True,
             "peers": [group.addr(p) for p, _ in group.data]}
    outs = rd.create_server(props)
    assert rd.health(props, outs)["link"] == "up"
    rd.delete(props, outs)
    assert not process.is_running(outs["pid"], outs["start_time"])
    assert not Path(props["data_dir"]).exists()


def test_a_dead_replica_is_brought_back_by_create_on_its_dir(group):
    props, outs = group.data[1]
    rd.kill(props, outs)
    assert not rd.alive(props, outs)
    again = rd.create_server(props)
    assert again["pid"] != outs["pid"] and rd.health(props, again)["link"] == "up"
    group.data[1] = (props, again)
