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
    config = work_dir / "stacks" / f"Pulumi.{stack}.yaml"
    try:
        made = auto.create_or_select_stack(stack, work_dir=str(work_dir), opts=opts)
    except auto.errors.CommandError as exc:  # select failed, so this was the create
        if "incorrect passphrase" not in str(exc) or not config.is_file():
            raise
        config.write_text(SALT_LINE.sub("", config.read_text()))
        made = auto.create_or_select_stack(stack, work_dir=str(work_dir), opts=opts)
    _refresh_index(work_dir, config)
    return made


def _refresh_index(work_dir: Path, config: Path) -> None:
    """A salt written into a tracked stack file leaves its content, once git's clean
    filter (.gitattributes) drops the salt, as committed; but git status trusts the file's
    size and time first and calls it modified. Refreshing the index entry re-reads it
    through the filter, so a checkout stays clean. Outside a git checkout: nothing."""
    import subprocess

    if config.is_file() and (work_dir / ".git").exists():
        subprocess.run(["git", "-C", str(work_dir), "update-index", "-q", "--refresh",
                        "--", str(config.relative_to(work_dir))],
                       capture_output=True, timeout=10, check=False)


def inline_stack(stack: str, project: str, program: Callable[[], None], work_dir: Path):
    """A stack whose program is a function of this process (no language host involved)."""
    from pulumi import automation as auto

    return auto.create_or_select_stack(stack, project_name=project, program=program,
                                       opts=_options(work_dir, project))
