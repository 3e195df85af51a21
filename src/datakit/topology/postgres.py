"""The PostgreSQL part of a topology: nodes pg-1..pg-N, streaming replication, settings, pool.

A node's identity is not its role: pg-1 is only the *initial* primary (the member that
initialises the cluster). After a failover the same names stay; Patroni keeps whoever
leads with `synchronous_standbys` quorum standbys among the others.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from datakit.paths import PROJECT_DIR
from datakit.topology.patroni import PatroniSettings, patroni_problems
from datakit.topology.problems import Problem, Spec, key_path
from datakit.topology.units import Size, render_size

PositiveSize = Annotated[Size, Field(gt=0)]
PgIdentifier = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
GucValue = str | int | float | bool

# Set by the substrate from the topology itself; an `extra` entry must not override them.
MANAGED_GUCS = frozenset(
    {
        "port",
        "listen_addresses",
        "data_directory",
        "hba_file",
        "ident_file",
        "config_file",
        "unix_socket_directories",
        "primary_conninfo",
        "primary_slot_name",
        "synchronous_standby_names",
        "archive_mode",
        "archive_command",
        "restore_command",
        "cluster_name",
        "hot_standby",
    }
)


class PostgresSettings(Spec):
    """Server settings (GUCs). Sizes are bytes after validation; `gucs()` renders them."""

    max_connections: int = Field(100, gt=0)
    shared_buffers: PositiveSize = 128 * 1024**2
    effective_cache_size: PositiveSize = 512 * 1024**2
    maintenance_work_mem: PositiveSize = 64 * 1024**2
    wal_level: Literal["replica", "logical"] = "replica"
    max_wal_senders: int = Field(10, ge=0)
    max_replication_slots: int = Field(10, ge=0)
    hot_standby_feedback: bool = True
    password_encryption: Literal["scram-sha-256"] = "scram-sha-256"
    synchronous_commit: Literal["on", "remote_apply", "remote_write", "local", "off"] = "on"
    extra: dict[str, GucValue] = {}

    def gucs(self) -> dict[str, str]:
        """Every setting as postgresql.conf would hold it (sizes in kB/MB/GB, booleans on/off)."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            if name != "extra":
                out[name] = _guc(name, getattr(self, name))
        for name, value in self.extra.items():
            out[name] = _guc(name, value)
        return out


def _guc(name: str, value: GucValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if name in {"shared_buffers", "effective_cache_size", "maintenance_work_mem"}:
        return render_size(int(value))
    return str(value)


class PoolSettings(Spec):
    """The client pool (psycopg_pool) each load-test process and the writer use."""

    min_size: int = Field(5, ge=0)
    max_size: int = Field(25, gt=0)
    acquire_timeout_s: float = Field(30.0, gt=0)
    idle_timeout_s: float = Field(600.0, gt=0)
    max_lifetime_s: float = Field(1800.0, gt=0)


class PostgresSpec(Spec):
    """PostgreSQL: `nodes` in all (the initial primary pg-1 and nodes-1 streaming replicas)."""

    version: int = Field(15, ge=12, le=18)
    nodes: int = Field(3, gt=0)
    synchronous_standbys: int = Field(1, ge=0)
    port_base: int = 64100
    database: PgIdentifier = "datakit"
    app_user: PgIdentifier = "datakit_app"
    settings: PostgresSettings = PostgresSettings()
    pool: PoolSettings = PoolSettings()
    # Patroni's timeouts and failover rules; synchronous_standbys is its quorum count.
    patroni: PatroniSettings = PatroniSettings()
    archive: bool = False
    # The migration files `pulumi up` applies: a folder, relative to the project.
    migrations: str = "migrations"

    @property
    def replicas(self) -> int:
        return self.nodes - 1

    @property
    def node_names(self) -> list[str]:
        return [f"pg-{i}" for i in range(1, self.nodes + 1)]

    def port(self, name: str) -> int:
        return self.port_base + self.node_names.index(name)

    def rest_port(self, name: str) -> int:
        """The port of node `name`'s Patroni REST API."""
        return self.patroni.rest_port_base + self.node_names.index(name)

    def problems(self) -> list[Problem]:
        out = []
        s = self.settings
        if self.synchronous_standbys > self.replicas:
            out.append(
                Problem(
                    "postgres.synchronous_standbys",
                    f"{self.synchronous_standbys} synchronous standbys but only {self.replicas} "
                    f"replicas (nodes {self.nodes})",
                    f"0..{self.replicas} (0 = asynchronous)",
                )
            )
        if s.max_wal_senders < self.replicas + 2:
            out.append(
                Problem(
                    "postgres.settings.max_wal_senders",
                    f"{s.max_wal_senders} is too few for {self.replicas} replicas "
                    "plus a base backup",
                    f">= {self.replicas + 2} (replicas + 2)",
                )
            )
        if s.max_replication_slots < self.replicas:
            out.append(
                Problem(
                    "postgres.settings.max_replication_slots",
                    f"{s.max_replication_slots} is fewer than one slot per replica",
                    f">= {self.replicas}",
                )
            )
        if self.pool.min_size > self.pool.max_size:
            out.append(
                Problem(
                    "postgres.pool.min_size",
                    f"{self.pool.min_size} is larger than max_size {self.pool.max_size}",
                    f"0..{self.pool.max_size}",
                )
            )
        if self.pool.max_size >= s.max_connections:
            out.append(
                Problem(
                    "postgres.pool.max_size",
                    f"{self.pool.max_size} does not fit in max_connections {s.max_connections}",
                    f"< {s.max_connections} (postgres.settings.max_connections)",
                )
            )
        if not (PROJECT_DIR / self.migrations).is_dir():
            out.append(Problem("postgres.migrations", f"folder {self.migrations} not found",
                               "a folder of V<version>__<name>.sql files, relative to "
                               f"{PROJECT_DIR}"))
        modelled = set(PostgresSettings.model_fields) - {"extra"}
        keyed: dict[str, tuple[str, object]] = {
            name: (key_path("postgres", "settings", name), getattr(s, name)) for name in modelled}
        keyed.update({name: (key_path("postgres", "settings", "extra", name), value)
                      for name, value in s.extra.items() if name not in modelled})
        named = {p.path for p in out}  # a stricter check above already names the key
        out += [p for p in patroni_problems(self.patroni, settings=keyed,
                                            synchronous_standbys=self.synchronous_standbys)
                if p.path not in named]
        for name in s.extra:
            if name in modelled:
                out.append(
                    Problem(
                        key_path("postgres", "settings", "extra", name),
                        "is a named setting",
                        f"set postgres.settings.{name}",
                    )
                )
            elif name in MANAGED_GUCS:
                out.append(
                    Problem(
                        key_path("postgres", "settings", "extra", name),
                        "is set by datakit from the topology",
                        "any GUC except " + ", ".join(sorted(MANAGED_GUCS)),
                    )
                )
        return out
