"""TLS on the PostgreSQL side of a stack, for real: an etcd member and two Patroni members
with certificates of one CA. Replication runs over TLS; the kit's clients get through with
the CA (and, for etcd and the REST API, a client certificate); a plaintext client, a client
trusting another CA, one without a certificate and a wrong password are refused; a reissued
certificate is served after a reload, without a restart."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import psycopg
import pytest

from datakit.errors import DatakitError
from datakit.nodes import certs, etcd, patroni, patroni_cluster, patroni_member, tls
from datakit.nodes.postgres_client import connect
from datakit.nodes.readiness import wait_until
from tests.support.tls_material import client_files, material

pytestmark = pytest.mark.slow

FAST = {"ttl": 20, "loop_wait": 1, "retry_timeout": 3, "failsafe_mode": True,
        "maximum_lag_on_failover": 1024**2, "primary_start_timeout": 0}
SETTINGS = {"max_connections": 30, "shared_buffers": "16MB", "max_wal_senders": 6,
            "max_replication_slots": 6}


@pytest.fixture(scope="module")
def stack(workdir, free_port, password, teardown) -> dict:
    base = workdir / "tls"
    base.mkdir()
    ca = certs.new_ca("datakit test CA")
    e = {"name": "etcd-1", "port": free_port(), "peer_port": free_port()}
    eprops = {**e, "data_dir": str(base / "etcd-1"), "cluster": [e], "cluster_token": "tls",
              "tls": material(ca, "etcd-1")}
    teardown.add("delete etcd-1", lambda: etcd.delete(eprops))
    etcd.create(eprops)
    members = []
    for i in (1, 2):
        name = f"pg-{i}"
        props = {"name": name, "port": free_port(), "rest_port": free_port(),
                 "data_dir": str(base / name), "scope": "tls", "etcd": [e],
                 "superuser_password": password("pg-superuser"),
                 "replication_password": password("pg-replication"),
                 "rest_password": password("patroni-rest"), "app_user": "app",
                 "app_password": password("pg-app"), "app_database": "appdb",
                 "settings": SETTINGS, "synchronous_standbys": 0, "patroni": FAST,
                 "join": i > 1, "tls": material(ca, name)}
        teardown.add(f"delete {name}", lambda p=props: patroni.delete(p))
        members.append(props)
    for props in members:
        patroni.create(props, wait=False)
    client = client_files(base, ca)
    reach = [{**m, "client_tls": client} for m in members]
    patroni_cluster.wait_cluster(reach, synchronous_standbys=0)
    return {"ca": ca, "etcd": {**e, "client_tls": client}, "etcd_props": eprops,
            "members": members, "reach": reach, "client": client, "base": base,
            "app": {"user": "app", "password": password("pg-app"), "dbname": "appdb"}}


def _leader(stack) -> dict:
    name = patroni_cluster.leader_of(patroni_cluster.cluster_view(stack["reach"]))
    return next(m for m in stack["reach"] if m["name"] == name)


def test_replication_runs_over_tls(stack):
    leader = _leader(stack)
    with connect(leader, user="postgres", password=leader["superuser_password"]) as conn:
        rows = conn.execute("select s.ssl from pg_stat_replication r join pg_stat_ssl s "
                            "using (pid)").fetchall()
        mine = conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()"
                            ).fetchone()
    assert rows == [(True,)] and mine == (True,)


def test_the_app_connects_with_verify_full_and_the_ca(stack):
    leader = _leader(stack)
    with psycopg.connect(host="127.0.0.1", port=leader["port"], **stack["app"],
                         **tls.libpq(stack["client"])) as conn:
        assert conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()"
                            ).fetchone() == (True,)


def test_postgres_refuses_a_plaintext_client(stack):
    leader = _leader(stack)
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(host="127.0.0.1", port=leader["port"], sslmode="disable",
                        connect_timeout=3, **stack["app"])


def test_a_client_trusting_another_ca_refuses_the_server(stack, workdir):
    other = client_files(stack["base"], certs.new_ca("someone else's CA"), "stranger")
    leader = _leader(stack)
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(host="127.0.0.1", port=leader["port"], connect_timeout=3,
                        **stack["app"], **tls.libpq(other))


def test_postgres_refuses_a_wrong_password_over_tls(stack):
    leader = _leader(stack)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.0.1", port=leader["port"], connect_timeout=3,
                        **{**stack["app"], "password": "wrong"}, **tls.libpq(stack["client"]))


def _get(url: str, ctx: ssl.SSLContext | None) -> int:
    with urllib.request.urlopen(url, timeout=3, context=ctx) as reply:
        return reply.status


def test_etcd_serves_the_kit_and_refuses_strangers(stack):
    node = stack["etcd"]
    assert etcd.member_health(node)["healthy"]
    url = f"https://127.0.0.1:{node['port']}/health"
    no_cert = ssl.create_default_context(cafile=stack["client"]["ca"])
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _get(url, no_cert)  # etcd asks every client for a certificate of the stack's CA
    other = client_files(stack["base"], certs.new_ca("etcd stranger CA"), "etcd-stranger")
    foreign = ssl.create_default_context(cafile=stack["client"]["ca"])
    foreign.load_cert_chain(other["cert"], other["key"])
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _get(url, foreign)
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        _get(f"http://127.0.0.1:{node['port']}/health", None)


def test_the_rest_api_wants_a_client_certificate(stack):
    leader = _leader(stack)
    assert patroni.member_status(leader)["role"] == "primary"
    no_cert = {k: v for k, v in leader.items() if k not in ("client_tls", "tls")}
    with pytest.raises(DatakitError, match="does not answer"):
        patroni.member_status(no_cert)  # plaintext to a TLS port
    url = f"https://127.0.0.1:{leader['rest_port']}/patroni"
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _get(url, ssl.create_default_context(cafile=stack["client"]["ca"]))


def test_a_reissued_certificate_is_served_after_a_reload(stack):
    leader = _leader(stack)
    props = next(m for m in stack["members"] if m["name"] == leader["name"])
    new = {**props, "tls": material(stack["ca"], props["name"])}
    patroni_member.update(props, {}, new)
    props["tls"] = new["tls"]
    serial = certs.load(new["tls"]["cert"], what="new").serial_number

    def served() -> bool:
        ctx = ssl.create_default_context(cafile=stack["client"]["ca"])
        with psycopg.connect(host="127.0.0.1", port=props["port"], **stack["app"],
                             **tls.libpq(stack["client"])) as conn:
            conn.execute("select 1")
        return _served_serial(props["port"], ctx) == serial

    wait_until(served, what="the new certificate served", timeout=20)
    assert patroni.member_status(leader)["role"] == "primary"


def _served_serial(port: int, ctx: ssl.SSLContext) -> int:
    """The serial of the certificate PostgreSQL shows (its SSLRequest, then the handshake)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
        raw.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
        assert raw.recv(1) == b"S"
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as wrapped:
            der = wrapped.getpeercert(binary_form=True)
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


def test_probes_tell_strangers_from_the_kit(stack):
    """nodes.tls_probe, which `datakit verify` judges nodes with, on the real servers."""
    from datakit.nodes import tls_probe

    other = client_files(stack["base"], certs.new_ca("probe stranger CA"), "probe-stranger")
    leader = _leader(stack)
    for port in (stack["etcd"]["port"], leader["rest_port"]):
        assert tls_probe.handshake("127.0.0.1", port, None).startswith("refused")
        bare = tls_probe.foreign_context(stack["client"]["ca"])
        assert tls_probe.handshake("127.0.0.1", port, bare).startswith("refused")
        foreign = tls_probe.foreign_context(stack["client"]["ca"], other["cert"], other["key"])
        assert tls_probe.handshake("127.0.0.1", port, foreign).startswith("refused")
        assert tls_probe.handshake("127.0.0.1", port, tls.context(stack["client"])) == "accepted"
    pem = tls_probe.served_certificate("127.0.0.1", leader["port"], postgres=True)
    assert certs.signed_by(pem, stack["ca"].cert) and "127.0.0.1" in certs.hosts(pem)
    assert certs.problems(pem, stack["ca"].cert, what=leader["name"]) == []
