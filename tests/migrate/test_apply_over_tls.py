"""The migration framework over TLS, on a real server that takes TCP clients over TLS only:
its own libpq binding (ctypes) connects with verify-full and the CA, as a stack's DSN says,
and applies; a plaintext DSN and one trusting another CA are refused with libpq's reason."""

from __future__ import annotations

import pytest

from datakit.migrate import libpq
from datakit.migrate.runner import apply
from datakit.nodes import certs
from tests.support.scratch_server import ScratchServer


@pytest.fixture(scope="module")
def tls_server():
    with ScratchServer(range(61000, 61100), fsync=False, tls=True) as server:
        yield server


def test_libpq_connects_with_verify_full_over_tls(tls_server):
    conn = libpq.connect(tls_server.dsn())
    try:
        assert conn.execute("select ssl::text from pg_stat_ssl where pid = pg_backend_pid()"
                            ).fetchone()[0] in ("true", True)
    finally:
        conn.close()


def test_a_plaintext_dsn_is_refused(tls_server):
    plain = tls_server.dsn().split(" sslmode=")[0] + " sslmode=disable"
    with pytest.raises(libpq.OperationalError, match="no encryption"):
        libpq.connect(plain)


def test_a_dsn_trusting_another_ca_is_refused(tls_server, tmp_path):
    other = tmp_path / "other-ca.crt"
    other.write_text(certs.new_ca("another CA").cert)
    with pytest.raises(libpq.OperationalError, match="certificate verify failed"):
        libpq.connect(tls_server.dsn().replace(str(tls_server.ca_file), str(other)))


def test_migrations_apply_over_tls(tls_server, mdir):
    (mdir / "V0001__notes.sql").write_text("create table notes (id int primary key);\n")
    dsn = tls_server.create_database("tls_apply")
    result = apply(dsn, mdir)
    assert [s.file for s in result.steps] == ["V0001__notes.sql"]
