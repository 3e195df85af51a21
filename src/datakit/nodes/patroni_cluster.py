"""A Patroni cluster as a whole, through its members' REST APIs: Patroni's view of it
(`GET /cluster`: leader, quorum standbys, each member's state, lag and timeline), what keeps
it from being whole, the wait until it is, and a planned switchover (`POST /switchover`).

The view is Patroni's, from etcd: right after a fault it still shows the members as they
were (a killed leader stays `running` until its key expires), so `wait_cluster` also asks
each member itself, and after a fault a caller first waits for what the fault changes (a
write, a new leader).
"""

from __future__ import annotations

import time

from datakit.errors import DatakitError
from datakit.nodes import patroni
from datakit.nodes.readiness import wait_until


def cluster_view(members: list[dict], *, timeout: float = 2.0) -> dict:
    """`GET /cluster` from the first member that answers; raise naming each one tried."""
    errors = []
    for props in members:
        try:
            return patroni.cluster_status(props, timeout=timeout)
        except DatakitError as exc:
            errors.append(str(exc))
    raise DatakitError("no Patroni member answers: " + "; ".join(errors))


def cluster_problems(view: dict, names: list[str], synchronous_standbys: int) -> list[str]:
    """What keeps a cluster from being ready, from Patroni's `/cluster` view: not exactly
    one running leader, a member missing or not streaming, fewer quorum standbys than the
    configured count. Empty when ready."""
    members = {m["name"]: m for m in view.get("members") or []}
    out = [f"{name} is not in the cluster" for name in names if name not in members]
    leaders = [n for n, m in members.items() if m.get("role") == "leader"]
    if len(leaders) != 1:
        out.append(f"{len(leaders)} leaders ({', '.join(leaders) or 'none'})")
    for name, m in members.items():
        if m.get("role") == "leader":
            if m.get("state") != "running":
                out.append(f"leader {name} is {m.get('state')}")
        elif m.get("state") != "streaming":
            out.append(f"{name} is {m.get('state')}, not streaming")
    standbys = quorum_standbys(view)
    if len(standbys) < synchronous_standbys:
        out.append(f"{len(standbys)} quorum standbys ({', '.join(standbys) or 'none'}) of "
                   f"{synchronous_standbys} configured")
    return out


def quorum_standbys(view: dict) -> list[str]:
    return sorted(m["name"] for m in view.get("members") or []
                  if m.get("role") in ("quorum_standby", "sync_standby"))


def leader_of(view: dict) -> str | None:
    leaders = [m["name"] for m in view.get("members") or [] if m.get("role") == "leader"]
    return leaders[0] if len(leaders) == 1 else None


def wait_cluster(members: list[dict], *, synchronous_standbys: int,
                 timeout: float = patroni.START_TIMEOUT) -> dict:
    """Wait until the cluster is ready: one leader, every member streaming, the quorum
    standbys listed. Returns {leader, quorum_standbys, members, waited_s}.

    The view is Patroni's, from etcd: right after a fault it still shows the members as
    they were (a killed leader stays `running` until its key expires), so after a fault
    wait for what the fault should change (a write, a new leader) before calling this."""
    began = time.monotonic()
    names = [m["name"] for m in members]

    def ready() -> dict:
        view = cluster_view(members)
        if wrong := cluster_problems(view, names, synchronous_standbys):
            raise DatakitError("; ".join(wrong))
        # The view comes from etcd, where a member lost a moment ago still looks as it
        # was until its key expires: each member must also say so itself.
        for props in members:
            if not patroni.serving(patroni.member_status(props)):
                raise DatakitError(f"{patroni.label(props)} does not serve yet")
        return view

    view = wait_until(ready, what=f"Patroni cluster ({', '.join(names)})", timeout=timeout,
                      max_interval=0.25)
    return {"leader": leader_of(view), "quorum_standbys": quorum_standbys(view),
            "members": view["members"], "waited_s": round(time.monotonic() - began, 3)}


def switchover(members: list[dict], *, old: str | None = None, candidate: str | None = None,
               synchronous_standbys: int = 0, timeout: float = 60.0) -> dict:
    """A planned switchover through Patroni's REST API (`POST /switchover`) from `old` (by
    default the leader the members name now), to `candidate` or to the replica Patroni
    picks; returns when the cluster is ready again under the new leader: {old, new,
    took_s}, timed from the request."""
    old = old or leader_of(cluster_view(members))
    began = time.monotonic()
    if old is None:
        raise DatakitError("switchover: the cluster has no single leader to switch from")
    by_name = {m["name"]: m for m in members}
    body = {"leader": old, **({"candidate": candidate} if candidate else {})}
    status, answer = patroni.rest(by_name[old], "/switchover", body=body, timeout=timeout)
    if status != 200:
        raise DatakitError(f"switchover from {old}: Patroni answered {status}: {answer}")

    def switched() -> dict:
        view = cluster_view(members)
        new = leader_of(view)
        if new in (None, old) or (candidate and new != candidate):
            raise DatakitError(f"leader is {new}")
        if wrong := cluster_problems(view, list(by_name), synchronous_standbys):
            raise DatakitError("; ".join(wrong))
        return view

    view = wait_until(switched, what=f"switchover from {old}", timeout=timeout,
                      max_interval=0.25)
    return {"old": old, "new": leader_of(view), "took_s": round(time.monotonic() - began, 3)}
