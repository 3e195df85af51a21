"""Handshakes that judge a node's TLS from outside, as a stranger or as the kit: the
certificate a node serves, and whether it lets in a client it should refuse.

PostgreSQL speaks TLS only after its SSLRequest message; etcd, Patroni's REST API (and
Redis and Kafka) from the first byte. Each function returns what happened in a few words,
so a verify check compares it with what it expects.

    >>> served_certificate("127.0.0.1", 64100, postgres=True)   # PEM text
    >>> handshake("127.0.0.1", 64700, ctx)                     # "accepted" or "refused: ..."
"""

from __future__ import annotations

import socket
import ssl

# PostgreSQL's SSLRequest: length 8, code 80877103 (protocol.sgml, "SSLRequest").
_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


def _open(host: str, port: int, *, postgres: bool, timeout: float) -> socket.socket:
    raw = socket.create_connection((host, port), timeout=timeout)
    if postgres:
        raw.sendall(_SSL_REQUEST)
        if raw.recv(1) != b"S":
            raw.close()
            raise ssl.SSLError(f"{host}:{port} answers SSLRequest with no: TLS is off")
    return raw


def served_certificate(host: str, port: int, *, postgres: bool = False,
                       timeout: float = 3.0) -> str:
    """The certificate the node shows to anyone (no trust asked of it: it is judged after)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    raw = _open(host, port, postgres=postgres, timeout=timeout)
    with ctx.wrap_socket(raw, server_hostname=host) as conn:
        der = conn.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der)


def handshake(host: str, port: int, ctx: ssl.SSLContext | None, *,
              request: bytes = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
              timeout: float = 3.0) -> str:
    """Connect with `ctx` (None: plaintext) and send `request`: "accepted" when the node
    answers, else "refused: <why>". A server that wants a client certificate may finish the
    handshake (TLS 1.3) and refuse at the first read, so one request is always sent."""
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return f"unreachable: {exc}"
    try:
        conn = ctx.wrap_socket(raw, server_hostname=host) if ctx else raw
        with conn:
            conn.sendall(request)
            answer = conn.recv(64)
    except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
        return f"refused: {_reason(exc)}"
    except OSError as exc:
        return f"refused: {exc}"
    if not answer or (not ctx and answer.startswith(b"\x15\x03")):  # a TLS alert to plaintext
        return "refused: closed"
    if answer.startswith(b"HTTP/1.") and b" 400 " in answer[:16] and not ctx:
        return "refused: HTTP 400 (plaintext to a TLS port)"
    return "accepted"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return type(exc).__name__


def foreign_context(cafile: str, cert: str | None = None,
                    key: str | None = None) -> ssl.SSLContext:
    """A client context trusting `cafile` and presenting `cert` (a stranger's, in checks)."""
    ctx = ssl.create_default_context(cafile=cafile)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx
