"""Patroni's post_bootstrap script: the application role and database of a new cluster.

Patroni 4 no longer creates users from `bootstrap.users`; it runs this once, as the node's
account, right after initdb on the member that initialises the cluster:

    python -m datakit.nodes.patroni_bootstrap <bootstrap.json> <superuser connection URL>

The URL carries no password (Patroni passes it in a pgpass file, PGPASSFILE); the role's
password comes from bootstrap.json (0600), so none is ever in argv or a log. A non-zero exit
makes Patroni fail the bootstrap, and it says why on stderr, which is Patroni's log.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psycopg

from datakit.nodes.postgres_client import ensure_database, ensure_role


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m datakit.nodes.patroni_bootstrap BOOTSTRAP_JSON CONNINFO",
              file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    try:
        with psycopg.connect(argv[1], autocommit=True) as conn:
            ensure_role(conn, spec["app_user"], spec["app_password"])
            ensure_database(conn, spec.get("app_database") or spec["app_user"],
                            spec["app_user"])
    except psycopg.Error as exc:
        print(f"datakit post_bootstrap: creating role {spec['app_user']!r} failed: "
              f"{str(exc).strip()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
