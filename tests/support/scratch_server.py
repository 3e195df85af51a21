"""A throwaway PostgreSQL 15 server for the migration tests and benchmark.

Runs initdb and postgres as the `postgres` account when we are root, on a loopback port,
with scram password auth for a generated password; `stop()` ends it by pid and removes its
directories. With `tls=True` it serves a certificate of its own CA (`ca_file`) and takes TCP
clients over TLS only, as a stack's nodes do; its DSNs then carry verify-full and the CA.
Not for stacks: those get their nodes from a substrate.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

from datakit.errors import DatakitError
from datakit.nodes import process
from datakit.nodes.process import RunAs, exit_reason, port_free, stop
from datakit.nodes.readiness import wait_until

PG_BIN = Path(os.environ.get("DATAKIT_PG_BIN", "/usr/lib/postgresql/15/bin"))


class ScratchServer:
    def __init__(self, ports: range = range(61000, 61100), *, fsync: bool = True,
                 tls: bool = False) -> None:
        self.account = RunAs.service("postgres")
        self.password = secrets.token_urlsafe(18)
        self.port = next((p for p in ports if port_free(p)), None)
        if self.port is None:
            raise DatakitError(f"no free port in {ports.start}-{ports.stop - 1} for PostgreSQL")
        self.fsync = fsync
        self.root = Path(tempfile.mkdtemp(prefix="datakit-pg-", dir="/tmp"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.pid: int | None = None
        self.started: int | None = None
        self.replicas: list[tuple[int, int | None]] = []  # (pid, start time)
        self.tls = tls
        self.ca_file = self.root / "ca.crt"

    def dsn(self, dbname: str = "postgres", password: str | None = None) -> str:
        ssl = f" sslmode=verify-full sslrootcert={self.ca_file}" if self.tls else ""
        return (f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} "
                f"password={password or self.password}{ssl}")

    def _tls_options(self) -> list[str]:
        """Certificates from a CA of its own, and pg_hba with TCP over TLS only."""
        if not self.tls:
            return []
        from datakit.nodes import certs, tls

        ca = certs.new_ca("scratch server CA")
        pair = certs.issue(ca, "scratch", ["127.0.0.1", "localhost"])
        self.ca_file.write_text(ca.cert)
        files = tls.write({"data_dir": str(self.root),
                           "tls": {"ca": ca.cert, "cert": pair.cert, "key": pair.key}},
                          self.account)
        (self.data / "pg_hba.conf").write_text(
            "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostssl replication all 127.0.0.1/32 scram-sha-256\n")
        return ["-c", "ssl=on", "-c", f"ssl_cert_file={files['cert']}",
                "-c", f"ssl_key_file={files['key']}"]

    def url(self, dbname: str, driver: str = "postgres") -> str:
        return f"{driver}://postgres:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> ScratchServer:
        acct = self.account
        os.chown(self.root, acct.uid, acct.gid)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        os.chown(pwfile, acct.uid, acct.gid)
        pwfile.chmod(0o600)
        acct.run([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync",
                  "--locale=C.UTF-8"], what="initdb")
        pwfile.unlink()
        opts = ["-c", f"port={self.port}", "-c", "listen_addresses=127.0.0.1",
                "-c", f"unix_socket_directories={self.root}", "-c", "max_connections=100",
                "-c", f"fsync={'on' if self.fsync else 'off'}",
                "-c", "shared_buffers=64MB", *self._tls_options()]
        self.pid = acct.spawn([str(PG_BIN / "postgres"), "-D", str(self.data), *opts],
                              log=self.log)
        self.started = process.start_time(self.pid)
        wait_until(self._probe, what=f"PostgreSQL on port {self.port}", timeout=30,
                   alive=lambda: exit_reason(self.pid, self.started, self.log))
        return self

    def _probe(self) -> bool:
        import psycopg

        with psycopg.connect(self.dsn(), connect_timeout=2):
            return True

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        return self.dsn(name)

    def add_replica(self, port: int | None = None, name: str | None = None) -> int:
        """Start a streaming replica (pg_basebackup -R) on `port` or the next free one; its
        `name` is the application name the primary sees (default `replica<port>`)."""
        port = port or next((p for p in range(self.port + 1, 61100) if port_free(p)), None)
        if port is None:
            raise DatakitError("no free port for a replica")
        data = self.root / f"replica-{port}"
        self.account.run([str(PG_BIN / "pg_basebackup"), "-D", str(data), "-R", "-X", "stream",
                          "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                          "--no-sync", "-c", "fast"],
                         what="pg_basebackup", env={"PGPASSWORD": self.password})
        log = self.root / f"replica-{port}.log"
        pid = self.account.spawn(
            [str(PG_BIN / "postgres"), "-D", str(data), "-c", f"port={port}",
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
             "-c", f"cluster_name={name or f'replica{port}'}"], log=log)
        started = process.start_time(pid)
        self.replicas.append((pid, started))

        def streaming() -> bool:
            import psycopg

            with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                return bool(conn.execute("SELECT count(*) FROM pg_stat_replication "
                                         "WHERE state = 'streaming'").fetchone()[0]
                            >= len(self.replicas))

        wait_until(streaming, what=f"replica on port {port}", timeout=30,
                   alive=lambda: exit_reason(pid, started, log))
        return port

    def stop(self) -> None:
        try:
            for pid, started in self.replicas:
                stop(pid, started, timeout=15)
            if self.pid is not None:
                stop(self.pid, self.started, timeout=15)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ScratchServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["ScratchServer"]
