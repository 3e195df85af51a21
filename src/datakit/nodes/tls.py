"""A node's TLS files, and how the kit's own clients speak TLS to a node.

Server side: a node's props carry `tls` = {ca, cert, key} as PEM text (issued by
infra/certs.py); `write` puts them in `<data_dir>/tls/` as ca.crt, node.crt and node.key,
0600 and owned by the node's account, before the node starts. A reissued certificate
(`tls.generation`) is the same three files written again, so a node reloads rather than
being made anew.

Client side: a node dict may carry `client_tls` = {ca, cert, key} as file paths (the
stack's client files, from the outputs); a node whose props carry `tls` is reached with its
own files (the provider, as root, acting as that node's peer). No `tls` at all is a plaintext
node (a stack with `tls.enabled: false`).

    >>> ctx = context(client_files(props))      # for urllib: https with a client cert
    >>> psycopg.connect(host=..., **libpq(client_files(props)))
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datakit.errors import DatakitError
from datakit.nodes.process import RunAs

DIR = "tls"
NAMES = {"ca": "ca.crt", "cert": "node.crt", "key": "node.key"}


def files(data_dir: str | Path) -> dict[str, str]:
    """Where a node keeps its CA, certificate and key."""
    root = Path(data_dir) / DIR
    return {part: str(root / name) for part, name in NAMES.items()}


def write(props: Mapping[str, Any], account: RunAs) -> dict[str, str] | None:
    """Write the node's TLS material (props["tls"]) into its data dir; their paths, or
    None for a plaintext node. Each file is replaced whole, so a reader never sees half."""
    material = props.get("tls")
    if not material:
        return None
    paths = files(props["data_dir"])
    account.own(Path(paths["ca"]).parent, 0o700)
    for part, path in paths.items():
        _write_private(Path(path), str(material[part]), account)
    return paths


def write_file(path: Path, text: str, account: RunAs) -> None:
    """One more private file beside a node's TLS files (e.g. Kafka's PEM keystore)."""
    _write_private(path, text, account)


def _write_private(path: Path, text: str, account: RunAs) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chown(tmp, account.uid, account.gid)
    tmp.replace(path)


def client_files(props: Any) -> dict[str, str] | None:
    """The files a client uses to reach this node: its `client_tls`, else the node's own
    (when its props carry `tls`), else None (plaintext). `props` may also be the stack
    outputs' Node, which carries `client_tls` when its service speaks TLS."""
    if not isinstance(props, Mapping):
        return getattr(props, "client_tls", None)
    if props.get("client_tls"):
        return dict(props["client_tls"])
    if props.get("tls") and props.get("data_dir"):
        return files(props["data_dir"])
    return None


def require(paths: Mapping[str, str], *, what: str) -> None:
    """Each named file exists, or one line naming the missing one."""
    for part, path in paths.items():
        if path and not Path(path).is_file():
            raise DatakitError(f"{what}: the TLS {part} file {path} is missing; run "
                               "`datakit up` to write it, or point the outputs' tls paths "
                               "at the stack's files")


def context(paths: Mapping[str, str] | None, *, what: str = "client") -> ssl.SSLContext | None:
    """An SSL context trusting only the stack's CA, presenting the client certificate when
    there is one; None for plaintext."""
    if not paths:
        return None
    require(paths, what=what)
    ctx = ssl.create_default_context(cafile=paths["ca"])
    if paths.get("cert"):
        ctx.load_cert_chain(paths["cert"], paths.get("key"))
    return ctx


def scheme(paths: Mapping[str, str] | None) -> str:
    return "https" if paths else "http"


def libpq(paths: Mapping[str, str] | None) -> dict[str, str]:
    """libpq connection parameters: the server must show a certificate of the stack's CA
    for the very host dialled (verify-full); passwords stay the authentication."""
    if not paths:
        return {}
    require({"ca": paths["ca"]}, what="PostgreSQL client")
    return {"sslmode": "verify-full", "sslrootcert": paths["ca"]}


# --------------------------------------------------------------------------- the kit's files

CLIENT_NAMES = {"ca": "ca.crt", "cert": "client.crt", "key": "client.key"}


def client_paths(folder: str | Path) -> dict[str, str]:
    """Where a stack keeps the CA and the kit's client certificate for its own clients."""
    return {part: str(Path(folder) / name) for part, name in CLIENT_NAMES.items()}


def write_client(spec: Mapping[str, Any]) -> dict[str, str]:
    """The kit's client files ({folder, ca, cert, key} PEM) for the current user: the key
    0600, the CA 0644 so that psql or redis-cli of any user may trust it."""
    me = RunAs.service("root") if os.geteuid() == 0 else RunAs.service("")
    paths = client_paths(spec["folder"])
    Path(spec["folder"]).mkdir(parents=True, exist_ok=True)
    for part, path in paths.items():
        _write_private(Path(path), str(spec[part]), me)
    Path(paths["ca"]).chmod(0o644)
    return paths


def delete_client(spec: Mapping[str, Any]) -> None:
    for path in client_paths(spec["folder"]).values():
        Path(path).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # other files there are not ours
        Path(spec["folder"]).rmdir()


def redis(paths: Mapping[str, str] | None) -> dict[str, Any]:
    """redis-py's connection keywords: TLS checking the server's certificate and host
    against the stack's CA (the password stays the authentication)."""
    if not paths:
        return {}
    require({"ca": paths["ca"]}, what="Redis client")
    return {"ssl": True, "ssl_ca_certs": paths["ca"], "ssl_cert_reqs": "required",
            "ssl_check_hostname": True}


def with_own(props: Mapping[str, Any], peers: list[dict]) -> list[dict]:
    """`peers` as this node reaches them: with its own files, when it has TLS."""
    own = client_files(props)
    return [{**p, "client_tls": own} if own and "client_tls" not in p else p for p in peers]
