"""PostgreSQL under Patroni, for real: three members on a three-member etcd bootstrap with one
leader and two streaming quorum standbys; a lost leader node is replaced by itself and the old
one rejoins; a switchover through the REST API; bad input is one line naming node or key."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from datakit.errors import DatakitError
from datakit.nodes import etcd, patroni, patroni_cluster, patroni_config, patroni_member
from datakit.nodes.readiness import wait_until

pytestmark = pytest.mark.slow

# The local stack's settings: Patroni's floors, a crashed postmaster fails over.
FAST = {"ttl": 20, "loop_wait": 1, "retry_timeout": 3, "failsafe_mode": True,
        "maximum_lag_on_failover": 1024**2, "primary_start_timeout": 0,
        "synchronous_mode_strict": True}
SETTINGS = {"max_connections": 40, "shared_buffers": "16MB", "max_wal_senders": 8,
            "max_replication_slots": 8, "wal_keep_size": "64MB", "hot_standby_feedback": True}
FAILOVER_TIMEOUT = 90  # the 20 s lease, with room for a busy machine


@dataclass
class Member:
    props: dict
    outs: dict = field(default_factory=dict)


@dataclass
class Cluster:
    etcd: list[dict]
    members: list[Member]
    app: dict

    @property
    def props(self) -> list[dict]:
        return [m.props for m in self.members]

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.props["name"] == name)

    def dsn(self, **extra) -> str:
        """The stack's kind of DSN: every member, the writable one chosen by libpq."""
        hosts = ",".join("127.0.0.1" for _ in self.members)
        ports = ",".join(str(m.props["port"]) for m in self.members)
        words = {"host": hosts, "port": ports, "connect_timeout": 2,
                 "target_session_attrs": "read-write", **self.app, **extra}
        return " ".join(f"{k}={v}" for k, v in words.items())

    def write(self, text: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute("insert into notes (text) values (%s)", [text])

    def leader(self) -> Member:
        return self.member(patroni_cluster.leader_of(patroni_cluster.cluster_view(self.props)))


def start_etcd(base: Path, free_port, teardown, token: str) -> list[dict]:
    specs = [{"name": f"etcd-{i}", "port": free_port(), "peer_port": free_port()}
             for i in (1, 2, 3)]
    props = [{**s, "data_dir": str(base / s["name"]), "cluster": specs, "cluster_token": token}
             for s in specs]
    for p in props:
        teardown.add(f"delete {p['name']}", lambda p=p: etcd.delete(p))
        etcd.create(p)
    etcd.wait_cluster(props)
    return [{"name": p["name"], "port": p["port"]} for p in props]


def member_props(name: str, base: Path, free_port, password, etcd_nodes, **extra) -> dict:
    return {"name": name, "port": free_port(), "rest_port": free_port(),
            "data_dir": str(base / name), "scope": "test", "etcd": etcd_nodes,
            "superuser_password": password("pg-superuser"),
            "replication_password": password("pg-replication"),
            "rest_password": password("patroni-rest"),
            "app_user": "app", "app_password": password("pg-app"), "app_database": "appdb",
            "settings": SETTINGS, "synchronous_standbys": 1, "patroni": FAST, **extra}


@pytest.fixture(scope="module")
def cluster(workdir, free_port, password, teardown) -> Cluster:
    base = workdir / "patroni"
    base.mkdir()
    etcd_nodes = start_etcd(base, free_port, teardown, "patroni")
    members = [Member(member_props(f"pg-{i}", base, free_port, password, etcd_nodes))
               for i in (1, 2, 3)]
    for m in members:
        teardown.add(f"delete {m.props['name']}", lambda m=m: patroni.delete(m.props, m.outs))
    for m in members:  # all at once: one takes etcd's initialise key, the others clone it
        m.outs = patroni.create(m.props, wait=False)
    patroni_cluster.wait_cluster([m.props for m in members], synchronous_standbys=1)
    made = Cluster(etcd_nodes, members, {"user": "app", "password": password("pg-app"),
                                         "dbname": "appdb"})
    with psycopg.connect(made.dsn(), autocommit=True) as conn:
        conn.execute("create table notes (id bigserial primary key, text text not null)")
    return made


def wait_quorum_of_two(cl: Cluster) -> dict:
    def both() -> dict | None:
        view = patroni_cluster.cluster_view(cl.props)
        ready = not patroni_cluster.cluster_problems(view, [m.props["name"] for m in cl.members], 2)
        return view if ready else None

    return wait_until(both, what="both replicas quorum standbys", timeout=60)


def test_three_members_bootstrap_one_leader_two_streaming_quorum_standbys(cluster):
    view = wait_quorum_of_two(cluster)
    roles = sorted(m["role"] for m in view["members"])
    assert roles == ["leader", "quorum_standby", "quorum_standby"]
    assert all(m["state"] == "streaming" for m in view["members"] if m["role"] != "leader")
    leader = patroni.member_status(cluster.leader().props)
    assert leader["role"] == "primary" and leader["patroni"]["version"] == "4.1.5"
    assert {r["sync_state"] for r in leader["replication"]} == {"quorum"}
    cluster.write("bootstrapped")


def test_secrets_stay_in_private_files(cluster, password, all_cmdlines):
    secrets = [password(r) for r in ("pg-superuser", "pg-replication", "pg-app",
                                     "patroni-rest")]
    argv = all_cmdlines()
    assert not [s for s in secrets if s in argv]
    for m in cluster.members:
        files = patroni.paths(m.props)
        assert files["config"].stat().st_mode & 0o777 == 0o600
        log = files["log"].read_text(errors="replace")
        assert not [s for s in secrets if s in log]


def test_members_run_as_postgres(cluster):
    if os.geteuid() != 0:
        pytest.skip("service users are used only when datakit runs as root")
    for m in cluster.members:
        for pid, _ in (patroni.patroni_process(m.props, m.outs), patroni.postmaster(m.props)):
            uid = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0]
            assert int(uid) == patroni.account().uid


