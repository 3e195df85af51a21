"""stack-restore, the DR rehearsal, on its own stack: back up PostgreSQL under a writer,
destroy the stack, create it again, restore, and find exactly the rows committed up to
the backup point, on a healthy stack. It rotates every generated password, so it does
not run on the shared e2e stack. A stack not marked disposable is refused in one line.

Ports: DATAKIT_E2E_RESTORE_PORT_SHIFT (default -1980: 62120-62822)."""

from __future__ import annotations

import os

import psycopg
import pytest

from datakit import status
from datakit.drills import postgres_ops, runner
from datakit.drills.targets import SCHEMA
from datakit.errors import DatakitError
from tests.support.derived_stack import DerivedStack

SHIFT = int(os.environ.get("DATAKIT_E2E_RESTORE_PORT_SHIFT", "-1980"))


@pytest.fixture(scope="module")
def restore_stack():
    stack = DerivedStack(f"restore-{os.getpid()}", port_shift=SHIFT,
                         address_base="127.21.0.0")
    try:
        stack.up()
        yield stack
    finally:
        stack.remove()


def test_stack_restore_brings_back_exactly_the_rows_at_the_backup_point(restore_stack):
    before = restore_stack.outputs()
    result = runner.run_once("stack-restore", restore_stack.name, outputs=before)
    assert result.applies and result.passed, result.reason
    assert result.check.acked > 0 and result.lost == 0 and not result.check.unexpected
    assert result.extra["rows_restored"] == result.extra["rows_at_point"] > 0
    assert result.extra["acked_after_point_not_restored"] > 0  # the point is a real cut
    assert result.rto_s is not None and result.rpo_s is not None
    print(f"stack-restore: rto {result.rto_s} s (down {result.extra['destroy_s']} s, up "
          f"{result.extra['up_s']} s, restore {result.extra['restore_s']} s), rpo "
          f"{result.rpo_s} s")

    after = restore_stack.outputs()  # a new stack: new passwords
    assert after.need_secrets().postgres.app != before.need_secrets().postgres.app
    with psycopg.connect(after.endpoints.postgres.write_dsn) as conn:  # independent
        present = {r[0] for r in conn.execute(
            f"select id from {SCHEMA}.writes where run = %s",
            [result.extra["run_id"]]).fetchall()}
    assert len(present) == result.extra["rows_at_point"]
    assert not [r for r in status.live(after) if r["health"] != "up"]
    primary, others = postgres_ops.roles(after)
    assert set(postgres_ops.wait_redundant(primary, after, others)) == \
        {o.name for o in others}


def test_stack_restore_refuses_a_stack_that_is_not_disposable(restore_stack):
    outputs = restore_stack.outputs().model_copy(update={"disposable": False})
    with pytest.raises(DatakitError, match="not disposable") as err:
        runner.run_once("stack-restore", restore_stack.name, outputs=outputs)
    assert "\n" not in str(err.value)
