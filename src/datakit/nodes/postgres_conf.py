"""PostgreSQL files of a local node: where the binaries are, the settings datakit never takes
from the stack, and a .pgpass line.

Patroni writes each member's configuration (patroni_conf.py renders patroni.yml); what is
left here serves it and the restore drills' scratch server: the bin dir of an installed
major, and the 0600 password file format (no password is ever in argv or a log).
"""

from __future__ import annotations

from pathlib import Path

from datakit.errors import DatakitError

PG_ROOT = Path("/usr/lib/postgresql")
# Set by datakit from the node itself: never from the stack's settings.
RESERVED = {"port", "listen_addresses", "unix_socket_directories", "cluster_name",
            "data_directory", "hba_file", "ident_file", "config_file", "primary_conninfo",
            "primary_slot_name"}


def bin_dir(version: int | str | None = None) -> Path:
    """The bin dir of PostgreSQL `version`, or of the newest major installed."""
    found = {}
    for candidate in PG_ROOT.glob("*/bin/postgres"):
        if candidate.parent.parent.name.isdigit():
            found[int(candidate.parent.parent.name)] = candidate.parent
    if version is not None:
        if int(version) not in found:
            have = ", ".join(map(str, sorted(found))) or "none"
            raise DatakitError(f"PostgreSQL {version} is not installed (installed: {have}); "
                               "install it or change postgres.version in the stack config")
        return found[int(version)]
    if not found:
        raise DatakitError("PostgreSQL is not installed: run tools/bootstrap "
                           "(apt-get install -y $(grep -v '^#' tools/apt-packages))")
    return found[max(found)]


def pgpass_line(user: str, password: str) -> str:
    """A .pgpass entry for `user` on any node of the stack (each has its own loopback
    address, and a replica may follow another one); the file is the caller's own."""
    esc = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:{user}:{esc}\n"
