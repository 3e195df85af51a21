"""redis-cluster-failover: SIGKILL one master of a Redis Cluster under a writer that goes
through `redis.cluster.RedisCluster`; the master's replica wins the failover election
(after `cluster-node-timeout`) and takes its slots; the killed node is started again and
rejoins as a replica of the new master; the drill waits for full redundancy
(cluster_state ok on every node, every master with slots has a replica with its link up)
and reads every write back.

The writer writes only keys in the victim's slots (one hash, its tag chosen to hash into
the victim's slot range), so "first acknowledged write after the kill" is the RTO of the
lost shard, not of the healthy ones. Durable writes are HSET + `WAIT 1 1000` sent as one
pipeline on the connection of the node that owns the key (WAIT counts that connection's
writes only, so both must go on the same connection); WAIT answering 0 is an unknown
outcome. `MOVED`/`CLUSTERDOWN`/`NOREPLICAS` refusals and refused connections are known
failures (nothing applied); the client refreshes its slot map after each error.

With `min-replicas-to-write 1` (the stack's durable setting) the promoted replica has no
replica of its own until the killed node rejoins, so it refuses writes (`NOREPLICAS`)
until then: the RTO to the first write includes the restart and the resync. The drill
restarts the killed node as soon as the failover is seen, as an operator or a supervisor
would, and reports the slot takeover time separately (`failover_s`).
"""

from __future__ import annotations

import time

from datakit.drills.checker import check
from datakit.drills.context import DrillContext
from datakit.drills.result import DrillResult, measure
from datakit.drills.waiting import wait
from datakit.drills.writer import NotSent, Recorder, Writer, wait_first_ack_after
from datakit.nodes.control import control_for

NAME = "redis-cluster-failover"
SLOTS = 16384


def applies(outputs: dict) -> str | None:
    mode = outputs["endpoints"]["redis"].get("mode")
    if mode != "cluster":
        return f"the stack's Redis mode is {mode!r}, not cluster"
    return None


def data_nodes(outputs: dict) -> list[dict]:
    return [n for n in outputs["nodes"] if n["service"] == "redis"]


def _password(outputs: dict) -> str:
    return outputs["secrets"]["redis"]["default"]


def node_client(node: dict, outputs: dict, timeout: float = 1.0):
    import redis

    return redis.Redis(host=node["host"], port=int(node["port"]), password=_password(outputs),
                       socket_timeout=timeout, socket_connect_timeout=0.5,
                       decode_responses=True)


def cluster_client(outputs: dict):
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry

    seeds = [ClusterNode(n["host"], int(n["port"])) for n in data_nodes(outputs)]
    return RedisCluster(startup_nodes=seeds, password=_password(outputs),
                        decode_responses=True, socket_timeout=1.0,
                        socket_connect_timeout=0.5,
                        retry=Retry(NoBackoff(), 0))  # the writer records each failure


def _ask(node: dict, outputs: dict, *args):
    client = node_client(node, outputs)
    try:
        return client.execute_command(*args)
    finally:
        client.close()


def view(node: dict, outputs: dict) -> list[dict]:
    """CLUSTER NODES as `node` sees it: id, port, flags, master id, slot ranges, link."""
    text = _ask(node, outputs, "CLUSTER", "NODES")
    out = []
    for line in str(text).strip().splitlines():
        f = line.split()
        ranges = []
        for part in f[8:]:
            if part.startswith("["):
                continue
            lo, _, hi = part.partition("-")
            ranges.append((int(lo), int(hi or lo)))
        out.append({"id": f[0], "port": int(f[1].split("@")[0].rsplit(":", 1)[1]),
                    "flags": set(f[2].split(",")), "master_id": None if f[3] == "-" else f[3],
                    "link": f[7], "ranges": ranges})
    return out


def cluster_info(node: dict, outputs: dict) -> dict:
    text = _ask(node, outputs, "CLUSTER", "INFO")
    if isinstance(text, dict):
        return text
    return dict(line.split(":", 1) for line in str(text).strip().splitlines() if ":" in line)


def _any_view(outputs: dict, skip: set[str] = frozenset()) -> list[dict]:
    last = None
    for node in data_nodes(outputs):
        if node["name"] in skip:
            continue
        try:
            return view(node, outputs)
        except Exception as exc:  # noqa: BLE001 - ask the next node
            last = exc
    raise RuntimeError(f"no Redis Cluster node answers: {last}")


