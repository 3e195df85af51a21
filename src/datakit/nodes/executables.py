"""The programs that daemons run from the virtualenv's bin (etcd, Patroni), checked for the
account that runs them.

tools/bootstrap links etcd there and pip puts Patroni's console script there. A daemon runs
as its service user (`etcd`, `postgres`), which must be able to reach that directory: a
checkout under a 0700 home (/root) cannot work, and the error says so before anything
starts, rather than as a daemon that exits with "permission denied".
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from datakit.errors import DatakitError
from datakit.nodes.process import RunAs


def venv_bin() -> Path:
    """The running interpreter's bin: the venv that tools/bootstrap made."""
    return Path(sys.executable).parent


def venv_program(name: str, account: RunAs) -> Path:
    """`<venv>/bin/<name>`, which `account` can run; else one line naming the fix."""
    path = venv_bin() / name
    if not path.exists():
        raise DatakitError(f"{name} is not installed ({path} missing): run tools/bootstrap")
    if not _runnable(str(path), account):
        raise DatakitError(
            f"user {account.name} cannot run {path}: a parent directory is not open to it; "
            "put the checkout (and its .venv) where service users can read it, e.g. /opt or "
            "/srv, and rerun tools/bootstrap there")
    return path


@cache
def _runnable(path: str, account: RunAs) -> bool:
    # Asked of the kernel as that account: modes, groups and ACLs all count.
    try:
        account.run(["test", "-x", path], what=f"checking that {account.name} can run {path}",
                    timeout=10)
    except DatakitError:
        return False
    return True
