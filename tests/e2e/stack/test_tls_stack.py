"""TLS on a whole local stack, as `up` makes it: the outputs give the CA (path and text) and
DSNs with verify-full; every node's key is private to its account; the kit's clients speak
TLS; raising `tls.generation` reissues every certificate, which the nodes load in place."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import psycopg
import pytest

from datakit import connect as connect_cmd
from datakit.nodes import certs, tls, tls_probe
from datakit.nodes.process import RunAs
from datakit.stack import lifecycle

pytestmark = pytest.mark.slow

ACCOUNTS = {"postgres": "postgres", "etcd": "etcd", "redis": "redis", "sentinel": "redis",
            "kafka": "kafka", "exporter": "prometheus", "prometheus": "prometheus"}
# It reads /proc and serves HTTP on loopback: it dials no server, so it holds no key.
NO_KEY = {"process-exporter"}
# Loaded in place on a reissue; Sentinels and Kafka brokers restart, one at a time.
RELOADED = ("postgres", "etcd", "redis")


def test_outputs_give_the_ca_and_dsns_that_verify_the_server(e2e_stack):
    out = e2e_stack.outputs()
    assert out.tls.enabled and out.tls.generation == 1
    ca = Path(out.tls.ca_path)
    assert ca.read_text() == out.tls.ca_pem
    assert stat.S_IMODE(ca.stat().st_mode) == 0o644
    assert stat.S_IMODE(Path(out.tls.key_path).stat().st_mode) == 0o600
    for dsn in (out.endpoints.postgres.write_dsn, out.endpoints.postgres.read_dsn):
        assert f"sslmode=verify-full sslrootcert={ca}" in dsn
    assert all(n.rest_url.startswith("https://") for n in out.of("postgres"))
    assert out.endpoints.redis.tls and out.endpoints.kafka.security_protocol == "SASL_SSL"
    # The CA's key lives in the engine's state as a secret, never in the outputs.
    raw = lifecycle.outputs(e2e_stack.name)
    assert "PRIVATE KEY" not in json.dumps(raw)


def test_node_keys_are_private_to_the_node_account(e2e_stack):
    out = e2e_stack.outputs()
    for node in [n for n in out.nodes if n.name not in NO_KEY]:
        files = tls.files(node.handle.data_dir)
        key = Path(files["key"]).stat()
        assert stat.S_IMODE(key.st_mode) == 0o600, node.name
        if os.geteuid() == 0:
            assert key.st_uid == RunAs.service(ACCOUNTS[node.service]).uid, node.name
        assert certs.signed_by(Path(files["cert"]).read_text(), out.tls.ca_pem)


def test_the_kits_clients_speak_tls(e2e_stack):
    out = e2e_stack.outputs()
    with psycopg.connect(out.endpoints.postgres.write_dsn) as conn:
        assert conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()"
                            ).fetchone() == (True,)
        # No TCP connection to the primary is plaintext: the replicas' streams included.
        assert conn.execute("select count(*) from pg_stat_ssl join pg_stat_activity a "
                            "using (pid) where not ssl and a.client_addr is not null"
                            ).fetchone() == (0,)
    env = connect_cmd.postgres_env(out, show_secrets=False)
    assert (env["PGSSLMODE"], env["PGSSLROOTCERT"]) == ("verify-full", out.tls.ca_path)
    assert "sslmode=verify-full" in env["DATABASE_URL"]


def _serials(out) -> dict[str, int]:
    return {n.name: certs.load(tls_probe.served_certificate(
        n.host, n.port, postgres=n.service == "postgres"), what=n.name).serial_number
        for n in out.nodes if n.service not in ("exporter", "prometheus")}  # they serve HTTP


def test_raising_the_generation_reissues_every_certificate_without_a_restart(e2e_stack):
    out = e2e_stack.outputs()
    before, pids = _serials(out), {n.name: n.handle.pid for n in out.nodes}
    e2e_stack.edit(lambda config: config.__setitem__("datakit:tls", {"generation": 2}))
    e2e_stack.up()
    after = e2e_stack.outputs()
    assert after.tls.generation == 2
    now = _serials(after)
    assert {n for n in before if before[n] == now[n]} == set()
    for node in [n for n in after.nodes if n.service in RELOADED]:
        assert node.handle.pid == pids[node.name], f"{node.name} was restarted"
    with psycopg.connect(after.endpoints.postgres.write_dsn, autocommit=True) as conn:
        conn.execute("select 1")
