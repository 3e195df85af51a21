"""Stacks through the Automation API, with the offline engine environment applied."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from datakit.toolchain import engine


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
    """A stack of the project in `work_dir` (its Pulumi.yaml and __main__.py)."""
    from pulumi import automation as auto

    return auto.create_or_select_stack(stack, work_dir=str(work_dir),
                                       opts=_options(work_dir, None))


def inline_stack(stack: str, project: str, program: Callable[[], None], work_dir: Path):
    """A stack whose program is a function of this process (no language host involved)."""
    from pulumi import automation as auto

    return auto.create_or_select_stack(stack, project_name=project, program=program,
                                       opts=_options(work_dir, project))
