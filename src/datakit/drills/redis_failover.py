"""redis-failover: SIGKILL the Redis master under a writer that finds the master through
Sentinel; Sentinel (down-after-milliseconds, then a vote) promotes a replica and the
client follows; once every Sentinel names the new master, the old one is started again as
its replica, as an operator would, and the drill waits for full redundancy.

Durable writes are HSET + `WAIT 1 1000` (acknowledged once a replica has it) on top of
the stack's `min-replicas-to-write`; a write whose WAIT answered 0 is an unknown outcome.
The non-durable mode drops WAIT and min-replicas-to-write and cuts the replication links a
moment before the kill (see `cut_links_then_kill`): the master acknowledges writes that
no replica has, and the checker must find every one of them lost.
"""

from __future__ import annotations

import time

from datakit.drills.checker import check
from datakit.drills.context import DrillContext
from datakit.drills.result import DrillResult, measure
from datakit.drills.targets import RedisTarget, sentinel_client
from datakit.drills.waiting import wait
from datakit.drills.writer import Recorder, Writer, wait_first_ack_after
from datakit.nodes.control import control_for

NAME = "redis-failover"


def applies(outputs: dict) -> str | None:
    mode = outputs["endpoints"]["redis"].get("mode")
    return None if mode == "sentinel" else f"the stack's Redis mode is {mode!r}, not sentinel"


def data_nodes(outputs: dict) -> list[dict]:
    return [n for n in outputs["nodes"] if n["service"] == "redis"]


def _client(node: dict, outputs: dict):
    import redis

    return redis.Redis(host=node["host"], port=node["port"], socket_timeout=1,
                       password=outputs["secrets"]["redis"]["default"], decode_responses=True)


def master_node(outputs: dict) -> dict:
    sentinel, name = sentinel_client(outputs)
    host, port = sentinel.discover_master(name)
    return next(n for n in data_nodes(outputs) if int(n["port"]) == int(port))


def agreed_master(outputs: dict, old: dict) -> dict:
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

    def agreed() -> dict | None:
        seen = views()
        port = next(iter(seen)) if len(seen) == 1 else None
        if port in (None, -1, int(old["port"])):
            return None
        return next(n for n in data_nodes(outputs) if int(n["port"]) == port)

    return wait(agreed, what="every Sentinel to name the new master", timeout=60)


def replicas_of(master: dict, outputs: dict) -> set[int]:
    """Ports of the replicas the master lists as online and caught up enough."""
    with _client(master, outputs) as client:
        info = client.info("replication")
    if info.get("role") != "master":
        return set()
    return {int(v["port"]) for k, v in info.items()
            if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"}


def wait_redundant(outputs: dict, timeout: float = 60.0) -> dict:
    """Until Sentinel's master lists every other data node as an online replica."""
    want = {int(n["port"]) for n in data_nodes(outputs)}

    def full():
        master = master_node(outputs)
        return master if replicas_of(master, outputs) == want - {int(master["port"])} else None

    return wait(full, what="Redis master with every other node replicating",
                timeout=timeout)


def min_replicas(outputs: dict) -> dict[str, int]:
    """`min-replicas-to-write` of every data node, by name."""
    out = {}
    for node in data_nodes(outputs):
        with _client(node, outputs) as client:
            out[node["name"]] = int(client.config_get("min-replicas-to-write")
                                    ["min-replicas-to-write"])
    return out


def set_min_replicas(outputs: dict, value: int | dict[str, int]) -> dict[str, int]:
    """Set `min-replicas-to-write` on every data node, in its config file too (Sentinel's
    CONFIG REWRITE would write it there anyway); returns the values it replaced."""
    before = min_replicas(outputs)
    for node in data_nodes(outputs):
        with _client(node, outputs) as client:
            client.config_set("min-replicas-to-write",
                              value if isinstance(value, int) else value[node["name"]])
            client.config_rewrite()
    return before


def cut_links_then_kill(outputs: dict, old: dict, ctl, gap_s: float = 0.3) -> None:
    """The non-durable mode's fault: the master loses its replication links, takes writes
    alone for `gap_s`, then dies; what it acknowledged in the gap exists nowhere else.

    On loopback a replica is current within microseconds and reconnects at once with a
    partial resync, so a plain kill almost never loses an asynchronous write: the
    replicas are frozen (SIGSTOP) across the gap so that they cannot, as a replica across
    a network blip could not."""
    replicas = [control_for(n, outputs) for n in data_nodes(outputs)
                if n["name"] != old["name"]]
    for one in replicas:
        one.pause()
    try:
        with _client(old, outputs) as client:
            client.client_kill_filter(_type="replica")
        time.sleep(gap_s)
        ctl.kill()
    finally:
        for one in replicas:
            one.resume()


def run(ctx: DrillContext) -> DrillResult:
    out = ctx.outputs
    result = DrillResult(NAME, ctx.stack, durable=ctx.durable)
    old = wait_redundant(out)
    target = RedisTarget(out, ctx.run_id, durable=ctx.durable)
    rec = Recorder()
    writer = Writer(target, rec)
    saved = None if ctx.durable else set_min_replicas(out, 0)
    try:
        writer.start()
        time.sleep(ctx.warmup_s)
        ctx.say(f"killing Redis master {old['name']} (SIGKILL)")
        ctl = control_for(old, out)
        if ctx.durable:
            ctl.kill()
        else:
            cut_links_then_kill(out, old, ctl)
        rec.event("kill")  # the node is dead now
        t_kill = rec.at("kill") or 0.0
        wait(lambda: master_node(out)["name"] != old["name"],
             what="Sentinel to promote a replica", timeout=60)
        rec.event("promoted")
        wait_first_ack_after(rec, t_kill, timeout=60)
        # Back as a replica of the master all Sentinels agree on, never as a stale master.
        ctl.start(replica_of=agreed_master(out, old))
        rec.event("restarted")
        new = wait_redundant(out)
        rec.event("redundant")
        time.sleep(ctx.tail_s)
        result.extra.update(old_master=old["name"], new_master=new["name"])
    finally:
        writer.stop()
        if saved is not None:
            set_min_replicas(out, saved)
    result.check = check(rec, target.read_ids())
    measure(result, rec, "kill")
    if result.check.lost and ctx.durable:
        result.reason = f"{len(result.check.lost)} acknowledged writes lost"
    return result