def test_switchover_through_the_rest_api(cluster):
    wait_quorum_of_two(cluster)
    old = cluster.leader().props["name"]
    candidate = next(m.props["name"] for m in cluster.members if m.props["name"] != old)
    result = patroni_cluster.switchover(cluster.props, candidate=candidate, synchronous_standbys=1)
    assert (result["old"], result["new"]) == (old, candidate)
    cluster.write("after switchover")
    status = patroni.member_status(cluster.member(candidate).props)
    assert status["role"] == "primary"


def test_switchover_needs_the_rest_password(cluster):
    leader = cluster.leader().props
    status, answer = patroni.rest({**leader, "rest_password": "wrong"}, "/switchover",
                                  body={"leader": leader["name"]})
    assert status == 401, answer


def test_leader_node_loss_fails_over_by_itself_and_the_old_leader_rejoins(cluster):
    wait_quorum_of_two(cluster)
    cluster.write("before the loss")
    old = cluster.leader()
    patroni.kill(old.props, old.outs)  # Patroni and postmaster together, from outside
    assert not patroni.alive(old.props, old.outs) and patroni.postmaster(old.props) is None

    wait_until(lambda: cluster.write("after the loss") or True,
               what="a write through the multi-host DSN", timeout=FAILOVER_TIMEOUT,
               max_interval=0.2)
    new = cluster.leader()
    assert new is not old
    old.outs = patroni.start(old.props)  # streaming again: rewound or simply following
    view = patroni_cluster.wait_cluster(cluster.props, synchronous_standbys=1)
    timelines = {m["name"]: m.get("timeline") for m in view["members"]}
    assert timelines[old.props["name"]] == timelines[new.props["name"]]
    with psycopg.connect(host="127.0.0.1", port=old.props["port"], **cluster.app) as conn:
        texts = [r[0] for r in conn.execute("select text from notes order by id")]
    assert "before the loss" in texts and "after the loss" in texts


def test_a_crashed_postmaster_alone_leaves_patroni_running_and_the_cluster_recovers(cluster):
    wait_quorum_of_two(cluster)
    leader = cluster.leader()
    patroni.kill(leader.props, leader.outs, postmaster_only=True)
    assert patroni.alive(leader.props, leader.outs)
    # Right after the kill Patroni's view still shows the old state: wait for a write.
    wait_until(lambda: cluster.write("after the crash") or True, what="a write after the crash",
               timeout=FAILOVER_TIMEOUT, max_interval=0.2)
    patroni_cluster.wait_cluster(cluster.props, synchronous_standbys=1, timeout=FAILOVER_TIMEOUT)
    assert patroni.alive(leader.props, leader.outs) and patroni.postmaster(leader.props)


# --- changes to a running cluster -------------------------------------------------------


def _show(member: Member, name: str, password: str) -> tuple[str, str]:
    with psycopg.connect(host="127.0.0.1", port=member.props["port"], user="postgres",
                         password=password, dbname="postgres") as conn:
        return (conn.execute(f"show {name}").fetchone()[0],
                str(conn.execute("select pg_postmaster_start_time()").fetchone()[0]))


def _group(cluster: Cluster, **change) -> dict:
    first = cluster.members[0].props
    spec = {k: first[k] for k in ("settings", "patroni", "synchronous_standbys",
                                  "superuser_password")}
    return {**spec, "members": cluster.props, **change}


