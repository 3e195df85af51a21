"""etcd members for real: a 3-member cluster forms with one leader, survives the loss of one
member, and bad input (nothing listening, a port taken) is one clear line naming the member."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from datakit.errors import DatakitError
from datakit.nodes import etcd

pytestmark = pytest.mark.slow


@dataclass
class Member:
    props: dict
    outs: dict = field(default_factory=dict)


def make_members(base: Path, free_port, count: int = 3, token: str = "test") -> list[Member]:
    specs = [{"name": f"etcd-{i}", "port": free_port(), "peer_port": free_port()}
             for i in range(1, count + 1)]
    return [Member({**s, "data_dir": str(base / s["name"]), "cluster": specs,
                    "cluster_token": token}) for s in specs]


@pytest.fixture(scope="module")
def members(workdir, free_port, teardown) -> list[Member]:
    base = workdir / "etcd"
    base.mkdir()
    made = make_members(base, free_port)
    for m in made:
        teardown.add(f"delete {m.props['name']}", lambda m=m: etcd.delete(m.props, m.outs))
        m.outs = etcd.create(m.props)
    etcd.wait_cluster([m.props for m in made])
    return made


def test_three_members_form_a_cluster_with_one_leader(members):
    state = etcd.cluster_health([m.props for m in members])
    assert state["healthy"], state["problems"]
    assert state["leader"] in {"etcd-1", "etcd-2", "etcd-3"}
    assert state["listed"] == ["etcd-1", "etcd-2", "etcd-3"]
    assert len({h["leader_id"] for h in state["members"]}) == 1
    assert all(h["version"] == "3.7.3" for h in state["members"])


def test_members_run_as_the_etcd_user_with_a_private_data_dir(members):
    if os.geteuid() != 0:
        pytest.skip("service users are used only when datakit runs as root")
    for m in members:
        uid = Path(f"/proc/{m.outs['pid']}/status").read_text().split("Uid:")[1].split()[0]
        assert int(uid) == etcd._account(m.props).uid
        assert (Path(m.outs["data_dir"]) / "data").stat().st_mode & 0o777 == 0o700


def test_start_of_a_running_member_returns_its_process(members):
    again = etcd.start(members[0].props)
    assert (again["pid"], again["start_time"]) == (members[0].outs["pid"],
                                                   members[0].outs["start_time"])


def test_losing_the_leader_leaves_a_leader_and_it_rejoins(members):
    nodes = [m.props for m in members]
    leader = next(m for m in members if m.props["name"] == etcd.cluster_health(nodes)["leader"])
    etcd.kill(leader.props, leader.outs)
    assert not etcd.alive(leader.props, leader.outs)
    rest = [m.props for m in members if m is not leader]
    after = etcd.wait_cluster(rest)
    assert after["leader"] != leader.props["name"]
    assert etcd.member_health(leader.props)["error"] is not None
    assert etcd.require_reachable(nodes, needed_by="a client") != etcd.url(leader.props)
    leader.outs = etcd.start(leader.props)
    assert etcd.wait_cluster(nodes)["members"] == ["etcd-1", "etcd-2", "etcd-3"]


def test_nothing_listening_is_one_line_naming_each_member(free_port):
    nodes = [{"name": "etcd-7", "port": free_port()}, {"name": "etcd-8", "port": free_port()}]
    with pytest.raises(etcd.Unreachable) as err:
        etcd.require_reachable(nodes, needed_by="patroni node pg-1")
    line = str(err.value)
    assert "\n" not in line and line.startswith("patroni node pg-1: no healthy etcd member")
    assert "etcd member etcd-7" in line and "etcd member etcd-8" in line
    assert "start the etcd cluster first" in line


def test_a_taken_port_is_one_line_and_leaves_nothing_behind(workdir, free_port):
    base = workdir / "etcd-taken"
    (member,) = make_members(base, free_port, count=1, token="taken")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", member.props["peer_port"]))
        holder.listen()
        with pytest.raises(DatakitError) as err:
            etcd.create(member.props)
    line = str(err.value)
    assert "etcd member etcd-1" in line and "peer port" in line
    assert f"127.0.0.1:{member.props['peer_port']} is already in use" in line
    assert not (base / "etcd-1" / "data").exists()


def test_a_lone_new_member_of_three_is_not_ready_and_says_why(workdir, free_port, teardown):
    base = workdir / "etcd-lone"
    lone = make_members(base, free_port, token="lone")[0]
    teardown.add("delete the lone member", lambda: etcd.delete(lone.props, lone.outs))
    lone.outs = etcd.create(lone.props)  # it listens: start does not wait for the others
    state = etcd.cluster_health([lone.props], timeout=1)
    assert not state["healthy"] and state["leader"] is None
    assert "etcd member etcd-1" in state["problems"][0]
    assert "answers once a majority of its cluster runs" in state["problems"][0]
    with pytest.raises(etcd.Unreachable, match="no healthy etcd member"):
        etcd.require_reachable([lone.props], needed_by="patroni node pg-1", timeout=1)
    etcd.delete(lone.props, lone.outs)
    assert not (base / "etcd-1").exists()
