"""TLS and refusals, per node: every node serves a certificate of the stack's CA, valid for
its address and past the next 30 days; and strangers are refused: a plaintext client, a
client that trusts another CA, one with no (or a foreign) client certificate where one is
wanted (etcd, Patroni's REST API), a wrong password (PostgreSQL, Redis, Sentinel). Skipped
on a stack with TLS off, and for a service that does not speak TLS on it."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import redis as redis_py
from redis.backoff import NoBackoff
from redis.retry import Retry

from datakit.nodes import certs, tls, tls_probe
from datakit.stack.schema import Node
from datakit.verify import Mismatch

REFUSED = "refused"
CERT_OK = "signed by the stack's CA, valid for its address past 30 days"


@pytest.fixture(scope="session")
def stack_tls(outputs) -> dict[str, str]:
    files = outputs.client_tls()
    if not files:
        pytest.skip("TLS is off on this stack (datakit:tls.enabled false)")
    tls.require(files, what=f"stack {outputs.stack}")
    return files


@pytest.fixture(scope="session")
def stranger(tmp_path_factory, stack_tls) -> dict[str, str]:
    """A client of another CA: its CA, certificate and key, for the address of the nodes."""
    folder = tmp_path_factory.mktemp("stranger")
    ca = certs.new_ca("a stranger's CA")
    pair = certs.issue(ca, "stranger", ["127.0.0.1", "localhost"])
    out = {}
    for part, text in (("ca", ca.cert), ("cert", pair.cert), ("key", pair.key)):
        path = folder / f"{part}.pem"
        path.write_text(text)
        path.chmod(0o600)
        out[part] = str(path)
    return out


def _certificate(node: Node, port: int, ca_pem: str, *, postgres: bool = False) -> str:
    pem = tls_probe.served_certificate(node.host, port, postgres=postgres)
    wrong = certs.problems(pem, ca_pem, what=f"{node.name}:{port}")
    if node.host not in certs.hosts(pem):
        wrong.append(f"not valid for {node.host} (SANs {', '.join(certs.hosts(pem))})")
    return "; ".join(wrong) or CERT_OK


def _ca_pem(stack_tls: dict[str, str]) -> str:
    return Path(stack_tls["ca"]).read_text()


def test_tls_certificate(any_node: Node, outputs, stack_tls, checker):
    if not outputs.speaks_tls(any_node.service):
        pytest.skip(f"{any_node.service} does not serve TLS on this stack")
    ca = _ca_pem(stack_tls)
    checker.expect("TLS certificate", any_node.name, CERT_OK, lambda: _certificate(
        any_node, any_node.port, ca, postgres=any_node.service == "postgres"))
    if any_node.rest_port:
        checker.expect("TLS certificate (Patroni REST)", any_node.name, CERT_OK,
                       lambda: _certificate(any_node, any_node.rest_port, ca))


# --- PostgreSQL ----------------------------------------------------------------------------


def _pg_attempt(node: Node, outputs, because: str = "", **params) -> str:
    """"accepted", or "refused" when the server (or the client's own check of the server)
    turns the connection down for the reason `because` names; another reason is told."""
    pg, secrets = outputs.endpoints.postgres, outputs.need_secrets().postgres
    try:
        conn = psycopg.connect(host=node.host, port=node.port, dbname=pg.database,
                               user=pg.app_user, password=params.pop("password", secrets.app),
                               connect_timeout=3, **params)
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "timeout" in text or "Connection refused" in text:
            raise Mismatch(f"no answer: {text.strip().splitlines()[0]}") from None
        return REFUSED if because in text else f"refused, not for {because!r}: {text.strip()}"
    conn.close()
    return "accepted"


def test_postgres_refuses_plaintext(pg_node: Node, outputs, stack_tls, checker):
    checker.expect("PostgreSQL: plaintext refused", pg_node.name, REFUSED,
                   lambda: _pg_attempt(pg_node, outputs, "no encryption", sslmode="disable"))


def test_postgres_refused_by_a_client_of_another_ca(pg_node: Node, outputs, stranger, checker):
    checker.expect("PostgreSQL: a client trusting another CA refuses it", pg_node.name, REFUSED,
                   lambda: _pg_attempt(pg_node, outputs, "certificate verify failed",
                                       **tls.libpq(stranger)))


def test_postgres_refuses_a_wrong_password(pg_node: Node, outputs, stack_tls, checker):
    checker.expect("PostgreSQL: wrong password refused", pg_node.name, REFUSED,
                   lambda: _pg_attempt(pg_node, outputs, "password authentication failed",
                                       password="not-the-password", **tls.libpq(stack_tls)))


def test_postgres_accepts_the_kit_over_tls(pg_node: Node, outputs, stack_tls, checker):
    checker.expect("PostgreSQL: the app over TLS (verify-full)", pg_node.name, "accepted",
                   lambda: _pg_attempt(pg_node, outputs, **tls.libpq(stack_tls)))


# --- etcd and Patroni's REST API: a client certificate of the stack's CA -------------------


def _strangers(port: int, node: Node, stack_tls, stranger) -> str:
    """How the port treats plaintext, no client certificate and a foreign one."""
    tries = {
        "plaintext": None,
        "no client certificate": tls_probe.foreign_context(stack_tls["ca"]),
        "another CA's certificate": tls_probe.foreign_context(
            stack_tls["ca"], stranger["cert"], stranger["key"]),
    }
    found = {what: tls_probe.handshake(node.host, port, ctx) for what, ctx in tries.items()}
    if down := [f for f in found.values() if f.startswith("unreachable")]:
        raise Mismatch(down[0])  # a node that does not answer refuses nobody in particular
    let_in = [what for what, f in found.items() if not f.startswith("refused")]
    return f"let in: {', '.join(let_in)}" if let_in else "all refused"


def _kit_gets_in(port: int, node: Node, stack_tls) -> str:
    ctx = tls.context(stack_tls)
    return tls_probe.handshake(node.host, port, ctx)


def test_etcd_refuses_strangers(etcd_node: Node, stack_tls, stranger, checker):
    checker.expect("etcd: strangers refused", etcd_node.name, "all refused",
                   lambda: _strangers(etcd_node.port, etcd_node, stack_tls, stranger))
    checker.expect("etcd: the kit's certificate accepted", etcd_node.name, "accepted",
                   lambda: _kit_gets_in(etcd_node.port, etcd_node, stack_tls))


def test_patroni_rest_refuses_strangers(pg_node: Node, stack_tls, stranger, checker):
    if not pg_node.rest_port:
        pytest.skip("the stack's outputs name no Patroni REST API")
    checker.expect("Patroni REST: strangers refused", pg_node.name, "all refused",
                   lambda: _strangers(pg_node.rest_port, pg_node, stack_tls, stranger))
    checker.expect("Patroni REST: the kit's certificate accepted", pg_node.name, "accepted",
                   lambda: _kit_gets_in(pg_node.rest_port, pg_node, stack_tls))


# --- Redis and Sentinel: TLS only, the password the authentication ---------------------------


def _redis_attempt(node: Node, password: str, files: dict[str, str] | None) -> str:
    # No retries: redis-py retries a failed connection with back-off, seconds per refusal.
    client = redis_py.Redis(host=node.host, port=node.port, password=password,
                            socket_timeout=3, socket_connect_timeout=3,
                            retry=Retry(NoBackoff(), 0), **tls.redis(files))
    try:
        client.ping()
    except redis_py.AuthenticationError:
        return "refused: password"
    except redis_py.ConnectionError as exc:
        if "Connection refused" in str(exc) or "Timeout" in str(exc):
            raise Mismatch(f"no answer: {exc}") from None
        return f"refused: {exc}"
    finally:
        client.close()
    return "accepted"


def _redis_strangers(node: Node, password: str, stack_tls, stranger) -> str:
    plain = tls_probe.handshake(node.host, node.port, None, request=b"PING\r\n")
    if plain.startswith("unreachable"):
        raise Mismatch(plain)
    found = {"plaintext": plain,
             "a client trusting another CA": _redis_attempt(node, password, stranger),
             "a wrong password": _redis_attempt(node, "not-the-password", stack_tls)}
    let_in = [what for what, f in found.items() if not f.startswith("refused")]
    return f"let in: {', '.join(let_in)}" if let_in else "all refused"


def _redis_checks(node: Node, outputs, stack_tls, stranger, checker) -> None:
    if not outputs.speaks_tls(node.service):
        pytest.skip(f"{node.service} does not serve TLS on this stack")
    secrets = outputs.need_secrets().redis
    password = secrets.default if node.service == "redis" else secrets.sentinel
    what = "Redis" if node.service == "redis" else "Sentinel"
    checker.expect(f"{what}: strangers refused", node.name, "all refused",
                   lambda: _redis_strangers(node, password, stack_tls, stranger))
    checker.expect(f"{what}: the kit over TLS", node.name, "accepted",
                   lambda: _redis_attempt(node, password, stack_tls))


def test_redis_refuses_strangers(redis_node: Node, outputs, stack_tls, stranger, checker):
    _redis_checks(redis_node, outputs, stack_tls, stranger, checker)


def test_sentinel_refuses_strangers(sentinel_node: Node, outputs, stack_tls, stranger, checker):
    _redis_checks(sentinel_node, outputs, stack_tls, stranger, checker)
