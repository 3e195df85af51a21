"""The stack facade: up, down, preview and outputs of a project stack, with progress.

The program is the project directory (Pulumi.yaml + __main__.py), the same path a user
takes with `pulumi up -s NAME`, so both always do the same thing.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from typing import Any

from datakit.errors import DatakitError
from datakit.paths import PROJECT_DIR
from datakit.toolchain import automation
from datakit.topology import Topology, load
from datakit.topology.loading import stack_file

Events = Callable[[Any], None]


class StackError(DatakitError):
    one_line = False  # a line per error the engine reported


def open_stack(stack: str):
    """The project's stack `stack`; refused when it has no stack file, since selecting a
    stack the engine does not know creates it (a typo would leave an empty stack)."""
    if not stack_file(stack, PROJECT_DIR).is_file():
        load(stack, PROJECT_DIR)  # raises the missing file's error, with the known stacks
    return automation.project_stack(stack, PROJECT_DIR)


def check_topology(stack: str) -> Topology:
    """The stack's topology; a broken stack config is refused before the engine starts."""
    return load(stack, PROJECT_DIR)


def _run(action: str, stack: str, fn: Callable[[], Any]) -> Any:
    from pulumi.automation import errors

    try:
        return fn()
    except errors.CommandError as exc:
        raise StackError(f"`{action}` of stack {stack!r} failed:\n{_engine_message(exc)}") from None


def _engine_message(exc: Exception) -> str:
    """The errors the engine reported, each once, not its whole transcript."""
    seen: list[str] = []
    for line in str(exc).splitlines():
        if "error:" not in line:
            continue
        text = line.split("error:", 1)[1].strip()
        text = text.removeprefix("Exception calling application:").strip()
        if text and text not in seen and text not in ("update failed", "preview failed"):
            seen.append(text)
    return "\n".join(seen) or str(exc)[-4000:]


def up(stack: str, on_event: Events | None = None, on_output=None, refresh: bool = True):
    """Create or update the stack; `refresh` first notices nodes that died or vanished."""
    check_topology(stack)
    s = open_stack(stack)
    return _run("up", stack, lambda: s.up(on_event=on_event, on_output=on_output,
                                          refresh=refresh, color="never"))


def preview(stack: str, on_output=None):
    check_topology(stack)
    s = open_stack(stack)
    return _run("preview", stack, lambda: s.preview(on_output=on_output, color="never",
                                                      suppress_outputs=True, diff=True))


def down(stack: str, on_event: Events | None = None, on_output=None):
    s = open_stack(stack)
    result = _run("destroy", stack, lambda: s.destroy(on_event=on_event, on_output=on_output,
                                                      color="never"))
    _remove_empty_data_dir(stack)
    return result


ROLLING_LOCK = ".rolling.lock"  # datakit.nodes.rolling's, beside the node folders


def _remove_empty_data_dir(stack: str) -> None:
    """Each node removes its own dir; once none is left, the stack's WAL archive and its
    rolling-restart lock file go, then the stack's folder."""
    # Not empty, already gone, or no stack file: then there is nothing of ours to remove.
    with contextlib.suppress(OSError, DatakitError):
        topo = load(stack, PROJECT_DIR)
        archive, lock = topo.archive_path(), topo.data_path() / ROLLING_LOCK
        if not [p for p in topo.data_path().iterdir() if p not in (archive, lock)]:
            shutil.rmtree(archive, ignore_errors=True)
            lock.unlink(missing_ok=True)
        topo.data_path().rmdir()


def outputs(stack: str) -> dict[str, Any]:
    return {k: v.value for k, v in open_stack(stack).outputs().items()}
