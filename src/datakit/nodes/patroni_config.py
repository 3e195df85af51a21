"""A Patroni cluster's dynamic configuration kept as the stack says: `PATCH /config`, then a
restart of each member that Patroni marks `pending_restart`.

Patroni reads `bootstrap.dcs` once, when it initialises the cluster; after that the
cluster-wide configuration (timeouts, the quorum, every server setting) lives in etcd and
changes through `PATCH /config` of any member. Each member's Patroni then rewrites its
PostgreSQL's configuration and reloads it on its next loop; a setting that needs a restart
leaves the member `pending_restart` (with the setting in `pending_restart_reason`), and
datakit restarts those members through `POST /restart`.

The order of restarts matters for the settings a hot standby checks against its primary
(max_connections and the others in HOT_STANDBY_MINIMUMS): a standby may never run with less
than its primary has. Raised, the replicas restart first and the leader last; lowered, the
leader first, and each replica once it has replayed the leader's restart (until then
Patroni starts it with the primary's old values from pg_controldata and keeps it pending,
so it is simply restarted again).

`converge` compares what etcd holds with what the stack wants, so it serves a first `up`
(a cluster bootstrapped earlier by a half-made `up` with other settings), a changed stack
and an unchanged one (nothing to do) alike.
"""

from __future__ import annotations

import time

from patroni.utils import compare_values

from datakit.errors import DatakitError
from datakit.nodes import patroni, patroni_cluster
from datakit.nodes.patroni_conf import dynamic_config
from datakit.nodes.postgres_client import connect
from datakit.nodes.readiness import wait_until

HOT_STANDBY_MINIMUMS = ("max_connections", "max_worker_processes", "max_wal_senders",
                        "max_prepared_transactions", "max_locks_per_transaction")
APPLY_TIMEOUT = 60.0
RESTART_TIMEOUT = 120.0


def patch_for(current: dict, wanted: dict) -> dict:
    """The `PATCH /config` body that turns `current` (what etcd holds) into `wanted`: changed
    keys, and every server setting etcd holds that the stack no longer sets, as null."""
    patch = {k: v for k, v in wanted.items() if k != "postgresql" and current.get(k) != v}
    have_pg, want_pg = current.get("postgresql") or {}, wanted.get("postgresql") or {}
    pg = {k: v for k, v in want_pg.items() if k != "parameters" and have_pg.get(k) != v}
    have, want = have_pg.get("parameters") or {}, want_pg.get("parameters") or {}
    params = {k: v for k, v in want.items() if k not in have or str(have[k]) != str(v)}
    params.update({k: None for k in have if k not in want})
    if params:
        pg["parameters"] = params
    if pg:
        patch["postgresql"] = pg
    return patch


def _config(members: list[dict]) -> dict:
    errors = []
    for props in members:
        try:
            status, answer = patroni.rest(props, "/config")
        except DatakitError as exc:
            errors.append(str(exc))
            continue
        if status == 200 and isinstance(answer, dict):
            return answer
        errors.append(f"{patroni.label(props)}: GET /config answered {status} {answer!r}")
    raise DatakitError("reading the Patroni cluster's configuration: " + "; ".join(errors))


def _patch(members: list[dict], body: dict) -> None:
    status, answer = patroni.rest(members[0], "/config", body=body, method="PATCH", timeout=10)
    if status != 200:
        raise DatakitError(f"{patroni.label(members[0])}: PATCH /config answered {status}: "
                           f"{answer}")


def _member_took(props: dict, spec: dict, params: dict) -> bool:
    """Every changed setting is in force on this member, or Patroni marks it pending."""
    pending = set(patroni.member_status(props).get("pending_restart_reason") or {})
    with connect(props, user=spec.get("superuser") or "postgres",
                 password=spec["superuser_password"], timeout=2) as conn:
        rows = conn.execute("select name, setting, unit, vartype, source from pg_settings "
                            "where name = any(%s)", [list(params)]).fetchall()
    shown = {name: (setting, unit, vartype, source) for name, setting, unit, vartype, source
             in rows}
    for name, value in params.items():
        if name in pending or name not in shown:  # unknown to this server: Patroni drops it
            continue
        setting, unit, vartype, source = shown[name]
        if value is None:
            if source in ("configuration file", "command line"):
                return False
        elif not compare_values(vartype, unit, setting, value):
            return False
    return True


