"""A running Patroni member brought to changed props: role passwords first (on the leader),
then patroni.yml rewritten and Patroni reloaded.

Passwords change in that order so nothing is ever locked out: the roles take their new
passwords on the leader (logging in with whichever of the new and old superuser password
the server still has, so an interrupted rotation converges), and only then does each
member's Patroni get them (SIGHUP: it re-reads patroni.yml, rewrites the replicas'
primary_conninfo and its REST credentials). Established replication connections are not
dropped by a password change. Patroni talks to its own server over the Unix socket (peer),
so the superuser's rotation never cuts Patroni off from it.

Cluster-wide settings (server settings, timeouts, the quorum) are not this module's: they
live in etcd, and `patroni_config.converge` changes them for the whole cluster.
"""

from __future__ import annotations

import os
import signal

from datakit.errors import DatakitError
from datakit.nodes import patroni, patroni_cluster, tls
from datakit.nodes.patroni_conf import host, render, replication_user, superuser
from datakit.nodes.postgres_client import WrongPassword, connect, ensure_role

PASSWORDS = ("superuser_password", "replication_password", "app_password", "rest_password")


def _changed(old: dict, new: dict, keys) -> list[str]:
    return [k for k in keys if old.get(k) != new.get(k)]


def _leader(props: dict) -> dict:
    view = patroni_cluster.cluster_view([props])
    name = patroni_cluster.leader_of(view)
    for member in view.get("members") or []:
        if member["name"] == name:
            return {"name": name, "host": member.get("host") or host(props),
                    "port": int(member.get("port") or 0)}
    raise DatakitError(f"{patroni.label(props)}: the cluster has no leader to change role "
                       "passwords on; run `datakit status` and `datakit up` once it has one")


def rotate_roles(old: dict, new: dict) -> list[str]:
    """Give the changed roles their new passwords on the leader; the roles changed."""
    roles = []
    if old.get("superuser_password") != new.get("superuser_password"):
        roles.append((superuser(new)["username"], new["superuser_password"], "SUPERUSER LOGIN"))
    if old.get("replication_password") != new.get("replication_password"):
        roles.append((replication_user(new)["username"], new["replication_password"],
                      "LOGIN REPLICATION"))
    if new.get("app_user") and old.get("app_password") != new.get("app_password"):
        roles.append((new["app_user"], new["app_password"], "LOGIN"))
    if not roles:
        return []
    leader = _leader(new)
    user = superuser(new)["username"]
    conn = None
    for password in (new["superuser_password"], old.get("superuser_password")):
        try:
            conn = connect(leader, user=user, password=password)
            break
        except WrongPassword:
            continue
    if conn is None:
        raise WrongPassword(f"{patroni.label(new)}: the leader {leader['name']} refuses both "
                            f"the new and the old password of {user!r}")
    with conn:
        conn.execute("set synchronous_commit = local")  # a rotation never waits on a quorum
        for name, password, attributes in roles:
            ensure_role(conn, name, password, attributes=attributes)
    return [r[0] for r in roles]


def _local_part(config: dict) -> dict:
    """patroni.yml without bootstrap, which Patroni reads only once: what a reload changes."""
    return {k: v for k, v in config.items() if k != "bootstrap"}


def update(old: dict, outs: dict, new: dict) -> dict:
    """Apply changed props to a running member; outs with `applied` = {roles, reloaded}."""
    if not patroni.alive(new, outs):
        raise DatakitError(f"{patroni.label(new)}: Patroni is not running: run "
                           "`datakit up --refresh` to bring it back before changing it")
    roles = rotate_roles(old, new) if _changed(old, new, PASSWORDS[:3]) else []
    before, after = render(old), render(new)
    reloaded = False
    if before != after or _changed(old, new, PASSWORDS):
        config = render(new)
        patroni.write_files(new, config, patroni.account())
        if _local_part(before) != _local_part(after):
            live = patroni.patroni_process(new, outs)
            if live:
                os.kill(live[0], signal.SIGHUP)  # Patroni re-reads patroni.yml
                reloaded = True
    if old.get("tls") != new.get("tls"):
        reloaded = reload_certificates(new, outs) or reloaded
    return {**outs, "applied": {"roles": roles, "reloaded": reloaded}}


def reload_certificates(props: dict, outs: dict) -> bool:
    """A reissued certificate: the files written anew, Patroni reloaded (it swaps its REST
    certificate when the serial changes) and the postmaster (it re-reads its ssl files on
    SIGHUP). Open connections keep their session; new ones see the new certificate."""
    tls.write(props, patroni.account())
    reloaded = False
    if live := patroni.patroni_process(props, outs):
        os.kill(live[0], signal.SIGHUP)
        reloaded = True
    if pm := patroni.postmaster(props):
        os.kill(pm[0], signal.SIGHUP)
        reloaded = True
    return reloaded
