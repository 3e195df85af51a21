"""Redis Sentinels on loopback: one per resource, plus a group check that they agree.

A Sentinel is ready when it answers with its password and monitors the live master with
auth (it sees as many replicas as the master lists, which takes an authenticated INFO).
Sentinels find each other through the master's hello channel, usually in about 2 s but
sometimes about 10 s: a separate group resource (`wait_sentinels`) waits, after all
Sentinels are made, until each sees the others and `SENTINEL CKQUORUM` is OK, so no
Sentinel's `create` waits on another's (the dynamic provider runs at most 4 calls at once).

props keys: name, port, data_dir, password (the Sentinel's own: requirepass and
sentinel-pass, shared by the group), master_name, master_password (auth-pass), quorum,
settings (down-after-milliseconds, failover-timeout, parallel-syncs), peers (the data
nodes, [{name, port}], among which the live master is found).
outs keys: those of redis.create_server's outs, plus master ({host, port} monitored).
"""

from __future__ import annotations

import time

import redis as redis_py

from datakit.errors import DatakitError
from datakit.nodes import redis as rd
from datakit.nodes import redis_client as rc
from datakit.nodes import rolling, tls
from datakit.nodes.address import NodeLike
from datakit.nodes.process import require_free
from datakit.nodes.readiness import wait_until
from datakit.nodes.redis_conf import config_value, render_sentinel, write_private

REPLACE_KEYS = frozenset({"name", "host", "port", "data_dir", "master_name", "password"})


def _props(props: dict) -> dict:
    return {**props, "sentinel": True}


def _pairs(reply) -> dict:
    if isinstance(reply, dict):  # redis-py parsed it already
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


def master_state(node: NodeLike, password: str, master_name: str) -> dict:
    """SENTINEL MASTER as a dict (flags, ip, port, num-slaves, num-other-sentinels...)."""
    return _pairs(rc.call(node, password, "SENTINEL", "MASTER", master_name, kind="sentinel"))


def create_sentinel(props: dict) -> dict:
    """Start a Sentinel monitoring the live master (with auth-pass); ready when it sees
    the master up and as many replicas as the master lists. Idempotent."""
    props = _props(props)
    node = rd._node(props)
    node_dir, conf, _, _ = rd.paths(props)
    if not rd._running(props):
        require_free(node["port"], rc.label(node, "sentinel"), node["host"])
    account = rd._account()
    account.own(node_dir, 0o700)
    files = tls.write(props, account)  # its own certificate is how it reaches its peers
    master = rc.live_master(tls.with_own(props, props.get("peers") or []),
                            password=props["master_password"])
    if master is None:
        raise DatakitError(f"{rc.label(node, 'sentinel')}: no live Redis master among its "
                           "peers to monitor; start the master first")
    fresh = not conf.exists()
    try:
        if fresh:
            write_private(conf, render_sentinel(
                name=props["name"], port=node["port"], node_dir=node_dir,
                password=props["password"], master_name=props["master_name"], master=master,
                master_password=props["master_password"], quorum=int(props["quorum"]),
                settings=props.get("settings") or {}, tls=files, host=rd.host_of(props)),
                account)
        outs = rd.launch(props)
        replicas = len(rc.role(master, props["master_password"])[2])

        def monitoring() -> bool:
            state = master_state(node, props["password"], props["master_name"])
            return state["flags"] == "master" and int(state["num-slaves"]) >= replicas

        rd.wait(monitoring, props, outs["pid"], outs["start_time"],
                what=f"{rc.label(node, 'sentinel')} monitoring {props['master_name']}")
        return {**outs, "master": {"host": master.get("host") or rd.HOST,
                                   "port": int(master["port"])}}
    except BaseException:
        if fresh:
            rd._undo(props)
        raise


