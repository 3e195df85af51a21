"""A stopped former PostgreSQL primary made a standby of the new one, on its own host.

pg_rewind from the new primary (it runs crash recovery first when the node was killed),
then the node's own settings file back (pg_rewind copies the source's), its
primary_conninfo and slot, and standby.signal. The local node control runs this for a
drill's rejoin step; the node must be stopped.
"""

from __future__ import annotations

from pathlib import Path

from datakit.nodes import process
from datakit.nodes.address import NodeLike, address
from datakit.nodes.postgres_conf import CONF_NAME, bin_dir, pgpass_line
from datakit.nodes.readiness import wait_until


def pgpass_path(data_dir: Path) -> str:
    """The replication password file the node's WAL receiver reads."""
    return str(data_dir / "pgpass")


def rewind_as_standby(name: str, data_dir: Path, source: NodeLike, *, superuser_password: str,
                      replication_password: str, conninfo: str, slot: str) -> str:
    """Rejoin node `name` (its data in `data_dir`) as a standby of the node `source`, with
    the stack's PostgreSQL passwords. Returns pg_rewind's last line."""
    pgdata = data_dir / "pgdata"
    _await_exit(name, pgdata)
    account = process.RunAs.service("postgres")
    version = int((pgdata / "PG_VERSION").read_text().strip())
    own_conf = (pgdata / CONF_NAME).read_text()
    # The replication password file the WAL receiver reads (a made-as-primary node
    # has none yet), and a superuser one for pg_rewind, removed after.
    process.write_private(Path(pgpass_path(data_dir)),
                          pgpass_line("replicator", replication_password), account)
    su_pass = data_dir / "drill-rewind.pgpass"
    process.write_private(su_pass, pgpass_line("postgres", superuser_password), account)
    src = address(source)
    try:
        out = account.run(
            [str(bin_dir(version) / "pg_rewind"), "-D", str(pgdata),
             f"--source-server=host={src.host} port={src.port} "
             "user=postgres dbname=postgres", "--progress"],
            what=f"pg_rewind of {name} from {src.name}",
            env={"PGPASSFILE": str(su_pass)}, timeout=300)
    finally:
        su_pass.unlink(missing_ok=True)
    process.write_private(pgdata / CONF_NAME, own_conf, account)
    _write_standby_files(pgdata, conninfo, slot, account)
    lines = [x for x in out.strip().splitlines() if x.strip()]
    return lines[-1] if lines else "done"


def _await_exit(name: str, pgdata: Path) -> None:
    """A killed postmaster's backends exit only when they notice; until then (and while
    its postmaster.pid names a live, maybe recycled, pid) a single-user crash recovery
    refuses the directory. Wait for them, then drop the stale file."""
    want = pgdata.resolve()
    wait_until(lambda: not any(e.name.isdigit() and process.cwd_of(int(e.name)) == want
                               for e in Path("/proc").iterdir()),
               what=f"every process of the killed {name} to exit", timeout=60)
    (pgdata / "postmaster.pid").unlink(missing_ok=True)


def _write_standby_files(pgdata: Path, conninfo: str, slot: str,
                         account: process.RunAs) -> None:
    """primary_conninfo and primary_slot_name in postgresql.auto.conf, and standby.signal."""
    auto = pgdata / "postgresql.auto.conf"
    kept = [line for line in (auto.read_text().splitlines() if auto.exists() else [])
            if line.split("=", 1)[0].strip() not in ("primary_conninfo",
                                                     "primary_slot_name")]
    kept += [f"primary_conninfo = '{conninfo.replace(chr(39), chr(39) * 2)}'",
             f"primary_slot_name = '{slot}'"]
    process.write_private(auto, "\n".join(kept) + "\n", account)
    process.write_private(pgdata / "standby.signal", "", account)
