"""The migration step of a docker stack: datakit's own runner, from the deploying machine,
against the primary's client address, once the primary is healthy.

A dynamic resource like the local substrate's, so `pulumi up` applies the bundled
migrations with the same history, locking and drift checks as `datakit migrate`. It needs
the primary to be reachable from where `pulumi up` runs: `postgres` in `docker.publish`
(or the host-network layout). Its inputs change, so it runs again, when a migration file
or the primary container changes.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from datakit.infra.migration_run import migration_inputs


def _apply(props: dict) -> dict:
    from datakit.migrate.runner import apply

    result = apply(f"{props['dsn']} password={props['password']}", props["migrations_dir"])
    return {"current_version": result.current_version,
            "applied": [step.file for step in result.steps]}


class MigrationRunProvider(ResourceProvider):
    def create(self, props):
        return CreateResult(id_="migrations", outs={**props, **_apply(props)})

    def diff(self, _id, olds, news):
        keys = ("dsn", "password", "migrations_dir", "files", "primary")
        return DiffResult(changes=any(olds.get(k) != news.get(k) for k in keys))

    def update(self, _id, _olds, news):
        return UpdateResult(outs={**news, **_apply(news)})

    def delete(self, _id, _props):
        """Schema stays with the data: dropping a stack's volumes is what removes it."""


class MigrationRun(Resource):
    current_version: pulumi.Output[int]

    def __init__(self, name: str, *, dsn: str, password: pulumi.Input[str],
                 migrations_dir: Path, primary: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None):
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["password"]))
        super().__init__(MigrationRunProvider(), name, {
            "dsn": dsn, "password": pulumi.Output.secret(password),
            "migrations_dir": str(migrations_dir), "files": migration_inputs(migrations_dir),
            "primary": primary, "current_version": None, "applied": None,
        }, opts)