def masters(outputs: dict, skip: set[str] = frozenset()) -> list[tuple[dict, dict]]:
    """(node, view entry) of every live master that serves slots, as a live node sees it."""
    by_port = {int(n["port"]): n for n in data_nodes(outputs)}
    return [(by_port[e["port"]], e) for e in _any_view(outputs, skip)
            if "master" in e["flags"] and e["ranges"] and not e["flags"] & {"fail", "pfail"}
            and e["port"] in by_port]


def redundant(outputs: dict) -> dict | None:
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


def wait_redundant(outputs: dict, timeout: float = 90.0) -> dict:
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


class RedisClusterTarget:
    """One hash field per id, in one key of the victim's slots, through RedisCluster."""

    def __init__(self, outputs: dict, key: str, *, durable: bool = True):
        self.outputs, self.key, self.durable = outputs, key, durable
        self.client = cluster_client(outputs)

    def write(self, op_id: int) -> None:
        import redis
        from redis.exceptions import ClusterDownError, MovedError, TryAgainError

        try:
            if not self.durable:
                self.client.hset(self.key, str(op_id), "1")
                return
            node = self.client.get_node_from_key(self.key)
            conn = self.client.get_redis_connection(node)
            pipe = conn.pipeline(transaction=False)
            pipe.hset(self.key, str(op_id), "1")
            pipe.execute_command("WAIT", 1, 1000)
            _, replicas = pipe.execute()
        except (MovedError, ClusterDownError, TryAgainError) as exc:
            raise NotSent(str(exc)) from None  # refused: nothing applied
        except redis.ResponseError as exc:
            said = str(exc).rsplit("caused error: ", 1)[-1]  # a pipeline names its command
            if said.startswith(("NOREPLICAS", "MOVED", "CLUSTERDOWN", "TRYAGAIN",
                                    "READONLY")):
                raise NotSent(str(exc)) from None
            raise
        except redis.ConnectionError as exc:
            if "connecting to" in str(exc) or "Connection refused" in str(exc):
                raise NotSent(str(exc)) from None
            raise
        if int(replicas) < 1:
            raise TimeoutError("WAIT 1: no replica acknowledged within 1 s")

    def reset(self) -> None:
        """After an error: drop connections and ask the cluster for its slot map again."""
        try:
            self.client.close()
        finally:
            self.client = cluster_client(self.outputs)

    def read_ids(self) -> set[int]:
        client = cluster_client(self.outputs)
        try:
            return {int(k) for k in client.hkeys(self.key)}
        finally:
            client.close()


def run(ctx: DrillContext) -> DrillResult:
    out = ctx.outputs
    result = DrillResult(NAME, ctx.stack, durable=ctx.durable)
    wait_redundant(out)
    victim, entry = masters(out)[0]
    key = key_in(entry["ranges"], ctx.run_id)
    target = RedisClusterTarget(out, key, durable=ctx.durable)
    rec = Recorder()
    writer = Writer(target, rec)
    ctl = control_for(victim, out)
    try:
        writer.start()
        time.sleep(ctx.warmup_s)
        ctx.say(f"killing Redis Cluster master {victim['name']} (SIGKILL)")
        ctl.kill()
        t_kill = rec.event("kill")
        replica_ids = {e["id"] for e in _any_view(out, {victim["name"]})
                       if e["master_id"] == entry["id"]}

        def taken_over():
            for node, e in masters(out, {victim["name"]}):
                if e["id"] in replica_ids and set(e["ranges"]) >= set(entry["ranges"]):
                    return node
            return None

        new = wait(taken_over, what=f"a replica of {victim['name']} to take its "
                   "slots", timeout=60)
        t_failover = rec.event("failover")
        ctx.say(f"{new['name']} serves the slots; restarting {victim['name']}")
        ctl.start()
        rec.event("restarted")
        wait_first_ack_after(rec, t_kill, timeout=60)
        roles = wait_redundant(out)
        rec.event("redundant")
        time.sleep(ctx.tail_s)
        result.extra.update(old_master=victim["name"], new_master=new["name"], key=key,
                            slots=entry["ranges"], failover_s=round(t_failover - t_kill, 3),
                            replicas={str(k): v for k, v in roles.items()})
    finally:
        writer.stop()
        target.client.close()
    result.check = check(rec, target.read_ids())
    measure(result, rec, "kill")
    if result.check.lost and ctx.durable:
        result.reason = f"{len(result.check.lost)} acknowledged writes lost"
    return result
