"""Redis Cluster on loopback: nodes are redis.create_server with `cluster` set; this file
forms them into one cluster (masters with slots, replicas of them) and checks it.

Formation speaks the cluster protocol through redis-py (CLUSTER SET-CONFIG-EPOCH, MEET,
ADDSLOTSRANGE, REPLICATE): no password in any argv, and each step is checked, so running it
again on a formed cluster changes nothing; a cluster whose roles changed after a failover
is left as it is.

form_cluster props: name, password, nodes ([{name, port}], running cluster-enabled nodes,
masters first), replicas (per master, default 1), timeout (default 60 s).
outs: name, nodes ([{name, port, id, role, master_id, slots}]), waited_s.
"""

from __future__ import annotations

import time

from datakit.errors import DatakitError
from datakit.nodes import redis as rd
from datakit.nodes import redis_client as rc
from datakit.nodes.address import NodeLike, address
from datakit.nodes.readiness import wait_until

SLOTS = 16384


def _nodes_view(node: NodeLike, password: str) -> list[dict]:
    """CLUSTER NODES as seen by `node`: id, port, flags, master id, slot count."""
    text = rc.call(node, password, "CLUSTER", "NODES")
    if isinstance(text, dict):  # redis-py may parse it already
        raise DatakitError("unexpected CLUSTER NODES reply")
    view = []
    for line in text.strip().splitlines():
        fields = line.split()
        addr, flags = fields[1], set(fields[2].split(","))
        slots = 0
        for part in fields[8:]:
            if part.startswith("["):
                continue
            lo, _, hi = part.partition("-")
            slots += int(hi or lo) - int(lo) + 1
        view.append({"id": fields[0], "port": int(addr.split("@")[0].rsplit(":", 1)[1]),
                     "flags": flags, "master_id": None if fields[3] == "-" else fields[3],
                     "slots": slots})
    return view


def _info(node: dict, password: str) -> dict:
    text = rc.call(node, password, "CLUSTER", "INFO")
    if isinstance(text, dict):
        return text
    return dict(line.split(":", 1) for line in text.strip().splitlines() if ":" in line)


def _ranges(masters: int) -> list[tuple[int, int]]:
    step = SLOTS / masters
    return [(round(i * step), round((i + 1) * step) - 1) for i in range(masters)]


