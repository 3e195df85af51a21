"""Migration files: names, directives, duplicates, orphan undos and SQL checks, no database."""

from __future__ import annotations

import pytest
from migrate_helpers import write

from datakit.migrate.files import MigrationFileError, create, discover
from datakit.migrate.statements import check, split


def test_versions_sort_numerically_and_pair_with_undo(mdir):
    write(mdir, "V10__later.sql", "SELECT 1;")
    write(mdir, "V2__earlier.sql", "SELECT 1;")
    write(mdir, "U2__earlier.sql", "SELECT 1;")
    write(mdir, "README.md", "not a migration")
    found = discover(mdir)
    assert [m.version for m in found] == [2, 10]
    assert found[0].undo is not None and found[1].undo is None
    assert len(found[0].checksum) == 64


@pytest.mark.parametrize("name", ["V1_missing_double_underscore.sql", "V1__has-dash.sql",
                                  "Vx__no_version.sql", "v1__lower_case.sql", "V1__.sql"])
def test_malformed_name_is_refused_with_the_file_named(mdir, name):
    write(mdir, name, "SELECT 1;")
    with pytest.raises(MigrationFileError, match=r"does not match V<version>__") as err:
        discover(mdir)
    assert name in str(err.value) and "rename it" in str(err.value)


def test_unknown_directive_names_the_file_and_the_known_ones(mdir):
    write(mdir, "V1__x.sql", "-- datakit:no-transacton\nSELECT 1;")
    with pytest.raises(MigrationFileError, match=r"V1__x.sql: unknown directive") as err:
        discover(mdir)
    assert "datakit:no-transaction" in str(err.value)


def test_directive_needs_a_valid_duration(mdir):
    write(mdir, "V1__x.sql", "-- datakit:lock-timeout=soon\nSELECT 1;")
    with pytest.raises(MigrationFileError, match="needs a duration"):
        discover(mdir)


def test_directives_are_read_from_the_leading_comment_only(mdir):
    write(mdir, "V1__x.sql", "-- about this file\n-- datakit:no-transaction\n"
          "-- datakit:lock-timeout=5s\n-- datakit:statement-timeout=10min\n"
          "SELECT 1;\n-- datakit:bogus-but-ignored-after-sql\n")
    d = discover(mdir)[0].up.directives
    assert d.no_transaction and d.lock_timeout == "5s" and d.statement_timeout == "10min"


def test_duplicate_version_names_both_files(mdir):
    write(mdir, "V1__one.sql", "SELECT 1;")
    write(mdir, "V0001__other.sql", "SELECT 1;")
    with pytest.raises(MigrationFileError, match="duplicate version 1") as err:
        discover(mdir)
    assert "V0001__other.sql" in str(err.value) and "V1__one.sql" in str(err.value)


def test_undo_without_migration_is_refused(mdir):
    write(mdir, "V1__one.sql", "SELECT 1;")
    write(mdir, "U2__two.sql", "SELECT 1;")
    with pytest.raises(MigrationFileError, match="U2__two.sql: undo file without a migration"):
        discover(mdir)


def test_create_writes_the_next_zero_padded_version(mdir):
    write(mdir, "V0007__seven.sql", "SELECT 1;")
    paths = create("Add user email", mdir, undo=True)
    assert [p.name for p in paths] == ["V0008__add_user_email.sql", "U0008__add_user_email.sql"]
    assert [m.version for m in discover(mdir)] == [7, 8]


def test_syntax_error_names_file_line_and_column(mdir):
    write(mdir, "V1__x.sql", "SELECT 1;\nSELEC 2;\n")
    with pytest.raises(MigrationFileError, match=r"V1__x.sql:2:1: syntax error"):
        check(discover(mdir)[0].up)


@pytest.mark.parametrize("sql", ["BEGIN;\nCREATE TABLE t (a int);\nCOMMIT;",
                                 "CREATE INDEX CONCURRENTLY i ON t (a);",
                                 "VACUUM t;"])
def test_statements_that_break_the_transaction_need_no_transaction(mdir, sql):
    write(mdir, "V1__x.sql", sql)
    with pytest.raises(MigrationFileError, match="datakit:no-transaction"):
        check(discover(mdir)[0].up)


@pytest.mark.parametrize("header", ["", "-- datakit:no-transaction\n"])
@pytest.mark.parametrize("sql", ["DEALLOCATE ALL;", "DISCARD ALL;"])
def test_no_file_may_drop_the_runners_prepared_statements(mdir, header, sql):
    write(mdir, "V1__x.sql", f"{header}CREATE TABLE t (a int);\n{sql}")
    with pytest.raises(MigrationFileError, match=r"V1__x.sql:\d: DEALLOCATE and DISCARD"):
        check(discover(mdir)[0].up)


def test_split_uses_the_real_parser_not_semicolons(mdir):
    write(mdir, "V1__x.sql", "-- datakit:no-transaction\n"
          "-- a comment; with a semicolon\n"
          "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT 'a;b' $$;\n"
          "SELECT E'it\\'s; fine';\n"
          "DO $$ BEGIN PERFORM 1; END $$;\n")
    parts = split(discover(mdir)[0].up)
    assert len(parts) == 3
    assert parts[0].text.startswith("CREATE FUNCTION") and "'a;b'" in parts[0].text
