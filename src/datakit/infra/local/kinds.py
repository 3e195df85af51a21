"""The kinds of local node: what `create`, `update`, `delete` and `refresh` do for each.

Each kind binds the plain node functions of one service module (etcd.py, patroni*.py,
redis*.py, kafka.py, the migration runner) to the dynamic provider's four calls. `replace_keys` are
the spec keys whose change makes a new node; any other change is an in-place update.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Spec = dict[str, Any]
State = dict[str, Any]


def _always(_spec: Spec, _state: State) -> bool:
    return True


def _nothing(_spec: Spec, _state: State) -> None:
    return None


@dataclass(frozen=True)
class Kind:
    create: Callable[[Spec], State]
    delete: Callable[[Spec, State], None] = _nothing
    alive: Callable[[Spec, State], bool] = _always
    update: Callable[[Spec, State, Spec], State] | None = None
    replace_keys: frozenset[str] = frozenset()
    # The live process of a node, which a drill may have restarted: keeps handles truthful.
    live: Callable[[Spec, State], tuple[int, int] | None] | None = None

    def apply_update(self, old: Spec, state: State, new: Spec) -> State:
        return self.update(old, state, new) if self.update else self.create(new)

    def refreshed(self, spec: Spec, state: State) -> State:
        """`state` with the pid and start time of the process serving the node now."""
        found = self.live(spec, state) if self.live else None
        if not found:
            return state
        pid, started = found
        key = "started" if "started" in state else "start_time"
        return {**state, "pid": pid, key: started}


# Peers only say where to look for the live primary/master: a changed peer list (scaling)
# is no reason to touch a node.
NODE_KEYS = frozenset({"name", "host", "port", "data_dir", "version"})


def _etcd() -> dict[str, Kind]:
    from datakit.nodes import etcd

    return {
        "etcd-member": Kind(etcd.create, etcd.delete, etcd.alive, etcd.update, etcd.REPLACE_KEYS,
                            etcd.live),
        # The group: every member healthy under one leader. Deleted after every Patroni
        # member (they depend on it) and before the etcd members: it removes the clusters'
        # keys then, so a store that outlives the stack keeps none of them.
        "etcd-cluster": Kind(lambda spec: etcd.wait_cluster(spec["members"]),
                             lambda spec, _st: _forget_prefixes(spec),
                             update=lambda _o, _st, new: etcd.wait_cluster(new["members"])),
    }


def _forget_prefixes(spec: Spec) -> None:
    from datakit.nodes import etcd

    for prefix in spec.get("prefixes") or []:
        with contextlib.suppress(etcd.Unreachable):  # the members go next, with their data
            etcd.delete_prefix(spec["members"], prefix)


# A member is its name, ports, dirs, cluster and version; settings, passwords and the etcd
# list are in-place updates (patroni_member), cluster-wide values the group's (converge).
PATRONI_KEYS = frozenset({"name", "host", "port", "rest_port", "data_dir", "version", "scope",
                          "namespace"})


def _patroni() -> dict[str, Kind]:
    from datakit.nodes import patroni, patroni_config, patroni_member

    def update(old, state, new):
        return {**state, **patroni_member.update(old, state, new)}

    def remove_all(spec, _state):
        # The whole cluster goes (the group is deleted only with its members): kill rather
        # than stop, or each stop hands the leader key to a member that is leaving too.
        for member in spec["members"]:
            patroni.kill(member)

    return {
        "patroni-member": Kind(lambda spec: patroni.create(spec, wait=False), patroni.delete,
                               patroni.alive, update, PATRONI_KEYS, patroni.patroni_process),
        "patroni-cluster": Kind(patroni_config.converge, remove_all,
                                update=lambda _o, _st, new: patroni_config.converge(new)),
    }


def _redis() -> dict[str, Kind]:
    from datakit.nodes import redis as rd
    from datakit.nodes import redis_cluster, redis_sentinel

    def update(module):
        return lambda old, state, new: {**state, **module.update(old, state, new)}

    def cluster_ok(spec, _state):
        return redis_cluster.health(spec).get("state") == "ok"

    def live(spec, _state):
        return rd._running(spec)

    return {
        "redis-server": Kind(rd.create_server, rd.delete, rd.alive, update(rd),
                             NODE_KEYS | {"cluster"}, live),
        "redis-sentinel": Kind(redis_sentinel.create_sentinel, redis_sentinel.delete,
                               redis_sentinel.alive, update(redis_sentinel),
                               NODE_KEYS | {"master_name"}, live),
        "redis-sentinels": Kind(redis_sentinel.wait_sentinels),
        "redis-cluster": Kind(redis_cluster.form_cluster, alive=cluster_ok,
                              update=lambda _o, _st, new: redis_cluster.form_cluster(new)),
    }


def _kafka() -> dict[str, Kind]:
    from datakit.nodes import kafka, kafka_acls

    def restart(old, state, new):
        # Server settings and certificates are read at start: a changed spec restarts the
        # node on its data, one node of the stack at a time.
        return kafka.roll_node(new, state)

    def ensure_topic(spec):
        return {**kafka.ensure_topic(spec), "acls": kafka_acls.grant_app(spec)}

    def delete_topic(spec):
        kafka_acls.revoke_topic(spec)
        kafka.delete_topic(spec)

    return {
        "kafka-node": Kind(kafka.create_node, lambda _s, st: kafka.delete_node(st),
                           lambda _s, st: kafka.live_process(st) is not None, restart,
                           NODE_KEYS | {"node_id", "cluster_id", "controller_port"},
                           lambda _s, st: kafka.live_process(st)),
        "kafka-ready": Kind(kafka.wait_cluster_ready),
        "kafka-topic": Kind(ensure_topic, lambda spec, _st: delete_topic(spec),
                            update=lambda _o, _st, new: ensure_topic(new),
                            replace_keys=frozenset({"name", "replication_factor"})),
    }


def _migrations() -> dict[str, Kind]:
    def apply(spec):
        from datakit.infra.migration_run import apply_for_stack

        return apply_for_stack(spec["dsn"], spec["migrations_dir"])

    return {"migrations": Kind(apply, update=lambda _o, _st, new: apply(new))}


def _metrics() -> dict[str, Kind]:
    from datakit.nodes.metrics import exporters, processes, prometheus

    def restart_exporter(_old, state, new):
        exporters.stop(new, state)  # a new password or target is read at start
        return exporters.start(new)

    def update_prometheus(old, state, new):
        # The retention is a flag of the running server; targets, rules and the scrape
        # interval are read again by a reload, which keeps the data.
        if old.get("retention") != new.get("retention"):
            prometheus.stop(new, state)
            return prometheus.start(new)
        return {**state, **prometheus.reload(new, state)}

    return {
        # The exporters' PostgreSQL role, made once on the primary; replicas replay it.
        "metrics-pgmonitor": Kind(_monitor_role, update=lambda _o, _st, new: _monitor_role(new)),
        "metrics-exporter": Kind(exporters.start, exporters.delete, exporters.alive,
                                 restart_exporter, frozenset({"kind", "name", "port", "dir"}),
                                 exporters.running),
        "metrics-processes": Kind(processes.start, processes.delete, processes.alive,
                                  lambda _o, st, new: (processes.stop(new, st),
                                                       processes.start(new))[1],
                                  frozenset({"name", "port", "dir"}), processes.running),
        "metrics-prometheus": Kind(prometheus.start, prometheus.delete, prometheus.alive,
                                   update_prometheus, frozenset({"name", "port", "dir"}),
                                   prometheus.running),
    }


def _monitor_role(spec: Spec) -> State:
    from datakit.errors import DatakitError
    from datakit.nodes.metrics.exporters import ensure_monitor_role
    from datakit.nodes.postgres_client import connect, live_primary

    primary = live_primary(spec["nodes"], user=spec["superuser"], password=spec["password"])
    if primary is None:
        raise DatakitError("no PostgreSQL primary answers: the exporters' role "
                           f"{spec['user']!r} cannot be made; `datakit status` shows why")
    with connect(primary, user=spec["superuser"], password=spec["password"]) as conn:
        ensure_monitor_role(conn, spec["user"], spec["monitor_password"])
    return {"on": primary["name"]}


def _tls() -> dict[str, Kind]:
    from datakit.nodes import tls

    return {"tls-client": Kind(tls.write_client, lambda spec, _st: tls.delete_client(spec),
                               update=lambda _o, _st, new: tls.write_client(new))}


class _Registry(dict):
    """Loads a service's kinds on first use, so a provider imports only what it runs.

    The dynamic provider calls from several threads at once. Two threads importing
    `datakit.topology` and one of its submodules at the same time can deadlock on
    Python's module locks, which then hands one of them a half-made module ("cannot
    import name NAMESPACE from partially initialized module"; seen in `up`): so loading is
    one thread at a time, and the topology package is imported whole first."""

    loaders = {"etcd": _etcd, "patroni": _patroni, "redis": _redis, "kafka": _kafka,
               "migrations": _migrations, "metrics": _metrics, "tls": _tls}
    lock = threading.Lock()

    def __missing__(self, name: str) -> Kind:
        with self.lock:
            if name not in self:
                import datakit.topology  # noqa: F401  (whole, before any submodule)

                self.update(self.loaders[name.split("-")[0]]())
        return dict.__getitem__(self, name)


KINDS: dict[str, Kind] = _Registry()
