"""The CLI: exit codes for CI, one-line errors, JSON, --stack from stack outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from migrate_helpers import PROJECT, cli, query, write

from datakit.infra.migration_run import apply_for_stack, migration_inputs
from tests.support.stack_outputs import raw


def test_status_and_validate_exit_non_zero_while_pending(dsn, mdir):
    write(mdir, "V1__t.sql", "CREATE TABLE t (a int);")
    st = cli("status", "--dsn", dsn, "--migrations-dir", str(mdir), "--json")
    assert st.returncode == 1 and json.loads(st.stdout)["pending"] == 1
    val = cli("validate", "--dsn", dsn, "--migrations-dir", str(mdir))
    assert val.returncode == 1 and "pending, first V1__t.sql" in val.stderr
    ap = cli("apply", "--dsn", dsn, "--migrations-dir", str(mdir))
    assert ap.returncode == 0 and "applied V1__t.sql" in ap.stdout
    noop = cli("apply", "--dsn", dsn, "--migrations-dir", str(mdir), "--json")
    assert noop.returncode == 0 and json.loads(noop.stdout)["current_version"] == 1
    assert cli("status", "--dsn", dsn, "--migrations-dir", str(mdir)).returncode == 0
    assert cli("validate", "--dsn", dsn, "--migrations-dir", str(mdir)).returncode == 0
    write(mdir, "V1__t.sql", "CREATE TABLE t (a bigint);")  # an applied file changed: drift
    st = cli("status", "--dsn", dsn, "--migrations-dir", str(mdir), "--json")
    assert st.returncode == 1 and json.loads(st.stdout)["drifted"] == 1
    val = cli("validate", "--dsn", dsn, "--migrations-dir", str(mdir))
    assert val.returncode == 1 and "V1__t.sql" in val.stderr and "checksum" in val.stderr


def test_bad_input_is_one_line_on_stderr(dsn, mdir, pg_server):
    write(mdir, "V1__bad name.sql", "SELECT 1;")
    bad = cli("apply", "--dsn", dsn, "--migrations-dir", str(mdir))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("error: ") and "V1__bad name.sql" in bad.stderr
    (mdir / "V1__bad name.sql").unlink()
    write(mdir, "V1__fails.sql", "SELECT 1/0;")
    fail = cli("apply", "--dsn", dsn, "--migrations-dir", str(mdir))
    assert fail.returncode == 1 and fail.stderr.count("\n") == 1
    assert "V1__fails.sql failed at line 1, column" in fail.stderr and "22012" in fail.stderr
    wrong = cli("status", "--dsn", pg_server.dsn(password="nope"))
    assert wrong.returncode == 1 and "password authentication failed" in wrong.stderr
    assert "Traceback" not in wrong.stderr + bad.stderr + fail.stderr


def test_create_and_lint_commands(mdir):
    made = cli("create", "add users", "--undo", "--migrations-dir", str(mdir))
    assert made.returncode == 0 and "V0001__add_users.sql" in made.stdout
    write(mdir, "V0002__index.sql", "CREATE INDEX i ON users (email);")
    linted = cli("lint", "--migrations-dir", str(mdir))
    assert linted.returncode == 1 and "DK001 error" in linted.stdout
    assert cli("lint", "--migrations-dir", str(mdir), "--warn", "DK001").returncode == 0


def test_stack_connection_and_disposable_reset(dsn, mdir, tmp_path):
    write(mdir, "V1__t.sql", "CREATE TABLE t (a int);")
    outputs = tmp_path / "outputs.json"
    env = {**os.environ, "DATAKIT_OUTPUTS_FILE": str(outputs)}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "datakit.migrate", *args], cwd=PROJECT,
                              capture_output=True, text=True, env=env, timeout=60)

    for disposable in (False, True):
        outputs.write_text(json.dumps(raw({"endpoints": {"postgres": {"write_dsn": dsn}},
                                           "disposable": disposable})))
        assert run("apply", "--stack", "ci", "--migrations-dir", str(mdir)).returncode == 0
        reset = run("reset", "--stack", "ci", "--yes")
        if disposable:
            assert reset.returncode == 0 and "ms_migrations" in reset.stdout
        else:
            assert reset.returncode == 1 and "not marked disposable" in reset.stderr
            assert query(dsn, "SELECT count(*) FROM t") == [(0,)]


def test_stack_outputs_that_do_not_fit_the_schema_are_one_line_naming_file_and_field(
        mdir, tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(raw({"endpoints": {"postgres": {"read_dsn": None}}})))
    bad = subprocess.run([sys.executable, "-m", "datakit.migrate", "apply", "--stack", "ci",
                          "--migrations-dir", str(mdir)], cwd=PROJECT, capture_output=True,
                         text=True, env={**os.environ, "DATAKIT_OUTPUTS_FILE": str(outputs)},
                         timeout=60)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith(f"error: {outputs} ($DATAKIT_OUTPUTS_FILE): ")
    assert "endpoints.postgres.read_dsn: Input should be a valid string" in bad.stderr


def test_pulumi_inputs_change_with_a_new_migration_and_apply_summarises(dsn, mdir):
    write(mdir, "V1__t.sql", "CREATE TABLE t (a int);")
    before = migration_inputs(mdir)
    write(mdir, "V2__u.sql", "CREATE TABLE u (a int);")
    after = migration_inputs(mdir)
    assert set(after) - set(before) == {"V2__u.sql"} and len(after["V2__u.sql"]) == 64
    summary = apply_for_stack(dsn, mdir)
    assert summary["applied"] == ["V1__t.sql", "V2__u.sql"]
    assert summary["current_version"] == 2 and summary["wal_bytes"] > 0
    assert apply_for_stack(dsn, mdir)["applied"] == []
