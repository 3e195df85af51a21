"""The restore drills' backup of the live PostgreSQL primary, written once for
backup-restore and stack-restore. Everything goes to the drill's scratch space
(nodes/scratch.py), outside the stack's data, so it survives even `datakit down`.

- The archive streams: `pg_receivewal --synchronous` through a drill-owned replication
  slot into `archive/`. The stack's own archive (`postgres.archive`) gets only finished
  WAL segments, so a restore to "now" from it would miss the newest acknowledged writes;
  the stream holds every flushed record, and the slot is dropped afterwards, leaving the
  stack as it was.
- The base backup is `pg_basebackup -X stream` into `base/`.
- `archived()` switches WAL and waits for that segment in the archive: every record up to
  a point made before it is then in the archive.
- `start_restored()` starts a new instance on a free port from the base backup and the
  archive, recovering to a named restore point and promoting there.

`RestoreDrill` is what both drills share around it: the backup made at setup and removed
at the end, and the check of a restore against the rows committed at its point.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psycopg

from datakit.drills import checker
from datakit.drills import postgres_ops as po
from datakit.drills.context import DrillContext
from datakit.drills.harness import Drill, Target
from datakit.drills.targets import PostgresTarget
from datakit.drills.waiting import wait
from datakit.drills.writer import Recorder
from datakit.nodes import tls
from datakit.nodes.postgres_conf import pgpass_line
from datakit.nodes.scratch import LocalScratch
from datakit.stack.schema import Node, StackOutputs


@dataclass
class Restored:
    """A restored instance: what postgres_ops needs to talk to it."""

    pid: int
    port: int
    name: str = "restore"
    host: str = "127.0.0.1"


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Backup:
    """A backup of `outputs`' live primary into the scratch space of one drill run."""

    def __init__(self, ctx: DrillContext, rec: Recorder, *, slot: str):
        self.out, self.rec, self.slot = ctx.outputs, rec, slot
        self.primary, _ = po.roles(self.out)
        self.version = int(po.one(self.primary, self.out, "show server_version_num")) // 10000
        self.scratch = LocalScratch(ctx.work_dir / f"{ctx.stack}-{ctx.run_id}")
        self.archive, self.base = self.scratch.dir("archive"), self.scratch.dir("base")
        self.env = self.pgpass(self.out)

    def tool(self, name: str) -> str:
        return self.scratch.tool(self.version, name)

    def pgpass(self, outputs: StackOutputs) -> dict[str, str]:
        """The environment for the tools: a passfile with the replication user's and the
        superuser's passwords in `outputs` (a recreated stack has new ones)."""
        pg, secrets = outputs.endpoints.postgres, outputs.need_secrets().postgres
        lines = pgpass_line(pg.replication_user, secrets.replication)
        lines += pgpass_line(pg.superuser, secrets.superuser)
        # The tools dial the stack as its clients do: TLS, the server checked against the CA.
        libpq = tls.libpq(outputs.client_tls())
        ssl = {f"PG{k.upper()}": v for k, v in libpq.items()}  # PGSSLMODE, PGSSLROOTCERT
        return {"PGPASSFILE": str(self.scratch.write(self.scratch.root / "pgpass", lines)),
                **ssl}

    def replication_args(self) -> list[str]:
        return ["-h", self.primary.host, "-p", str(self.primary.port),
                "-U", self.out.endpoints.postgres.replication_user, "-w"]

    @staticmethod
    def superuser_args(node: Node, outputs: StackOutputs) -> list[str]:
        pg = outputs.endpoints.postgres
        return ["-h", node.host, "-p", str(node.port), "-U", pg.superuser, "-w",
                "-d", pg.database]

    @contextlib.contextmanager
    def streaming_archive(self) -> Iterator[Path]:
        """`pg_receivewal --synchronous` into the archive while the block runs; afterwards
        the receiver is stopped and its slot dropped."""
        receiver = None
        try:
            self.scratch.run([self.tool("pg_receivewal"), *self.replication_args(),
                              "--create-slot", "-S", self.slot, "--if-not-exists"],
                             what="pg_receivewal --create-slot", env=self.env)
            receiver = self.scratch.spawn(
                [self.tool("pg_receivewal"), *self.replication_args(), "-D",
                 str(self.archive), "-S", self.slot, "--synchronous", "-n"],
                log=self.scratch.root / "receivewal.log", env=self.env)
            yield self.archive
        finally:
            if receiver:
                self.scratch.stop(receiver, sig=signal.SIGINT)
            with contextlib.suppress(psycopg.Error):
                po.one(self.primary, self.out, "select pg_drop_replication_slot(slot_name) "
                       "from pg_replication_slots where slot_name = %s", [self.slot])

    def base_backup(self) -> None:
        self.rec.event("backup start")
        self.scratch.run([self.tool("pg_basebackup"), *self.replication_args(), "-D",
                          str(self.base), "-X", "stream", "-c", "fast"],
                         what="pg_basebackup", env=self.env)
        self.rec.event("base backup done")

    def archived(self) -> None:
        """Until the WAL up to now is in the archive (a switch, then its segment)."""
        segment = po.one(self.primary, self.out, "select pg_walfile_name(pg_switch_wal())")
        wait(lambda: (self.archive / segment).exists(),
             what=f"WAL segment {segment} archived", timeout=60)
        self.rec.event("archived")

    def base_backup_s(self) -> float:
        return round(self.rec.at("base backup done") - self.rec.at("backup start"), 3)

    def figures(self) -> dict:
        """The physical backup's sizes and time (read them before `cleanup`)."""
        return {"base_backup_bytes": du(self.base), "wal_archive_bytes": du(self.archive),
                "base_backup_s": self.base_backup_s()}

    def start_restored(self, point: str) -> Restored:
        """A new instance from the base backup and the archive, on a free port, recovering
        to the restore point `point` and promoting there; its start is the event
        "restore start"."""
        port = self.scratch.free_port()
        overrides = {
            "port": port, "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.scratch.root), "cluster_name": "drill-restore",
            "restore_command": f"cp {self.archive}/%f %p", "recovery_target_name": point,
            "recovery_target_action": "promote", "synchronous_standby_names": "",
            "primary_conninfo": "", "primary_slot_name": "", "archive_mode": "off",
        }
        auto = self.base / "postgresql.auto.conf"
        text = auto.read_text() if auto.exists() else ""
        text += "".join(f"{k} = '{v}'\n" for k, v in overrides.items())
        self.scratch.write(auto, text)
        self.scratch.write(self.base / "recovery.signal", "")
        (self.base / "standby.signal").unlink(missing_ok=True)
        self.rec.event("restore start")
        pid = self.scratch.spawn([self.tool("postgres"), "-D", str(self.base)],
                                 log=self.scratch.root / "restore.log", cwd=self.base)
        return Restored(pid, port)

    def promoted(self, restored: Restored) -> bool:
        if not self.scratch.alive(restored.pid):
            raise RuntimeError(f"restored instance exited: see {self.scratch.root}/restore.log")
        return po.one(restored, self.out, "select not pg_is_in_recovery()")

    def cleanup(self) -> None:
        self.scratch.cleanup(keep=False)


