"""Patroni's part of the PostgreSQL topology (`postgres.patroni`), checked as Patroni 4.1 would.

Patroni does not refuse a timeout below its floors or a `loop_wait + 2 x retry_timeout`
above `ttl`: it raises or shortens the values and logs a warning
(`patroni/config.py`, `_validate_and_adjust_timeouts`), so the stack would not run with
the values it states. Nor does it refuse a server setting under the minimum it needs
(`patroni/postgresql/config.py`, `CMDLINE_OPTIONS`): it uses its own default instead.
Here each of those is a named problem, so what the stack file says is what runs.

Timeouts are whole seconds, as Patroni takes them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from datakit.topology.problems import Problem, Spec
from datakit.topology.units import Size

# Where every datakit Patroni cluster keeps its keys in etcd: <NAMESPACE><scope>/...
NAMESPACE = "/datakit/"
# Patroni 4.1's floors (config.py, _validate_and_adjust_timeouts; validator.py's schema).
TIMEOUT_FLOORS = {"ttl": 20, "loop_wait": 1, "retry_timeout": 3}
# Server settings Patroni passes on the postmaster's command line, with the minimum below
# which it silently uses its default (postgresql/config.py, CMDLINE_OPTIONS).
SETTING_FLOORS = {
    "max_connections": 25,
    "max_wal_senders": 3,
    "max_replication_slots": 4,
    "max_locks_per_transaction": 32,
    "max_worker_processes": 2,
}
Seconds = Annotated[int, Field(ge=0, description="seconds")]


class PatroniSettings(Spec):
    """The cluster-wide settings Patroni keeps in etcd, and each member's REST API port."""

    ttl: Seconds = Field(30, description="The leader lease, in seconds: a lost leader is "
                         "replaced about ttl s later; at least loop_wait + 2 x retry_timeout.")
    loop_wait: Seconds = Field(10, description="Seconds between runs of each member's HA "
                               "loop.")
    retry_timeout: Seconds = Field(10, description="Seconds etcd and PostgreSQL calls are "
                                   "retried.")
    failsafe_mode: bool = Field(False, description="With etcd unreachable, a leader that "
                                "still reaches every member over REST stays primary instead "
                                "of demoting itself.")
    maximum_lag_on_failover: Annotated[Size, Field(ge=0)] = Field(
        1024**2, description="No failover to a replica more than this far behind the last "
        "known leader position.")
    primary_start_timeout: Seconds = Field(
        300, description="Seconds a crashed postmaster is restarted in place before a "
        "failover; 0 fails over at once.")
    synchronous_mode_strict: bool = Field(
        False, description="Writes wait, rather than go on without a synchronous standby, "
        "when none is left.")
    member_slots_ttl: Seconds = Field(
        1800, description="Seconds the leader keeps the slot (and so the WAL) of a member "
        "gone from the cluster, so a node back within it resumes streaming; 0 drops it at "
        "once. Above 0, replicas keep their peers' slots too, so a new leader has them "
        "when promoted and its standbys stream at once.")
    rest_port_base: int = Field(64150, description="pg-N's Patroni REST API listens on "
                                "rest_port_base + N - 1.")


def patroni_problems(p: PatroniSettings, *, synchronous_standbys: int,
                     settings: dict[str, tuple[str, object]]) -> list[Problem]:
    """What Patroni would silently change: timeouts under its floors or breaking its rule,
    settings under its minimums, and combinations that cannot mean what they say.
    `settings`: every server setting by name (named ones and `extra` alike) as (its key
    path in the stack config, its value)."""
    out = []
    for name, floor in TIMEOUT_FLOORS.items():
        value = getattr(p, name)
        if value < floor:
            out.append(Problem(
                f"postgres.patroni.{name}",
                f"{value} s is under Patroni's floor, which it would use instead",
                f">= {floor}"))
    need = p.loop_wait + 2 * p.retry_timeout
    if need > p.ttl:
        out.append(Problem(
            "postgres.patroni.ttl",
            f"{p.ttl} s is less than loop_wait + 2 x retry_timeout = {p.loop_wait} + 2 x "
            f"{p.retry_timeout} = {need} s (Patroni would shorten loop_wait and retry_timeout)",
            f">= {need}, or smaller postgres.patroni.loop_wait / retry_timeout"))
    if p.synchronous_mode_strict and synchronous_standbys == 0:
        out.append(Problem(
            "postgres.patroni.synchronous_mode_strict",
            "is true but postgres.synchronous_standbys is 0 (asynchronous): there is no "
            "synchronous standby to wait for",
            "false, or postgres.synchronous_standbys >= 1"))
    out += _setting_problems(settings)
    return out


def _setting_problems(settings: dict[str, tuple[str, object]]) -> list[Problem]:
    out = []
    for name, floor in SETTING_FLOORS.items():
        key, value = settings.get(name, ("", None))
        if isinstance(value, int) and not isinstance(value, bool) and value < floor:
            out.append(Problem(key, f"{value} is under Patroni's minimum, and it would run "
                               "PostgreSQL with its own default instead", f">= {floor}"))
    if "wal_log_hints" in settings:
        key, hints = settings["wal_log_hints"]
        if hints is False or str(hints).lower() in ("off", "false", "0", "no"):
            out.append(Problem(
                key, "is off, but Patroni rejoins a former primary with pg_rewind, which "
                "needs it", "on (or leave it out: Patroni turns it on)"))
    return out
