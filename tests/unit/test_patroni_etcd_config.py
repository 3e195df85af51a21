"""What datakit writes for Patroni and etcd, and what it refuses before anything starts."""

from __future__ import annotations

import pytest

from datakit.errors import DatakitError
from datakit.nodes import etcd
from datakit.nodes.patroni_conf import problems, render

LOCAL = {"ttl": 20, "loop_wait": 1, "retry_timeout": 3, "failsafe_mode": True,
         "maximum_lag_on_failover": 1048576.0, "primary_start_timeout": 0,
         "synchronous_mode_strict": True}


def member(**extra) -> dict:
    return {"name": "pg-1", "port": 63010, "rest_port": 63011, "data_dir": "/tmp/n/pg-1",
            "scope": "datakit-local", "etcd": [{"name": "etcd-1", "port": 63012}],
            "superuser_password": "su-secret", "replication_password": "repl-secret",
            "settings": {"max_connections": 100, "shared_buffers": "128MB"},
            "synchronous_standbys": 1, "patroni": LOCAL, **extra}


def test_quorum_commit_from_the_synchronous_standbys_count():
    dcs = render(member(synchronous_standbys=2))["bootstrap"]["dcs"]
    assert (dcs["synchronous_mode"], dcs["synchronous_node_count"]) == ("quorum", 2)
    assert dcs["synchronous_mode_strict"] is True
    assert render(member(synchronous_standbys=0))["bootstrap"]["dcs"]["synchronous_mode"] is False


def test_timeouts_are_integers_and_settings_are_cluster_wide():
    config = render(member())
    dcs = config["bootstrap"]["dcs"]
    assert {k: dcs[k] for k in ("ttl", "loop_wait", "retry_timeout")} == \
        {"ttl": 20, "loop_wait": 1, "retry_timeout": 3}
    assert dcs["maximum_lag_on_failover"] == 1048576 and isinstance(
        dcs["maximum_lag_on_failover"], int)
    assert dcs["postgresql"]["parameters"]["max_connections"] == 100
    assert dcs["postgresql"]["use_pg_rewind"] and dcs["postgresql"]["use_slots"]
    assert config["postgresql"]["parameters"] == {"unix_socket_directories": "/tmp/n/pg-1"}


def test_no_trust_and_scram_on_tcp():
    config = render(member())
    hba = config["postgresql"]["pg_hba"]
    assert not [line for line in hba if "trust" in line]
    assert all(line.endswith("scram-sha-256") for line in hba if line.startswith("host"))
    assert {"auth-host": "scram-sha-256"} in config["bootstrap"]["initdb"]


def test_app_role_comes_from_post_bootstrap_without_its_password_in_the_command():
    config = render(member(app_user="app", app_password="app-secret", app_database="appdb"))
    command = config["bootstrap"]["post_bootstrap"]
    assert "datakit.nodes.patroni_bootstrap /tmp/n/pg-1/bootstrap.json" in command
    assert "app-secret" not in command


def test_a_valid_member_has_no_problems():
    props = member()
    assert problems(render(props)) == []


def test_values_patroni_refuses_name_the_stack_key():
    props = member(patroni={**LOCAL, "loop_wait": 0},
                   settings={"max_connections": 20, "max_replication_slots": 2})
    lines = problems(render(props))
    assert "Patroni refuses postgres.patroni.loop_wait = 0 (patroni.yml bootstrap.dcs." \
           "loop_wait: Wrong value); allowed: >= 1" in lines
    assert "Patroni refuses postgres.settings max_connections = 20 and would run with 100 " \
           "instead" in lines
    assert any(line.startswith("Patroni refuses postgres.settings max_replication_slots = 2")
               for line in lines)


@pytest.mark.parametrize("name", ["synchronous_standby_names", "port", "primary_conninfo"])
def test_settings_patroni_manages_are_refused(name):
    with pytest.raises(DatakitError, match=f"setting '{name}' is set by Patroni or datakit"):
        render(member(settings={name: "x"}))


def test_etcd_member_config_names_the_whole_cluster():
    cluster = [{"name": f"etcd-{i}", "port": 63100 + i, "peer_port": 63200 + i}
               for i in (1, 2, 3)]
    config = etcd.member_config({**cluster[1], "data_dir": "/tmp/e/etcd-2", "cluster": cluster,
                                 "heartbeat_ms": 250.0, "election_timeout_ms": 2500})
    assert config["initial-cluster"] == ("etcd-1=http://127.0.0.1:63201,"
                                         "etcd-2=http://127.0.0.1:63202,"
                                         "etcd-3=http://127.0.0.1:63203")
    assert config["listen-client-urls"] == "http://127.0.0.1:63102"
    assert config["data-dir"] == "/tmp/e/etcd-2/data"
    assert (config["heartbeat-interval"], config["election-timeout"]) == (250, 2500)


def test_etcd_member_missing_from_its_own_cluster_is_refused():
    cluster = [{"name": "etcd-1", "port": 63101, "peer_port": 63201}]
    with pytest.raises(DatakitError, match="its own name is missing from the cluster list"):
        etcd.member_config({"name": "etcd-2", "port": 63102, "peer_port": 63202,
                            "data_dir": "/tmp/e/etcd-2", "cluster": cluster})


def test_member_slots_ttl_and_the_foreign_slots_go_to_the_cluster_config():
    dcs = render(member(patroni={**LOCAL, "member_slots_ttl": 0.0}))["bootstrap"]["dcs"]
    assert dcs["member_slots_ttl"] == 0 and isinstance(dcs["member_slots_ttl"], int)
    # The restore drills' streaming archives keep their slots: Patroni drops unknown ones.
    assert {"name": "datakit_drill_archive", "type": "physical"} in dcs["ignore_slots"]
