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

    max_connections: int = Field(100, gt=0, description="The server's connection limit; "
                                 "the pool's max_size must fit under it.")
    shared_buffers: PositiveSize = Field(128 * 1024**2, description="Memory for the buffer "
                                         "cache (counts toward the stack's memory budget).")
    effective_cache_size: PositiveSize = Field(512 * 1024**2, description="The planner's "
                                               "guess of the OS cache; allocates nothing.")
    maintenance_work_mem: PositiveSize = Field(64 * 1024**2, description="Memory for VACUUM "
                                               "and CREATE INDEX.")
    wal_level: Literal["replica", "logical"] = Field(
        "replica", description="`logical` also allows logical decoding.")
    max_wal_senders: int = Field(10, ge=0, description="Streaming connections: at least the "
                                 "replicas plus one for a base backup.")
    max_replication_slots: int = Field(10, ge=0, description="At least one per replica.")
    hot_standby_feedback: bool = Field(True, description="Replicas tell the primary which "
                                       "rows their queries still need.")
    password_encryption: Literal["scram-sha-256"] = Field(
        "scram-sha-256", description="Only scram-sha-256: md5 is not allowed.")
    synchronous_commit: Literal["on", "remote_apply", "remote_write", "local", "off"] = Field(
        "on", description="How long a commit waits for the synchronous standbys.")
    extra: dict[str, GucValue] = Field(
        {}, description="Any other PostgreSQL setting by its name, except the named ones "
        "above and those datakit sets from the topology (port, primary_conninfo, ...).")

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

    min_size: int = Field(5, ge=0, description="Connections each pool keeps open.")
    max_size: int = Field(25, gt=0, description="The most connections a pool opens; under "
                          "postgres.settings.max_connections.")
    acquire_timeout_s: float = Field(30.0, gt=0, description="Seconds a request waits for a "
                                     "free connection before failing.")
    idle_timeout_s: float = Field(600.0, gt=0, description="Seconds an idle connection above "
                                  "min_size is kept.")
    max_lifetime_s: float = Field(1800.0, gt=0, description="Seconds before a connection is "
                                  "replaced.")


class PostgresSpec(Spec):
    """PostgreSQL: `nodes` in all (the initial primary pg-1 and nodes-1 streaming replicas)."""

    version: int = Field(15, ge=12, le=18, description="The PostgreSQL major version.")
    nodes: int = Field(3, gt=0, description="Servers in all: pg-1 (the initial primary) and "
                       "nodes - 1 streaming replicas.")
    synchronous_standbys: int = Field(1, ge=0, description="How many replicas confirm each "
                                      "commit (Patroni's quorum: ANY N); 0 is asynchronous.")
    port_base: int = Field(64100, description="pg-N listens on port_base + N - 1.")
    database: PgIdentifier = Field("datakit", description="The application's database.")
    app_user: PgIdentifier = Field("datakit_app", description="The application's role; its "
                                   "password is generated at the first `up`.")
    settings: PostgresSettings = Field(PostgresSettings(), description="Server settings.")
    pool: PoolSettings = Field(PoolSettings(), description="The client pool of the load "
                               "tests and the drills' writer.")
    patroni: PatroniSettings = Field(PatroniSettings(), description="Patroni's timeouts and "
                                     "failover rules; synchronous_standbys is its quorum.")
    archive: bool = Field(False, description="Archive finished WAL segments to the stack's "
                          "wal-archive/ (the backup-restore drill needs it).")
    migrations: str = Field("migrations", description="The folder of SQL migrations `up` "
                            "applies, relative to the project.")

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