def form_cluster(props: dict) -> dict:
    """Form (or check) the cluster; return when every node says cluster_state:ok, all
    16384 slots are served and every replica's link to its master is up."""
    nodes, password = props["nodes"], props["password"]
    per_master = int(props.get("replicas", 1))
    if len(nodes) % (per_master + 1) or len(nodes) // (per_master + 1) < 3:
        raise DatakitError(f"redis cluster {props['name']}: {len(nodes)} nodes cannot make "
                           f"at least 3 masters with {per_master} replica(s) each")
    masters = nodes[: len(nodes) // (per_master + 1)]
    replicas = nodes[len(masters):]
    timeout = float(props.get("timeout") or 60)
    started = time.monotonic()

    ids = {}
    for node in nodes:
        if _info(node, password).get("cluster_enabled", "1") == "0":
            raise DatakitError(f"{rc.label(node)} is not a cluster node (cluster-enabled no)")
        me = next(n for n in _nodes_view(node, password) if "myself" in n["flags"])
        ids[node["name"]] = me["id"]
    assigned = int(_info(nodes[0], password)["cluster_slots_assigned"])
    known = int(_info(nodes[0], password)["cluster_known_nodes"])

    if assigned == 0 and known == 1:
        for epoch, node in enumerate(nodes, start=1):
            rc.call(node, password, "CLUSTER", "SET-CONFIG-EPOCH", epoch)
        for node, (lo, hi) in zip(masters, _ranges(len(masters)), strict=True):
            rc.call(node, password, "CLUSTER", "ADDSLOTSRANGE", lo, hi)
        for node in nodes[1:]:
            bus = rc.call(node, password, "CONFIG", "GET", "cluster-port")["cluster-port"]
            bus = int(bus) if int(bus) else int(node["port"]) + 10000
            rc.call(nodes[0], password, "CLUSTER", "MEET", node.get("host") or rd.HOST,
                    int(node["port"]), bus)
    elif assigned == SLOTS and known != len(nodes):
        raise DatakitError(f"redis cluster {props['name']} has {known} nodes and the stack "
                           f"asks for {len(nodes)}: adding or removing cluster nodes "
                           "(resharding) is not supported yet; keep the node count or "
                           "make the cluster again (`datakit down` then `up`)")
    elif assigned != SLOTS:
        raise DatakitError(f"redis cluster {props['name']} is half formed ({assigned} of "
                           f"{SLOTS} slots): delete its nodes and run `datakit up` again")

    def all_known() -> bool:
        for node in nodes:
            view = _nodes_view(node, password)
            if {n["id"] for n in view if not n["flags"] & {"handshake", "noaddr"}} \
                    != set(ids.values()):
                raise DatakitError(f"{rc.label(node)} knows {len(view)} of {len(nodes)} nodes")
        return True

    wait_until(all_known, what=f"redis cluster {props['name']} nodes meeting",
               timeout=timeout)
    if assigned == 0:
        for i, node in enumerate(replicas):
            master = masters[i % len(masters)]
            rc.call(node, password, "CLUSTER", "REPLICATE", ids[master["name"]])

    def ready() -> bool:
        for node in nodes:
            info = _info(node, password)
            if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != SLOTS:
                raise DatakitError(f"{rc.label(node)}: cluster_state {info['cluster_state']}, "
                                   f"{info['cluster_slots_ok']} slots ok")
            state = rc.info(node, password, "replication")
            if state["role"] == "slave" and state.get("master_link_status") != "up":
                raise DatakitError(f"{rc.label(node)}: link to its master is "
                                   f"{state.get('master_link_status')}")
        view = _nodes_view(nodes[0], password)
        if sum(1 for n in view if "slave" in n["flags"]) < len(replicas):
            raise DatakitError("not every replica has a master yet")
        return True

    wait_until(ready, what=f"redis cluster {props['name']} serving all {SLOTS} slots",
               timeout=timeout)
    return {"name": props["name"], "nodes": describe(nodes, password),
            "waited_s": round(time.monotonic() - started, 3)}


def describe(nodes: list[NodeLike], password: str) -> list[dict]:
    """The live roles, asked of the first node that answers."""
    for node in nodes:
        try:
            view = _nodes_view(node, password)
        except rc.WrongPassword:
            raise
        except Exception:  # noqa: BLE001 - ask the next one
            continue
        by_port = {n["port"]: n for n in view}
        return [{"name": at.name, "port": at.port, "id": by_port.get(at.port, {}).get("id"),
                 "role": _role(by_port.get(at.port)),
                 "master_id": by_port.get(at.port, {}).get("master_id"),
                 "slots": by_port.get(at.port, {}).get("slots", 0)}
                for at in map(address, nodes)]
    raise DatakitError("no node of the redis cluster answers")


def _role(entry: dict | None) -> str | None:
    if entry is None:
        return None
    if "fail" in entry["flags"]:
        return "failed"
    return "master" if "master" in entry["flags"] else "replica"


def health(props: dict) -> dict:
    """The cluster as its nodes see it: state and slots from the first that answers."""
    for node in props["nodes"]:
        try:
            info = _info(node, props["password"])
        except rc.WrongPassword:
            raise
        except Exception:  # noqa: BLE001 - ask the next one
            continue
        return {"state": info["cluster_state"], "slots_ok": int(info["cluster_slots_ok"]),
                "known_nodes": int(info["cluster_known_nodes"]),
                "nodes": describe(props["nodes"], props["password"])}
    return {"state": "down", "slots_ok": 0, "known_nodes": 0, "nodes": []}


def delete(props: dict, outs: dict | None = None) -> None:
    """Nothing to undo: the nodes' own resources stop them and remove their dirs."""
