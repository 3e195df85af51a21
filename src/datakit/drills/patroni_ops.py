"""What the PostgreSQL and etcd drills ask of Patroni and etcd, from the stack's outputs:
the members' REST APIs (each node's `rest_url`, the REST user and password), Patroni's
view of the cluster, its dynamic configuration, and the etcd members' health.

Drills only watch through these (and inject their fault through node control); the one
change they make is the non-durable mode's, which turns the synchronous quorum off
through `PATCH /config` for the run and back afterwards.
"""

from __future__ import annotations

from datakit.errors import DatakitError
from datakit.nodes import etcd, patroni, patroni_cluster
from datakit.stack.schema import Node, StackOutputs


def member(node: Node, outputs: StackOutputs) -> dict:
    """The props nodes.patroni needs to reach `node`'s REST API."""
    if not node.rest_url:
        raise DatakitError(f"node {node.name}: the stack's outputs name no Patroni REST API "
                           "(rest_url): run `datakit up` with this datakit")
    return outputs.reach(node, rest_port=node.rest_port,
                         rest_user=outputs.endpoints.postgres.rest_user,
                         rest_password=outputs.need_secrets().postgres.rest)


def members(outputs: StackOutputs) -> list[dict]:
    return [member(n, outputs) for n in outputs.of("postgres")]


def view(outputs: StackOutputs) -> dict:
    """Patroni's `/cluster`, from the first member that answers."""
    return patroni_cluster.cluster_view(members(outputs))


def leader(outputs: StackOutputs) -> str | None:
    """The member Patroni names leader now (None when there is not exactly one)."""
    return patroni_cluster.leader_of(view(outputs))


def config(outputs: StackOutputs) -> dict:
    for props in members(outputs):
        try:
            status, answer = patroni.rest(props, "/config")
        except DatakitError:
            continue
        if status == 200 and isinstance(answer, dict):
            return answer
    raise DatakitError("no Patroni member answers GET /config")


def quorum(cfg: dict) -> int:
    """The configured count of quorum standbys (0: asynchronous)."""
    return int(cfg.get("synchronous_node_count") or 0) if cfg.get("synchronous_mode") else 0


def patch(outputs: StackOutputs, body: dict) -> None:
    errors = []
    for props in members(outputs):
        try:
            status, answer = patroni.rest(props, "/config", body=body, method="PATCH")
        except DatakitError as exc:
            errors.append(str(exc))
            continue
        if status == 200:
            return
        errors.append(f"{props['name']}: PATCH /config answered {status}: {answer}")
    raise DatakitError("changing Patroni's configuration failed: " + "; ".join(errors))


def wait_ready(outputs: StackOutputs, *, synchronous_standbys: int,
               timeout: float = 120.0) -> dict:
    """Until one leader runs, every member streams and the quorum is listed."""
    return patroni_cluster.wait_cluster(members(outputs), synchronous_standbys=synchronous_standbys,
                                timeout=timeout)


def member_state(node: Node, outputs: StackOutputs) -> dict:
    """The member's own `/patroni` (role, state, timeline), or {"error": ...}."""
    try:
        return patroni.member_status(member(node, outputs), timeout=1.0)
    except DatakitError as exc:
        return {"error": str(exc)}


# --------------------------------------------------------------------------- etcd


def etcd_members(outputs: StackOutputs) -> list[dict]:
    return [outputs.reach(n) for n in outputs.of("etcd")]


def etcd_health(outputs: StackOutputs, nodes: list[Node] | None = None) -> dict:
    chosen = etcd_members(outputs) if nodes is None else [outputs.reach(n) for n in nodes]
    return etcd.cluster_health(chosen, timeout=1.0)


def etcd_leader(outputs: StackOutputs, nodes: list[Node] | None = None) -> str | None:
    return etcd_health(outputs, nodes)["leader"]


def wait_etcd(outputs: StackOutputs, *, timeout: float = 60.0) -> dict:
    return etcd.wait_cluster(etcd_members(outputs), timeout=timeout)
