"""Migrations: the live primary's database is at the newest bundled version and `validate`
(files against the applied history: checksums, partial runs, order) is clean."""

from __future__ import annotations

from datakit.migrate.files import discover
from datakit.verify import Mismatch


def _where(pg_primary) -> str:
    return pg_primary.name if pg_primary else "postgres"


def _dsn(outputs, pg_primary) -> str:
    if pg_primary is None:
        raise Mismatch("no live primary")
    return outputs.endpoints.postgres.write_dsn


def test_migrations_at_newest(outputs, pg_primary, context, checker):
    from datakit.migrate.status import status

    folder = context.get("migrations_dir")
    newest = max((m.version for m in discover(folder)), default=None)

    def probe() -> str:
        report = status(_dsn(outputs, pg_primary), folder)
        pending = len(report.pending)
        return f"version {report.current_version}" + (f", {pending} pending" if pending else "")

    checker.expect("migrations at newest version", _where(pg_primary), f"version {newest}",
                   probe)


def test_migrations_validate_clean(outputs, pg_primary, context, checker):
    from datakit.errors import DatakitError
    from datakit.migrate.status import validate

    folder = context.get("migrations_dir")

    def probe() -> str:
        try:
            validate(_dsn(outputs, pg_primary), folder)
        except DatakitError as exc:
            raise Mismatch(str(exc).strip().splitlines()[0]) from None
        return "clean"

    checker.expect("migrations validate clean", _where(pg_primary), "clean", probe)