class RestoreDrill(Drill):
    """A drill that backs up the primary under writes and restores it somewhere: its
    `fault` sets `expected` (the rows committed at the point, at `t_point`), its `watch`
    sets `restored` (the rows the restore holds)."""

    slot: ClassVar[str]  # the drill's own replication slot
    expected: set[int]
    restored: set[int]
    t_point: float

    @staticmethod
    def applies(outputs: StackOutputs) -> str | None:
        return None if po.nodes(outputs) else "the stack has no PostgreSQL"

    def setup(self) -> Target:
        self.backup = Backup(self.ctx, self.rec, slot=self.slot)
        return PostgresTarget(self.out, self.ctx.run_id)

    @contextlib.contextmanager
    def prepared(self) -> Iterator[None]:
        try:
            yield
        finally:
            self.backup.cleanup()

    def check(self) -> checker.SetCheck:
        return checker.check_restore(self.rec, self.expected, self.restored)

    def newest_restored(self) -> float | None:
        """When the newest acknowledged write that the restore holds was acknowledged."""
        return max((o.end for o in self.rec.ops if o.status == "ok" and o.id in self.restored),
                   default=None)

    def acked_early_missing(self) -> set[int]:
        """Writes acknowledged before the point but not committed at it: must be none."""
        return checker.acked_before(self.rec, self.t_point) - self.expected
