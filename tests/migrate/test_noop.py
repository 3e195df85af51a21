"""The no-op `apply`: `noop` agrees with the file model, and the fast path stays lean."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from migrate_helpers import PROJECT, cli, write

from datakit.migrate import noop
from datakit.migrate.connection import connect
from datakit.migrate.files import BUNDLED_DIR, MigrationFileError, discover

GOOD_NAMES = ["V1__a.sql", "V0002__add_users.sql", "U0002__add_users.sql", "V10__a_b_c.sql",
              "V3__A1.sql", "notes.txt", ".hidden.sql", "README.md"]
BAD_NAMES = ["V1_a.sql", "V__a.sql", "V1__.sql", "V1__a_.sql", "V1__a__b.sql", "V1__a-b.sql",
             "X1__a.sql", "V1__a.SQL", "V1__a.sql.bak", "v1__a.sql", "V1a__b.sql",
             "V1__a b.sql", "V\u0661__a.sql", "U9__orphan.sql"]
DIRECTIVES = [
    "", "-- just a comment", "-- datakit:no-transaction", "-- datakit:no-transaction=",
    "-- datakit:no-transaction=yes", "--datakit:lock-timeout=5s", "-- datakit:lock-timeout=5",
    "-- datakit:lock-timeout=500ms", "-- datakit:statement-timeout=10min",
    "-- datakit:lock-timeout=10us", "-- datakit:lock-timeout=1h", "-- datakit:lock-timeout=2d",
    "-- datakit:lock-timeout=", "-- datakit:lock-timeout", "-- datakit:lock-timeout=5 s",
    "-- datakit:lock-timeout=5sec", "-- datakit:lock-timeout=ms", "-- datakit:lock-timeout=5s5",
    "-- datakit:lint-ignore=DK001,DK006", "-- datakit:lint-ignore=", "-- datakit:unknown",
    "-- datakit:Lock-timeout=5s", "-- datakit:lock-timeout=5s\n-- datakit:lock-timeout=6s",
    "-- datakit: lock-timeout=5s", "-- datakit:lock-timeout =5s", "  --   datakit:no-transaction  ",
    "SELECT 1;\n-- datakit:unknown", "\n\n-- datakit:no-transaction\n\n-- datakit:lock-timeout=1s",
    "-- datakit:lock-timeout=\u0665s", "\ufeff-- datakit:unknown", "-- datakit:no-transaction\r",
    "-- datakit:lint-ignore=DK001\u00a0x",
]


def discover_accepts(directory) -> dict[int, str] | None:
    try:
        return {m.version: m.checksum for m in discover(directory)}
    except MigrationFileError:
        return None


@pytest.mark.parametrize("name", GOOD_NAMES + BAD_NAMES)
def test_names_read_as_the_file_model_reads_them(mdir, name):
    write(mdir, "V0002__add_users.sql", "SELECT 1;")
    write(mdir, name, "SELECT 2;")
    found = noop.checksums(mdir)
    assert found is None or found == discover_accepts(mdir)
    if name in GOOD_NAMES:
        assert found == discover_accepts(mdir) is not None


@pytest.mark.parametrize("head", DIRECTIVES)
def test_directives_read_as_the_file_model_reads_them(mdir, head):
    write(mdir, "V1__a.sql", head + "\nSELECT 1;\n")
    expected = discover_accepts(mdir)
    found = noop.checksums(mdir)
    assert found is None or found == expected
    if "\u0665" not in head:  # other scripts' digits are left to the full runner
        assert found == expected


def test_duplicates_bad_utf8_and_missing_directory_are_left_to_the_full_runner(mdir, tmp_path):
    write(mdir, "V1__a.sql", "SELECT 1;")
    write(mdir, "V01__b.sql", "SELECT 1;")
    assert noop.checksums(mdir) is None and discover_accepts(mdir) is None
    (mdir / "V01__b.sql").unlink()
    (mdir / "V2__b.sql").write_bytes(b"SELECT '\xff';")
    assert noop.checksums(mdir) is None and discover_accepts(mdir) is None
    assert noop.checksums(tmp_path / "nowhere") is None


def test_bundled_folder_and_checksums_match_the_file_model():
    assert str(BUNDLED_DIR) == noop.BUNDLED_DIR
    assert noop.checksums() == discover_accepts(None)


def test_noop_answers_only_when_certain(dsn, mdir):
    write(mdir, "V1__a.sql", "CREATE TABLE a ();")

    def answer(target=None):
        with connect(dsn) as conn:
            return noop.nothing_to_apply(conn, noop.checksums(mdir), target=target)

    assert answer() is None  # no history yet
    assert cli("apply", "--dsn", dsn, "--migrations-dir", str(mdir)).returncode == 0
    assert answer() == 1
    write(mdir, "V2__b.sql", "CREATE TABLE b ();")
    assert answer() is None and answer(target=1) == 1  # pending, unless beyond the target
    (mdir / "V2__b.sql").unlink()
    write(mdir, "V1__a.sql", "CREATE TABLE a (id int);")
    assert answer() is None  # drift


HEAVY = {"typer", "rich", "click", "pydantic", "pulumi", "grpc", "psycopg", "pglast", "yaml"}


def test_datakit_migrate_apply_with_nothing_to_do_loads_no_heavy_module(dsn, mdir):
    write(mdir, "V1__a.sql", "CREATE TABLE a ();")
    assert cli("apply", "--dsn", dsn, "--migrations-dir", str(mdir)).returncode == 0
    argv = ["datakit", "migrate", "apply", "--dsn", dsn, "--migrations-dir", str(mdir)]
    code = ("import atexit, json, sys\n"
            "atexit.register(lambda: print(json.dumps(sorted({m.split('.')[0] for m in "
            "sys.modules}))))\n"
            f"sys.argv = {argv!r}\n"
            "from datakit.launch import main\n"
            "main()\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True,
                         text=True, timeout=60)
    out = run.stdout.splitlines()
    assert run.returncode == 0 and out[0] == "nothing to apply; database at version 1"
    assert not HEAVY & set(json.loads(out[1]))


def test_a_submodule_imported_first_does_not_shadow_the_export():
    code = ("import datakit.migrate.status, datakit.migrate.lint\n"
            "from datakit.migrate import lint, status\n"
            "print(callable(status) and status.__module__, callable(lint) and lint.__module__)")
    run = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True,
                         text=True, timeout=60)
    assert run.stdout.split() == ["datakit.migrate.status", "datakit.migrate.lint"], run.stderr
