"""Certificates for node tests, as a stack issues them: a node's `tls` props (PEM text) and
a client's files (CA, certificate, key) on disk."""

from __future__ import annotations

from pathlib import Path

from datakit.nodes import certs

HOSTS = ["127.0.0.1", "localhost"]


def material(ca: certs.Pair, name: str) -> dict:
    """A node's `tls` props: the CA and a certificate for its addresses and name."""
    pair = certs.issue(ca, name, [*HOSTS, name])
    return {"ca": ca.cert, "cert": pair.cert, "key": pair.key}


def client_files(base: Path, ca: certs.Pair, name: str = "datakit") -> dict[str, str]:
    """A client's CA, certificate and key, as the stack writes its own for the kit."""
    folder = base / f"client-{name}"
    folder.mkdir()
    pair = certs.issue(ca, name, HOSTS)
    out = {}
    for part, text in (("ca", ca.cert), ("cert", pair.cert), ("key", pair.key)):
        (folder / part).write_text(text)
        (folder / part).chmod(0o600)
        out[part] = str(folder / part)
    return out