def wait_sentinels(props: dict) -> dict:
    """The group is ready when every Sentinel sees all the others, all name the same
    master, and `SENTINEL CKQUORUM` is OK on each.

    props: sentinels ([{name, port}]), password, master_name, timeout (default 60 s).
    outs: master ({host, port}), sentinels (names), waited_s.
    """
    sentinels = props["sentinels"]
    name, password = props["master_name"], props["password"]
    started = time.monotonic()
    masters: set[tuple[str, int]] = set()

    def agreed() -> bool:
        masters.clear()
        for node in sentinels:
            seen = rc.call(node, password, "SENTINEL", "SENTINELS", name, kind="sentinel")
            if len(seen) < len(sentinels) - 1:
                raise DatakitError(f"{rc.label(node, 'sentinel')} sees {len(seen)} of "
                                   f"{len(sentinels) - 1} other Sentinels")
            rc.call(node, password, "SENTINEL", "CKQUORUM", name, kind="sentinel")
            host, port = rc.call(node, password, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name,
                                 kind="sentinel")
            masters.add((host, int(port)))
        return len(masters) == 1

    refused: list[Exception] = []

    def probe() -> bool:
        try:
            return agreed()
        except rc.WrongPassword as exc:
            refused.append(exc)
            raise

    def fatal() -> str | None:
        if refused:
            raise refused[-1]
        return None

    wait_until(probe, what=f"Sentinels of {name} agreeing",
                  timeout=float(props.get("timeout") or 60), alive=fatal)
    host, port = masters.pop()
    return {"master": {"host": host, "port": port},
            "sentinels": [s.get("name") for s in sentinels],
            "waited_s": round(time.monotonic() - started, 3)}


def health(props: dict, outs: dict) -> dict:
    """Alive? and what the Sentinel thinks: master address, flags, quorum reachable."""
    props = _props(props)
    node = rd._node(props)
    result = {"name": props["name"], "port": node["port"], "alive": rd.alive(props, outs),
              "role": "sentinel", "master": None, "flags": None, "quorum_ok": False,
              "error": None}
    if not result["alive"]:
        result["error"] = "not running"
        return result
    try:
        state = master_state(node, props["password"], props["master_name"])
        result.update(master={"host": state["ip"], "port": int(state["port"])},
                      flags=state["flags"])
        rc.call(node, props["password"], "SENTINEL", "CKQUORUM", props["master_name"],
                kind="sentinel")
        result["quorum_ok"] = True
    except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
        result["error"] = str(exc)
    return result


def update(old_props: dict, outs: dict, new_props: dict) -> dict:
    """Apply changed Sentinel settings, quorum and master password with SENTINEL SET
    (Sentinel persists them itself). Returns outs with `applied` = {set: [...]}."""
    new_props = _props(new_props)
    node = rd._node(new_props)
    name = new_props["master_name"]
    if old_props.get("password") != new_props.get("password"):
        raise DatakitError(f"{rc.label(node, 'sentinel')}: a new Sentinel password is not "
                           "applied in place; replace the Sentinels (`pulumi up --replace` "
                           "on each) to change it")
    old_set, new_set = old_props.get("settings") or {}, new_props.get("settings") or {}
    changes = {k: new_set[k] for k in new_set if old_set.get(k) != new_set[k]}
    if old_props.get("quorum") != new_props.get("quorum"):
        changes["quorum"] = int(new_props["quorum"])
    if old_props.get("master_password") != new_props.get("master_password"):
        changes["auth-pass"] = new_props["master_password"]
    for key, value in changes.items():
        try:
            rc.call(node, new_props["password"], "SENTINEL", "SET", name, key,
                    config_value(value), kind="sentinel")
        except redis_py.ResponseError as exc:
            raise DatakitError(f"{rc.label(node, 'sentinel')}: setting {key} refused ({exc}); "
                               "fix redis.sentinel in the stack config") from None
    if old_props.get("tls") != new_props.get("tls"):
        # Sentinel cannot CONFIG SET its TLS files: it restarts on its own state (a
        # Sentinel away for a moment changes nothing; the others keep the quorum).
        tls.write(new_props, rd._account())
        with rolling.one_at_a_time(new_props["data_dir"], what=rc.label(node, "sentinel")):
            rd.stop(new_props, outs)
            outs = {**outs, **rd.launch(new_props)}
    return {**outs, "applied": {"set": sorted(changes)}}


# Teardown and process control are those of every Redis daemon.
def delete(props: dict, outs: dict | None = None) -> None:
    rd.delete(_props(props), outs)


def stop(props: dict, outs: dict | None = None) -> None:
    rd.stop(_props(props), outs)


def start(props: dict, outs: dict | None = None) -> dict:
    return rd.start(_props(props), outs)


def alive(props: dict, outs: dict) -> bool:
    return rd.alive(_props(props), outs)
