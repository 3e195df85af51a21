"""postgres.patroni and etcd in the topology: planned ports, shipped values, and every value
Patroni or etcd would refuse or silently change is one line naming its key."""

from __future__ import annotations

import copy

import pytest
import yaml

from datakit.paths import PROJECT_DIR
from datakit.topology import TopologyError, from_config, load, port_sources
from datakit.topology.patroni import TIMEOUT_FLOORS

PLENTY = 64 * 1024**3


def local_config() -> dict:
    return yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.local.yaml").read_text())["config"]


def with_changes(*changes: tuple[str, object]) -> dict:
    """The local stack's config with values set by dotted path (`etcd.nodes`)."""
    config = copy.deepcopy(local_config())
    for path, value in changes:
        first, *rest = path.split(".")
        node = config.setdefault(f"datakit:{first}", {})
        for seg in rest[:-1]:
            node = node.setdefault(seg, {})
        node[rest[-1]] = value
    return config


def problems(*changes: tuple[str, object]) -> list[str]:
    with pytest.raises(TopologyError) as err:
        from_config(with_changes(*changes), stack="local", memory_total=PLENTY)
    return err.value.lines


# --- planning and the shipped stacks ----------------------------------------------------


def test_etcd_members_and_rest_ports_are_planned_on_the_local_stack():
    t = load("local", PROJECT_DIR)
    members = [(n.name, n.initial_role, n.port, n.peer_port) for n in t.etcd_nodes()]
    assert members == [("etcd-1", "member", 64700, 64800), ("etcd-2", "member", 64701, 64801),
                       ("etcd-3", "member", 64702, 64802)]
    assert t.etcd_nodes()[0].ports() == {"client": 64700, "peer": 64800}
    assert [t.postgres.rest_port(n) for n in t.postgres.node_names] == [64150, 64151, 64152]
    assert t.patroni_scope == "datakit-local"
    keys = {key for key, _node, _port in port_sources(t)}
    assert {"etcd.port_base", "etcd.peer_port_base", "postgres.patroni.rest_port_base"} <= keys


def test_local_is_tuned_to_patronis_floors_and_fails_over_on_a_crash():
    p = load("local", PROJECT_DIR).postgres.patroni
    assert {k: getattr(p, k) for k in TIMEOUT_FLOORS} == TIMEOUT_FLOORS
    assert p.loop_wait + 2 * p.retry_timeout <= p.ttl
    assert p.primary_start_timeout == 0 and p.failsafe_mode and p.synchronous_mode_strict


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_staging_and_prod_keep_conservative_timeouts(stack):
    t = load(stack, PROJECT_DIR)
    p = t.postgres.patroni
    assert (p.ttl, p.loop_wait, p.retry_timeout) == (30, 10, 10)
    assert p.primary_start_timeout == 300
    assert t.etcd.nodes == 3 and 2 * t.etcd.election_timeout_ms < p.retry_timeout * 1000


# --- bad input --------------------------------------------------------------------------

BAD = [
    # (changes, key in the line, words in the line)
    ([("postgres.patroni.ttl", 10)], "postgres.patroni.ttl", "allowed: >= 20"),
    ([("postgres.patroni.loop_wait", 0)], "postgres.patroni.loop_wait", "allowed: >= 1"),
    ([("postgres.patroni.retry_timeout", 2)], "postgres.patroni.retry_timeout", ">= 3"),
    ([("postgres.patroni.ttl", 20), ("postgres.patroni.loop_wait", 10),
      ("postgres.patroni.retry_timeout", 6)], "postgres.patroni.ttl",
     "loop_wait + 2 x retry_timeout = 10 + 2 x 6 = 22 s"),
    ([("postgres.patroni.primary_start_timeout", -1)], "postgres.patroni.primary_start_timeout",
     "allowed: >= 0"),
    ([("postgres.patroni.maximum_lag_on_failover", "lots")],
     "postgres.patroni.maximum_lag_on_failover", "bad size"),
    ([("postgres.patroni.failsafe", True)], "postgres.patroni.failsafe", "unknown key"),
    ([("postgres.synchronous_standbys", 0)], "postgres.patroni.synchronous_mode_strict",
     "no synchronous standby to wait for"),
    ([("postgres.settings.max_connections", 20), ("postgres.pool.max_size", 10),
      ("postgres.pool.min_size", 2)], "postgres.settings.max_connections",
     "under Patroni's minimum"),
    ([("postgres.settings.max_wal_senders", 2)], "postgres.settings.max_wal_senders", ">= 4"),
    ([("postgres.settings.extra", {"max_locks_per_transaction": 16})],
     "postgres.settings.extra.max_locks_per_transaction", "allowed: >= 32"),
    ([("postgres.settings.extra", {"wal_log_hints": False})],
     "postgres.settings.extra.wal_log_hints", "pg_rewind"),
    ([("postgres.patroni.rest_port_base", 64101)], "postgres.patroni.rest_port_base",
     "collides with pg-2"),
    ([("etcd.nodes", 2)], "etcd.nodes", "an odd count"),
    ([("etcd.nodes", 0)], "etcd.nodes", "allowed: > 0"),
    ([("etcd.election_timeout_ms", 400)], "etcd.election_timeout_ms",
     "under 5 heartbeats"),
    ([("etcd.election_timeout_ms", "2s")], "etcd.election_timeout_ms",
     "half of postgres.patroni.retry_timeout"),
    ([("etcd.heartbeat_ms", "soon")], "etcd.heartbeat_ms", "bad duration"),
    ([("etcd.port_base", 40000)], "etcd.port_base", "ephemeral"),
    ([("etcd.peer_port_base", 64701)], "etcd.peer_port_base", "collides with etcd-2"),
    ([("etcd.members", 3)], "etcd.members", "unknown key"),
]


@pytest.mark.parametrize(("changes", "key", "words"), BAD, ids=[b[1] + str(i) for i, b in
                                                                 enumerate(BAD)])
def test_bad_value_is_one_line_naming_stack_and_key(changes, key, words):
    lines = problems(*changes)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"stack local: datakit:{key}: "), lines
    assert "; allowed: " in lines[0]
    assert words in lines[0], lines


def test_election_timeout_above_etcds_limit_is_named_with_its_limit():
    lines = problems(("etcd.election_timeout_ms", 60_000),
                     ("postgres.patroni.retry_timeout", 200),
                     ("postgres.patroni.ttl", 500))
    assert lines == ["stack local: datakit:etcd.election_timeout_ms: 60000 ms is above etcd's "
                     "limit; allowed: <= 50000"]


def test_patroni_floors_and_rule_are_reported_together():
    lines = problems(("postgres.patroni.ttl", 5), ("postgres.patroni.loop_wait", 0),
                     ("postgres.patroni.retry_timeout", 1))
    keys = sorted(line.split(": ")[1] for line in lines)
    assert keys == ["datakit:postgres.patroni.loop_wait", "datakit:postgres.patroni.retry_timeout",
                    "datakit:postgres.patroni.ttl"]
