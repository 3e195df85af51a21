"""`datakit connect` against a live stack, with the real psql and redis-cli, as a user runs
it: the exports evaluated by a shell, and the clients opened on the primary and master."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from datakit.paths import PROJECT_DIR

pytestmark = [pytest.mark.engine, pytest.mark.slow]
DATAKIT = str(Path(sys.executable).parent / "datakit")


def _datakit(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DATAKIT, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=PROJECT_DIR)


def test_exports_hide_passwords_unless_asked(e2e_stack):
    shown = _datakit("connect", "--stack", e2e_stack.name)
    assert shown.returncode == 0, shown.stderr
    assert "export PGHOST=" in shown.stdout and "export REDIS_URL=" in shown.stdout
    assert "export KAFKA_BOOTSTRAP_SERVERS=" in shown.stdout
    assert "export PGPASSWORD" not in shown.stdout
    secrets = e2e_stack.outputs().need_secrets()
    for password in (secrets.postgres.app, secrets.redis.default, secrets.kafka.app):
        assert password not in shown.stdout


def test_evaluated_exports_let_psql_and_redis_cli_in(e2e_stack):
    script = (f'eval "$({DATAKIT} connect --stack {e2e_stack.name} --show-secrets)"\n'
              'psql -XAtc "SELECT pg_is_in_recovery()"\n'
              'redis-cli -u "$REDIS_URL" --cacert "$REDIS_CA_CERT" --no-auth-warning ROLE '
              '| head -1\n')
    run = subprocess.run(["bash", "-ec", script], capture_output=True, text=True, timeout=60,
                         cwd=PROJECT_DIR)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["f", "master"]  # the primary, the master


def test_connect_opens_psql_on_the_primary_and_redis_cli_on_the_master(e2e_stack):
    pg = _datakit("connect", "--stack", e2e_stack.name, "postgres",
                  stdin="SELECT pg_is_in_recovery();\n")
    assert pg.returncode == 0, pg.stderr
    assert pg.stdout.split()[2] == "f"  # psql's aligned output: header, rule, value
    rd = _datakit("connect", "--stack", e2e_stack.name, "redis", stdin="ROLE\n")
    assert rd.returncode == 0, rd.stderr
    assert rd.stdout.split()[0] == "master"


def test_connect_to_kafka_says_why_not(e2e_stack):
    run = _datakit("connect", "--stack", e2e_stack.name, "kafka")
    assert run.returncode != 0
    assert "librdkafka" in run.stderr and "Traceback" not in run.stderr
