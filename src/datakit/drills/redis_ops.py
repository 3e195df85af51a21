"""What the Redis Sentinel drill asks of the group: which node is master (by Sentinel,
and whether every Sentinel agrees), which replicas are online, full redundancy, and the
`min-replicas-to-write` setting its non-durable mode lowers and restores."""

from __future__ import annotations

from datakit.drills.targets import sentinel_client
from datakit.drills.waiting import wait
from datakit.nodes import tls
from datakit.stack.schema import Node, StackOutputs


def data_nodes(outputs: StackOutputs) -> list[Node]:
    return outputs.of("redis")


def client(node: Node, outputs: StackOutputs):
    import redis

    return redis.Redis(host=node.host, port=node.port, socket_timeout=1,
                       password=outputs.need_secrets().redis.default, decode_responses=True,
                       **tls.redis(outputs.tls_for("redis")))


def master_node(outputs: StackOutputs) -> Node:
    sentinel, name = sentinel_client(outputs)
    _host, port = sentinel.discover_master(name)
    return next(n for n in data_nodes(outputs) if n.port == int(port))


def agreed_master(outputs: StackOutputs, old: Node) -> Node:
    """Until every Sentinel names the same master, and not `old`; returns that node.

    The drill restarts the old master only then: a Sentinel still on the old
    configuration that sees it answer as a master again would call it sane and, after a
    few seconds, turn the promoted replica back into its replica, wiping what it took."""
    sentinel, name = sentinel_client(outputs)

    def views() -> set[int]:
        seen = set()
        for one in sentinel.sentinels:
            try:
                seen.add(int(one.sentinel_get_master_addr_by_name(name)[1]))
            except Exception:  # noqa: BLE001 - an unreachable Sentinel has no view yet
                seen.add(-1)
        return seen

    def agreed() -> Node | None:
        seen = views()
        port = next(iter(seen)) if len(seen) == 1 else None
        if port in (None, -1, old.port):
            return None
        return next(n for n in data_nodes(outputs) if n.port == port)

    return wait(agreed, what="every Sentinel to name the new master", timeout=60)


def replicas_of(master: Node, outputs: StackOutputs) -> set[int]:
    """Ports of the replicas the master lists as online and caught up enough."""
    with client(master, outputs) as c:
        info = c.info("replication")
    if info.get("role") != "master":
        return set()
    return {int(v["port"]) for k, v in info.items()
            if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"}


def wait_redundant(outputs: StackOutputs, timeout: float = 60.0) -> Node:
    """Until Sentinel's master lists every other data node as an online replica."""
    want = {n.port for n in data_nodes(outputs)}

    def full() -> Node | None:
        master = master_node(outputs)
        return master if replicas_of(master, outputs) == want - {master.port} else None

    return wait(full, what="Redis master with every other node replicating",
                timeout=timeout)


def min_replicas(outputs: StackOutputs) -> dict[str, int]:
    """`min-replicas-to-write` of every data node, by name."""
    found = {}
    for node in data_nodes(outputs):
        with client(node, outputs) as c:
            found[node.name] = int(c.config_get("min-replicas-to-write")
                                   ["min-replicas-to-write"])
    return found


def set_min_replicas(outputs: StackOutputs, value: int | dict[str, int]) -> dict[str, int]:
    """Set `min-replicas-to-write` on every data node, in its config file too (Sentinel's
    CONFIG REWRITE would write it there anyway); returns the values it replaced."""
    before = min_replicas(outputs)
    for node in data_nodes(outputs):
        with client(node, outputs) as c:
            c.config_set("min-replicas-to-write",
                         value if isinstance(value, int) else value[node.name])
            c.config_rewrite()
    return before
