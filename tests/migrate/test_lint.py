"""lint: each rule fires on a positive example and stays quiet on its negative."""

from __future__ import annotations

import pytest
from migrate_helpers import write

from datakit.errors import DatakitError
from datakit.migrate import lint

EXISTING = "-- datakit:lock-timeout=5s\n"

CASES = {
    "DK001": (EXISTING + "CREATE INDEX users_email_idx ON users (email);",
              "-- datakit:no-transaction\n-- datakit:lock-timeout=5s\n"
              "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);"),
    "DK002": (EXISTING + "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();",
              EXISTING + "ALTER TABLE users ADD COLUMN created_at timestamptz DEFAULT now();"),
    "DK003": (EXISTING + "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
              EXISTING + "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) "
              "NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT email_nn;\n"
              "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
    "DK004": (EXISTING + "ALTER TABLE users ALTER COLUMN id TYPE bigint;",
              EXISTING + "ALTER TABLE users ADD COLUMN id_new bigint;"),
    "DK005": (EXISTING + "ALTER TABLE users DROP COLUMN legacy;",
              EXISTING + "ALTER TABLE users RENAME COLUMN legacy TO legacy_unused;"),
    "DK006": ("ALTER TABLE users ADD COLUMN nickname text;",
              "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN nickname text;"),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires_on_positive_and_not_on_negative(mdir, rule):
    positive, negative = CASES[rule]
    write(mdir, "V1__positive.sql", positive)
    write(mdir, "V2__negative.sql", negative)
    found = [(f.rule, f.file.rsplit("/", 1)[-1]) for f in lint(mdir)]
    assert (rule, "V1__positive.sql") in found
    assert (rule, "V2__negative.sql") not in found


def test_new_tables_in_the_same_file_are_not_heavy(mdir):
    write(mdir, "V1__new.sql", "CREATE TABLE users (id int, email text);\n"
          "CREATE INDEX users_email_idx ON users (email);\n"
          "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n")
    assert lint(mdir) == []


def test_finding_names_file_line_rule_and_fix(mdir):
    write(mdir, "V1__x.sql", EXISTING + "\nCREATE INDEX i ON users (email);")
    (finding,) = lint(mdir)
    assert finding.line == 3 and finding.severity == "error"
    assert str(finding).endswith("DK001 error: CREATE INDEX without CONCURRENTLY locks writes "
                                 "to the table (index on public.users); use CREATE INDEX "
                                 "CONCURRENTLY in a file with -- datakit:no-transaction")


def test_severities_are_configurable(mdir):
    write(mdir, "V1__x.sql", EXISTING + "CREATE INDEX i ON users (email);\n"
          "ALTER TABLE users DROP COLUMN legacy;")
    by_rule = {f.rule: f.severity for f in lint(mdir, warnings={"DK001"}, errors={"DK005"})}
    assert by_rule == {"DK001": "warning", "DK005": "error"}
    assert [f.rule for f in lint(mdir, ignore={"DK001"})] == ["DK005"]
    with pytest.raises(DatakitError, match="unknown lint rule 'DK999'"):
        lint(mdir, ignore={"DK999"})


def test_file_can_silence_a_rule(mdir):
    write(mdir, "V1__x.sql", "-- datakit:lint-ignore=DK005\n" + EXISTING +
          "ALTER TABLE users DROP COLUMN legacy;")
    assert lint(mdir) == []
