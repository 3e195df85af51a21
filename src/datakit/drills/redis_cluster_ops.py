"""What the Redis Cluster drill asks of the cluster: each node's view (CLUSTER NODES and
CLUSTER INFO), the live masters that serve slots, full redundancy (cluster_state ok on
every node, every master with slots has a replica with its link up), and a key of this
run in a given slot range."""

from __future__ import annotations

from datakit.drills.waiting import wait
from datakit.nodes import tls
from datakit.stack.schema import Node, StackOutputs

SLOTS = 16384


def data_nodes(outputs: StackOutputs) -> list[Node]:
    return outputs.of("redis")


def node_client(node: Node, outputs: StackOutputs, timeout: float = 1.0):
    import redis

    return redis.Redis(host=node.host, port=node.port,
                       password=outputs.need_secrets().redis.default,
                       socket_timeout=timeout, socket_connect_timeout=0.5,
                       decode_responses=True, **tls.redis(outputs.tls_for("redis")))


def _ask(node: Node, outputs: StackOutputs, *args):
    client = node_client(node, outputs)
    try:
        return client.execute_command(*args)
    finally:
        client.close()


def view(node: Node, outputs: StackOutputs) -> list[dict]:
    """CLUSTER NODES as `node` sees it: id, port, flags, master id, slot ranges, link."""
    text = _ask(node, outputs, "CLUSTER", "NODES")
    entries = []
    for line in str(text).strip().splitlines():
        f = line.split()
        ranges = []
        for part in f[8:]:
            if part.startswith("["):
                continue
            lo, _, hi = part.partition("-")
            ranges.append((int(lo), int(hi or lo)))
        entries.append({"id": f[0], "port": int(f[1].split("@")[0].rsplit(":", 1)[1]),
                        "flags": set(f[2].split(",")),
                        "master_id": None if f[3] == "-" else f[3],
                        "link": f[7], "ranges": ranges})
    return entries


def cluster_info(node: Node, outputs: StackOutputs) -> dict:
    text = _ask(node, outputs, "CLUSTER", "INFO")
    if isinstance(text, dict):
        return text
    return dict(line.split(":", 1) for line in str(text).strip().splitlines() if ":" in line)


def any_view(outputs: StackOutputs, skip: set[str] = frozenset()) -> list[dict]:
    """The view of the first node (not in `skip`) that answers."""
    last = None
    for node in data_nodes(outputs):
        if node.name in skip:
            continue
        try:
            return view(node, outputs)
        except Exception as exc:  # noqa: BLE001 - ask the next node
            last = exc
    raise RuntimeError(f"no Redis Cluster node answers: {last}")


def masters(outputs: StackOutputs, skip: set[str] = frozenset()) -> list[tuple[Node, dict]]:
    """(node, view entry) of every live master that serves slots, as a live node sees it."""
    by_port = {n.port: n for n in data_nodes(outputs)}
    return [(by_port[e["port"]], e) for e in any_view(outputs, skip)
            if "master" in e["flags"] and e["ranges"] and not e["flags"] & {"fail", "pfail"}
            and e["port"] in by_port]


def redundant(outputs: StackOutputs) -> dict | None:
    """Full redundancy: every node answers with cluster_state ok and all slots ok, every
    master with slots has at least one connected replica whose link to it is up."""
    nodes = data_nodes(outputs)
    for node in nodes:
        info = cluster_info(node, outputs)
        if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != SLOTS:
            return None
        if int(info.get("cluster_known_nodes", 0)) != len(nodes):
            return None
        repl = _ask(node, outputs, "INFO", "replication")
        if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
            return None
    entries = view(nodes[0], outputs)
    if any(e["flags"] & {"fail", "pfail", "handshake", "noaddr"} for e in entries):
        return None
    serving = [e for e in entries if "master" in e["flags"] and e["ranges"]]
    if sum(hi - lo + 1 for e in serving for lo, hi in e["ranges"]) != SLOTS:
        return None
    roles = {}
    for m in serving:
        reps = [e for e in entries if e["master_id"] == m["id"] and "slave" in e["flags"]
                and e["link"] == "connected"]
        if not reps:
            return None
        roles[m["port"]] = sorted(r["port"] for r in reps)
    return roles


def wait_redundant(outputs: StackOutputs, timeout: float = 90.0) -> dict:
    def probe():
        try:
            return redundant(outputs)
        except Exception:  # noqa: BLE001 - a node still starting: try again
            return None

    return wait(probe, what="Redis Cluster: cluster_state ok, every master "
                "with a replica", timeout=timeout)


def key_in(ranges: list[tuple[int, int]], run: str) -> str:
    """A key of this run whose hash slot lies in `ranges` (by its {hash tag})."""
    from redis.crc import key_slot

    for i in range(100_000):
        key = f"datakit:drill:{{{run}-{i}}}"
        slot = key_slot(key.encode())
        if any(lo <= slot <= hi for lo, hi in ranges):
            return key
    raise RuntimeError(f"no key found in slots {ranges}")
