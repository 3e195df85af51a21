"""Stacks through the Automation API, with the offline engine environment applied."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from datakit.toolchain import engine

SALT_LINE = re.compile(r"^encryptionsalt:.*\n?", re.M)


def _options(work_dir: Path | None, project: str | None):
    from pulumi import automation as auto

    env = engine.apply_environment()
    binary = engine.engine_binary()
    settings = None
    if project:
        settings = auto.ProjectSettings(name=project, runtime="python")
    return auto.LocalWorkspaceOptions(
        work_dir=str(work_dir) if work_dir else None,
        pulumi_home=env["PULUMI_HOME"],
        env_vars=env,
        secrets_provider="passphrase",
        project_settings=settings,
        pulumi_command=auto.PulumiCommand(root=str(binary.parent.parent)),
    )


def project_stack(stack: str, work_dir: Path):
    """A stack of the project in `work_dir` (its Pulumi.yaml and __main__.py).

    The engine keeps its passphrase's salt in the stack's file, which outlives the
    passphrase and the state in `.datakit/` (a `git clean -fdx`, a copied checkout). When
    the stack is not in the state, creating it fails on that stale salt: the salt belongs
    to no stack any more, so it is dropped and the stack made anew."""
    from pulumi import automation as auto

    opts = _options(work_dir, None)
    try:
        return auto.create_or_select_stack(stack, work_dir=str(work_dir), opts=opts)
    except auto.errors.CommandError as exc:  # select failed, so this was the create
        config = work_dir / "stacks" / f"Pulumi.{stack}.yaml"
        if "incorrect passphrase" not in str(exc) or not config.is_file():
            raise
        config.write_text(SALT_LINE.sub("", config.read_text()))
        return auto.create_or_select_stack(stack, work_dir=str(work_dir), opts=opts)


def inline_stack(stack: str, project: str, program: Callable[[], None], work_dir: Path):
    """A stack whose program is a function of this process (no language host involved)."""
    from pulumi import automation as auto

    return auto.create_or_select_stack(stack, project_name=project, program=program,
                                       opts=_options(work_dir, project))
