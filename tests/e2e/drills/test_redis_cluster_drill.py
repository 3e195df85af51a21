"""Redis Cluster mode on its own stack (3 masters x 1 replica): the stack serves all 16384
slots and a key written through RedisCluster reads back (issue 3's alternative mode);
then a master is SIGKILLed under a WAIT 1 writer, its replica takes the slots, the node
rejoins as a replica, and no acknowledged write is lost.

Ports: its own shift (DATAKIT_E2E_CLUSTER_PORT_SHIFT, default -1960: 62140-62842), so it
runs beside the shared e2e stack and a user's `local`."""

from __future__ import annotations

import os

import pytest

from datakit import status
from datakit.drills import redis_cluster_ops as rc
from datakit.drills import runner
from datakit.drills.targets import cluster_client
from datakit.stack.schema import StackOutputs
from tests.support.derived_stack import DerivedStack

SHIFT = int(os.environ.get("DATAKIT_E2E_CLUSTER_PORT_SHIFT", "-1960"))


def _cluster_mode(config: dict) -> None:
    config["datakit:redis"].update(mode="cluster", nodes=6)
    config["datakit:redis"]["cluster"].update(masters=3, replicas_per_master=1,
                                             node_timeout_ms=1000)


@pytest.fixture(scope="module")
def cluster_stack():
    stack = DerivedStack(f"cluster-{os.getpid()}", port_shift=SHIFT,
                         address_base="127.22.0.0")
    try:
        stack.edit(_cluster_mode)
        stack.up()
        yield stack
    finally:
        stack.remove()


@pytest.fixture(scope="module")
def outputs(cluster_stack) -> StackOutputs:
    return cluster_stack.outputs()


def _all_up(outputs: StackOutputs) -> None:
    down = [r for r in status.live(outputs) if r["health"] != "up"]
    assert not down, down


def test_cluster_stack_serves_every_slot_and_reads_back_a_write(outputs):
    assert outputs.endpoints.redis.mode == "cluster"
    nodes = rc.data_nodes(outputs)
    assert [n.name for n in nodes] == [f"redis-{i}" for i in range(1, 7)]
    for node in nodes:
        info = rc.cluster_info(node, outputs)
        assert info["cluster_state"] == "ok" and int(info["cluster_slots_ok"]) == 16384
    roles = rc.redundant(outputs)
    assert roles is not None and len(roles) == 3 and all(len(r) == 1 for r in roles.values())
    client = cluster_client(outputs)
    try:
        for i in range(30):  # keys spread over all three masters
            client.set(f"datakit:e2e:{i}", str(i))
        fresh = cluster_client(outputs)
        assert [fresh.get(f"datakit:e2e:{i}") for i in range(30)] == \
            [str(i) for i in range(30)]
        fresh.close()
        served_by = {client.get_node_from_key(f"datakit:e2e:{i}").port for i in range(30)}
        assert len(served_by) == 3
    finally:
        client.close()
    _all_up(outputs)


def test_cluster_failover_with_wait_loses_nothing(cluster_stack, outputs):
    result = runner.run_once("redis-cluster-failover", cluster_stack.name, outputs=outputs)
    assert result.applies and result.passed, result.reason
    assert result.check.acked > 0 and result.lost == 0 and not result.check.unexpected
    assert result.extra["new_master"] != result.extra["old_master"]
    assert result.rto_s is not None and result.rto_redundancy_s is not None
    print(f"cluster failover: rto {result.rto_s} s, slots taken over after "
          f"{result.extra['failover_s']} s, redundancy {result.rto_redundancy_s} s")
    assert rc.redundant(outputs) is not None
    _all_up(outputs)
