"""The commands that reach a stack from outside datakit: a client or shell exports on it
(connect), a node's log (logs), and the stack file's JSON Schema for editors (schema).
`datakit.cli` registers them. They print with `print` and exec, not Rich: their output is
for a shell, a pipe or a file."""

from __future__ import annotations

import json
import os
import shutil
import sys

import typer

from datakit.cli_options import Json, Stack, option
from datakit.errors import DatakitError


def connect(target: str = typer.Argument(None, metavar="[postgres|redis]",
                                         help="open psql on the primary or redis-cli on "
                                              "the master; without it, print exports"),
            stack: Stack = "local",
            show_secrets: bool = option(False, "--show-secrets",
                                              help="put the passwords in the exports"),
            as_json: Json = False) -> None:
    """Shell exports for a stack's endpoints (eval "$(datakit connect)"), or a client on it."""
    from datakit import connect as reach
    from datakit.stack import outputs as stack_outputs

    if target is not None and as_json:
        raise DatakitError("connect: --json prints the exports as JSON; it opens no client "
                           "(drop the target or --json)")
    outputs = stack_outputs.read(stack)
    if as_json:
        print(json.dumps(reach.environment(outputs, show_secrets=show_secrets), indent=2))
        return
    if target is None:
        print(reach.exports(outputs, show_secrets=show_secrets), end="")
        return
    argv, env = reach.client(outputs, target)
    if not shutil.which(argv[0]):
        raise DatakitError(f"{argv[0]} not found: install it (tools/bootstrap installs "
                           "postgresql-client and redis-tools)")
    os.execvpe(argv[0], argv, {**os.environ, **env})


LinesOpt = option(40, "--lines", "-n", min=0, help="how many of the last lines to show")


def logs(node: str = typer.Argument(..., metavar="NODE", help="the node, e.g. pg-1, "
                                    "kafka-2 (datakit status lists them)"),
         stack: Stack = "local", lines: int = LinesOpt,
         follow: bool = option(False, "--follow", "-f", help="go on printing what it writes "
                               "(until Ctrl-C)"),
         as_json: Json = False) -> None:
    """A node's log: the last lines of each of its log files, or its container's output."""
    from datakit.nodes import logs as node_logs
    from datakit.stack import outputs as stack_outputs

    outputs = stack_outputs.read(stack)
    known = {n.name: n for n in outputs.nodes}
    if node not in known:
        raise DatakitError(f"stack {stack!r} has no node {node!r}: choose one of "
                           f"{', '.join(known) or 'none (is it up?)'}")
    if as_json and follow:
        raise DatakitError("logs: --json prints the last lines once; drop --follow or --json")
    if known[node].handle.kind == "docker":
        from datakit.nodes.control import control_for

        for chunk in control_for(known[node], outputs).logs(lines=lines, follow=follow):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
        return
    files = node_logs.log_files(known[node])
    if as_json:
        print(json.dumps({"node": node, "files": {str(p): node_logs.last_lines(p, lines)
                                                  for p in files}}, indent=2))
        return
    if not shutil.which("tail"):
        raise DatakitError("tail not found: install coreutils")
    # tail itself: it follows a file that is rotated or recreated (-F), as users expect.
    os.execvp("tail", ["tail", "-n", str(lines), *(["-F"] if follow else []),
                       *map(str, files)])


def schema(as_json: Json = False) -> None:
    """Print the JSON Schema of a stack file, for editors (docs/config.md shows how)."""
    from datakit.topology.reference import stack_file_schema

    print(json.dumps(stack_file_schema(), indent=2))  # JSON either way; --json is the rule's