def _wait_taken(spec: dict, params: dict) -> None:
    for props in spec["members"]:
        wait_until(lambda p=props: _member_took(p, spec, params),
                   what=f"{patroni.label(props)} taking the new settings "
                   f"({', '.join(sorted(params))})", timeout=APPLY_TIMEOUT, max_interval=0.5)


def _pending(members: list[dict]) -> dict[str, dict]:
    """name -> /patroni of every member that Patroni marks pending_restart."""
    out = {}
    for props in members:
        state = patroni.member_status(props)
        if state.get("pending_restart"):
            out[props["name"]] = state
    return out


def _restart(props: dict) -> None:
    status, answer = patroni.rest(props, "/restart", body={}, timeout=RESTART_TIMEOUT)
    if status != 200:
        raise DatakitError(f"{patroni.label(props)}: POST /restart answered {status}: {answer}")


def _lowered(patch: dict, current: dict) -> bool:
    have = (current.get("postgresql") or {}).get("parameters") or {}
    want = (patch.get("postgresql") or {}).get("parameters") or {}
    for name in HOT_STANDBY_MINIMUMS:
        if name in want and want[name] is not None and name in have:
            try:
                if int(want[name]) < int(have[name]):
                    return True
            except (TypeError, ValueError):
                continue
    return False


def restart_pending(members: list[dict], *, leader_first: bool,
                    timeout: float = RESTART_TIMEOUT) -> list[str]:
    """Restart every member Patroni marks pending_restart, in the order the hot-standby
    rule needs, until none is left; the names restarted (a replica may appear twice)."""
    done: list[str] = []
    by_name = {m["name"]: m for m in members}
    deadline = time.monotonic() + timeout
    while pending := _pending(members):
        if time.monotonic() > deadline:
            raise DatakitError(f"members still pending a restart after {timeout:g}s: "
                               f"{', '.join(sorted(pending))}")
        leaders = [n for n, s in pending.items() if s.get("role") == "primary"]
        replicas = sorted(n for n in pending if n not in leaders)
        order = leaders + replicas if leader_first else replicas + leaders
        for name in order:
            _restart(by_name[name])
            done.append(name)
            patroni.wait_member(by_name[name], timeout=RESTART_TIMEOUT)
        if leader_first and leaders:
            time.sleep(1)  # replicas replay the leader's new values before the next round
    return done


def converge(spec: dict, *, timeout: float = patroni.START_TIMEOUT) -> dict:
    """Wait for the cluster, bring its dynamic configuration to what `spec` says, restart
    what is pending, and wait for the cluster again with the wanted quorum.

    spec keys: members (member props with name, port, rest_port, data_dir and REST
    credentials), settings, patroni, synchronous_standbys (as for patroni_conf), superuser,
    superuser_password. Returns {leader, quorum_standbys, changed, restarted, waited_s}."""
    began = time.monotonic()
    members = spec["members"]
    patroni_cluster.wait_cluster(members, synchronous_standbys=0, timeout=timeout)
    current = _config(members)
    patch = patch_for(current, dynamic_config(spec))
    restarted: list[str] = []
    if patch:
        _patch(members, patch)
        params = (patch.get("postgresql") or {}).get("parameters") or {}
        if params:
            _wait_taken(spec, params)
    # Also what an earlier, interrupted `up` left pending.
    restarted = restart_pending(members, leader_first=_lowered(patch, current))
    ready = patroni_cluster.wait_cluster(members, synchronous_standbys=int(
        spec.get("synchronous_standbys") or 0), timeout=timeout)
    return {"leader": ready["leader"], "quorum_standbys": ready["quorum_standbys"],
            "changed": sorted(_flat(patch)), "restarted": restarted,
            "waited_s": round(time.monotonic() - began, 3)}


def _flat(patch: dict) -> list[str]:
    out = [k for k in patch if k != "postgresql"]
    pg = patch.get("postgresql") or {}
    out += [f"postgresql.{k}" for k in pg if k != "parameters"]
    out += list(pg.get("parameters") or {})
    return out