def test_settings_change_through_patch_config_and_restart_only_where_pending(cluster,
                                                                            password):
    su = password("pg-superuser")
    before = {m.props["name"]: _show(m, "work_mem", su)[1] for m in cluster.members}
    done = patroni_config.converge(_group(cluster, settings={**SETTINGS, "work_mem": "8MB"}))
    assert done["changed"] == ["work_mem"] and done["restarted"] == []
    for m in cluster.members:  # reloaded, not restarted
        assert _show(m, "work_mem", su) == ("8MB", before[m.props["name"]])
    raised = {**SETTINGS, "work_mem": "8MB", "max_connections": 50}
    done = patroni_config.converge(_group(cluster, settings=raised))
    assert sorted(set(done["restarted"])) == sorted(m.props["name"] for m in cluster.members)
    for m in cluster.members:
        shown, started = _show(m, "max_connections", su)
        assert shown == "50" and started != before[m.props["name"]]
    assert patroni_config.converge(_group(cluster, settings=raised))["changed"] == []
    patroni_config.converge(_group(cluster))  # back as the stack had it
    for m in cluster.members:
        assert _show(m, "max_connections", su)[0] == str(SETTINGS["max_connections"])


def test_a_rotated_password_is_set_on_the_leader_before_the_members_get_it(cluster):
    old = [dict(m.props) for m in cluster.members]
    new_app = old[0]["app_password"] + "-rotated"
    for m, was in zip(cluster.members, old, strict=True):
        m.props = {**was, "app_password": new_app}
        m.outs = patroni_member.update(was, m.outs, m.props)
    assert cluster.members[0].outs["applied"]["roles"] == ["app"]
    cluster.app["password"] = new_app
    cluster.write("with the new password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(cluster.dsn(password=old[0]["app_password"]))


# --- bad input ------------------------------------------------------------------------


def test_a_data_dir_that_cannot_be_made_is_one_line_naming_the_node(cluster, workdir,
                                                                   free_port, password):
    props = lone_props(workdir, free_port, password, cluster.etcd, name="pg-4")
    Path(props["data_dir"]).write_text("a file where the node's folder should be\n")
    with pytest.raises(DatakitError) as err:
        patroni.create(props)
    line = str(err.value)
    assert "\n" not in line and line.startswith("patroni node pg-4")
    assert "cannot write its data dir" in line and not patroni.alive(props)


def lone_props(workdir, free_port, password, etcd_nodes, name="pg-9", **extra) -> dict:
    base = workdir / f"patroni-bad-{name}"
    base.mkdir(exist_ok=True)
    return member_props(name, base, free_port, password, etcd_nodes, scope=f"bad-{name}",
                        **extra)


def test_etcd_unreachable_is_one_line_naming_the_node(workdir, free_port, password):
    nowhere = [{"name": "etcd-1", "port": free_port()}, {"name": "etcd-2", "port": free_port()}]
    props = lone_props(workdir, free_port, password, nowhere, name="pg-7")
    with pytest.raises(DatakitError) as err:
        patroni.create(props)
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith("patroni node pg-7 (127.0.0.1:") and "no healthy etcd member" in line
    assert "etcd member etcd-1" in line and "etcd member etcd-2" in line
    assert not patroni.paths(props)["pgdata"].exists() and not patroni.alive(props)


def test_a_setting_patroni_would_refuse_names_the_key(cluster, workdir, free_port, password):
    props = lone_props(workdir, free_port, password, cluster.etcd, name="pg-8",
                       patroni={**FAST, "ttl": 10},
                       settings={**SETTINGS, "max_connections": 20})
    with pytest.raises(DatakitError) as err:
        patroni.create(props)
    line = str(err.value)
    assert "\n" not in line and line.startswith("patroni node pg-8")
    assert "postgres.patroni.ttl = 10" in line and "allowed: >= 20" in line
    assert "max_connections = 20" in line and "nothing was started" in line
    assert not patroni.alive(props) and not patroni.paths(props)["config"].exists()


def test_a_setting_patroni_manages_is_refused(cluster, workdir, free_port, password):
    props = lone_props(workdir, free_port, password, cluster.etcd, name="pg-6",
                       settings={**SETTINGS, "synchronous_standby_names": "*"})
    with pytest.raises(DatakitError, match="'synchronous_standby_names' is set by Patroni"):
        patroni.create(props)


def test_a_taken_port_is_one_line_naming_node_and_port(cluster, workdir, free_port, password):
    props = lone_props(workdir, free_port, password, cluster.etcd, name="pg-5")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", props["rest_port"]))
        holder.listen()
        with pytest.raises(DatakitError) as err:
            patroni.create(props)
    line = str(err.value)
    assert line.startswith("patroni node pg-5") and "REST API port" in line
    assert f"127.0.0.1:{props['rest_port']} is already in use" in line
    assert not patroni.alive(props)
