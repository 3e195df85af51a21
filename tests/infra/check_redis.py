"""Redis: roles as configured (one master, the rest replicas of it, linked, small offset
lag), a password required by every server and Sentinel, Sentinels agreeing on the master
with CKQUORUM OK; in Cluster mode all 16384 slots served and cluster_state:ok."""

from __future__ import annotations

import pytest
import redis as redis_py

from datakit.nodes import redis_client as rc
from datakit.nodes.readiness import NotReady, wait_until
from datakit.nodes.redis_cluster import describe
from datakit.nodes.redis_sentinel import master_state
from datakit.stack.schema import Node
from datakit.verify import Mismatch

OFFSET_LAG_MAX = 1024 * 1024  # bytes a connected replica may trail its master by
SLOTS = 16384


@pytest.fixture(scope="session")
def redis_password(secrets) -> str:
    return secrets.redis.default


@pytest.fixture(scope="session")
def redis_master(nodes_of, redis_password, topology, context) -> Node | None:
    """The live master (Sentinel mode), asked of the servers; None if none answers."""
    if topology.redis.mode != "sentinel":
        return None
    try:
        return wait_until(lambda: rc.live_master(nodes_of("redis"), password=redis_password),
                          what="the live Redis master", timeout=context["timeout"])
    except (NotReady, Exception):  # noqa: BLE001 - reported by the role checks
        return None


def _sentinel_only(topology) -> None:
    if topology.redis.mode != "sentinel":
        pytest.skip("Redis runs in Cluster mode")


def _replicas_seen(master: Node, password: str) -> dict[int, dict]:
    """The master's INFO replication: {replica port: {state, offset, lag}}."""
    info = rc.info(master, password, "replication")
    out = {}
    for key, value in info.items():
        if key.startswith("slave") and isinstance(value, dict):
            out[int(value["port"])] = value
    return out


def test_redis_role(redis_node, redis_master, nodes_of, redis_password, topology, checker):
    _sentinel_only(topology)
    names = {n.port: n.name for n in nodes_of("redis")}
    if redis_master is None:
        pytest.fail(f"{redis_node.name}: redis role: no live master", False)
    if redis_master.name == redis_node.name:
        replicas = len(nodes_of("redis")) - 1
        want = f"master with {replicas} online replicas"

        def probe() -> str:
            seen = _replicas_seen(redis_node, redis_password)
            online = sum(1 for r in seen.values() if r.get("state") == "online")
            return f"master with {online} online replicas"
    else:
        want = f"replica of {redis_master.name}, link up, offset lag <= {OFFSET_LAG_MAX}"

        def probe() -> str:
            answer = rc.role(redis_node, redis_password)
            if answer[0] != "slave":
                return f"{answer[0]}"
            upstream = names.get(int(answer[2]), f"port {answer[2]}")
            info = rc.info(redis_node, redis_password, "replication")
            link = info.get("master_link_status")
            seen = _replicas_seen(redis_master, redis_password).get(redis_node.port)
            master_offset = rc.info(redis_master, redis_password,
                                    "replication")["master_repl_offset"]
            lag = int(master_offset) - int(seen["offset"]) if seen else None
            if lag is not None and lag <= OFFSET_LAG_MAX:
                lag_text = f"<= {OFFSET_LAG_MAX}"
            else:
                lag_text = str(lag) if lag is not None else "unknown (master does not list it)"
            return f"replica of {upstream}, link {link}, offset lag {lag_text}"

    checker.expect("redis role", redis_node.name, want, probe)


def _refused_without_password(node: Node) -> str:
    client = rc.client(node, None)
    try:
        client.execute_command("PING")
        return "accepted PING without a password"
    except redis_py.AuthenticationError:
        return "refused (NOAUTH)"
    except redis_py.ResponseError as exc:
        if "NOAUTH" in str(exc) or "Authentication" in str(exc):
            return "refused (NOAUTH)"
        raise
    finally:
        client.close()


def test_redis_requires_password(redis_node, checker):
    checker.expect("command without password refused", redis_node.name, "refused (NOAUTH)",
                   lambda: _refused_without_password(redis_node))


def test_sentinel_requires_password(sentinel_node, checker):
    checker.expect("command without password refused", sentinel_node.name,
                   "refused (NOAUTH)", lambda: _refused_without_password(sentinel_node))


def test_sentinel_monitors_master(sentinel_node, redis_master, secrets, outputs, topology,
                                  checker):
    _sentinel_only(topology)
    name = outputs.endpoints.redis.master_name
    want = redis_master.address if redis_master else "a live master"

    def probe() -> str:
        host, port = rc.call(sentinel_node, secrets.redis.sentinel, "SENTINEL",
                             "GET-MASTER-ADDR-BY-NAME", name, kind="sentinel")
        return f"{host}:{port}"

    checker.expect(f"monitors the master of {name}", sentinel_node.name, want, probe)


def test_sentinel_quorum(sentinel_node, secrets, outputs, topology, checker):
    _sentinel_only(topology)
    name = outputs.endpoints.redis.master_name
    others = topology.redis.sentinel.count - 1

    def probe() -> str:
        password = secrets.redis.sentinel
        state = master_state(sentinel_node, password, name)
        try:
            rc.call(sentinel_node, password, "SENTINEL", "CKQUORUM", name, kind="sentinel")
            quorum = "CKQUORUM OK"
        except redis_py.ResponseError as exc:
            quorum = f"CKQUORUM {str(exc).split(' ')[0]}"
        return f"{quorum}, knows {state['num-other-sentinels']} other Sentinels"

    checker.expect("Sentinel quorum", sentinel_node.name,
                   f"CKQUORUM OK, knows {others} other Sentinels", probe)


def test_cluster_slots_and_state(redis_node, redis_password, topology, checker):
    if topology.redis.mode != "cluster":
        pytest.skip("Redis runs in Sentinel mode")

    def probe() -> str:
        text = rc.call(redis_node, redis_password, "CLUSTER", "INFO")
        info = text if isinstance(text, dict) else dict(
            line.split(":", 1) for line in text.strip().splitlines() if ":" in line)
        return f"cluster_state:{info['cluster_state']}, {info['cluster_slots_ok']} slots ok"

    checker.expect("cluster state and slots", redis_node.name,
                   f"cluster_state:ok, {SLOTS} slots ok", probe)


def test_cluster_roles(redis_node, redis_password, nodes_of, topology, checker):
    if topology.redis.mode != "cluster":
        pytest.skip("Redis runs in Sentinel mode")
    spec = topology.redis.cluster
    want = f"{spec.masters} masters, {spec.masters * spec.replicas_per_master} replicas"

    def probe() -> str:
        view = describe([redis_node] + [n for n in nodes_of("redis") if n is not redis_node],
                        redis_password)
        masters = sum(1 for n in view if n["role"] == "master" and n["slots"])
        replicas = sum(1 for n in view if n["role"] == "replica")
        if masters + replicas < len(view):
            bad = [n["name"] for n in view if n["role"] not in ("master", "replica")]
            raise Mismatch(f"{masters} masters, {replicas} replicas; failed: {', '.join(bad)}")
        return f"{masters} masters, {replicas} replicas"

    checker.expect("cluster roles", redis_node.name, want, probe)
