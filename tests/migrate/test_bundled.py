"""The bundled data-layer migrations: they apply, lint clean, and survive up -> down -> up."""

from __future__ import annotations

import subprocess

from migrate_helpers import query

from datakit.migrate import apply, lint, rollback, status
from datakit.migrate.files import BUNDLED_DIR, discover

SCHEMAS = {"ms_framework", "ms_agents", "ms_messaging", "ms_audit", "ms_config", "ms_security"}


def _schema_dump(pg_server, dsn: str) -> str:
    dbname = dsn.split("dbname=")[1].split()[0]
    out = subprocess.run(
        ["/usr/lib/postgresql/15/bin/pg_dump", "--schema-only", "--no-owner",
         "--exclude-schema=ms_migrations", "-h", "127.0.0.1", "-p", str(pg_server.port),
         "-U", "postgres", dbname],
        env={"PGPASSWORD": pg_server.password}, capture_output=True, text=True, check=True)
    # pg_dump's \restrict lines carry a random key per run.
    return "\n".join(line for line in out.stdout.splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict")))


def test_every_bundled_migration_has_an_undo():
    migrations = discover(BUNDLED_DIR)
    assert migrations and all(m.undo is not None for m in migrations)


def test_bundled_migrations_create_the_data_layer_schemas(dsn):
    apply(dsn)
    names = {r[0] for r in query(dsn, "SELECT nspname FROM pg_namespace")}
    assert names >= SCHEMAS
    tables = {f"{s}.{t}" for s, t in query(
        dsn, "SELECT schemaname, tablename FROM pg_tables WHERE schemaname LIKE 'ms\\_%'")}
    for table in ("ms_agents.agent_instances", "ms_agents.agent_lifecycle_events",
                  "ms_agents.agent_states", "ms_agents.agent_communications",
                  "ms_framework.event_store", "ms_framework.aggregate_snapshots",
                  "ms_messaging.message_queue", "ms_messaging.dead_letter_queue",
                  "ms_audit.data_modifications", "ms_security.access_logs",
                  "ms_security.data_classification", "ms_config.configurations"):
        assert table in tables
    assert status(dsn).ok


def test_event_store_refuses_a_duplicate_aggregate_version(dsn):
    apply(dsn)
    insert = ("INSERT INTO ms_framework.event_store (aggregate_id, aggregate_type, event_type, "
              "event_data, event_version) VALUES ('00000000-0000-0000-0000-000000000001', "
              "'order', 'created', '{}', 1)")
    query(dsn, insert)
    try:
        query(dsn, insert)
    except Exception as exc:  # noqa: BLE001
        assert "unique_aggregate_version" in str(exc)
    else:
        raise AssertionError("duplicate (aggregate, version) was accepted")


def test_bundled_migrations_survive_up_down_up_with_identical_schema(pg_server, dsn):
    apply(dsn)
    first = _schema_dump(pg_server, dsn)
    rollback(dsn, target=0)
    assert not SCHEMAS & {r[0] for r in query(dsn, "SELECT nspname FROM pg_namespace")}
    apply(dsn)
    assert _schema_dump(pg_server, dsn) == first


def test_each_bundled_migration_rolls_back_and_reapplies_alone(pg_server, dsn):
    apply(dsn)
    full = _schema_dump(pg_server, dsn)
    for m in reversed(discover(BUNDLED_DIR)):
        rollback(dsn, steps=1)
        apply(dsn)
        assert _schema_dump(pg_server, dsn) == full, m.name
        rollback(dsn, steps=1)


def test_bundled_migrations_lint_clean():
    assert lint() == []
