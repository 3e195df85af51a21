"""What every `datakit` command shares: its common options and how it ends on an error.

Both faces (`datakit.cli` and `datakit.migrate.cli`) use these, so `--json` means the same
everywhere: JSON on stdout, errors included, for a CI step to parse.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer

from datakit.errors import DatakitError, report

# Annotated, so both faces' signatures take them: `as_json: Json = False`.
Stack = Annotated[str, typer.Option("--stack", "-s", help="the Pulumi stack (environment)")]
Json = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout "
                                    "(an error too)")]
JsonFile = Annotated[Path | None, typer.Option("--json-file", metavar="PATH",
                                               help="also write the result as JSON to this file")]


def fail(exc: DatakitError, *, as_json: bool = False) -> None:
    """End the command on `exc` (errors.report says how it is printed)."""
    sys.exit(report(exc, as_json=as_json))


def ends_cleanly(fn):
    """`fn`, whose DatakitError ends the command as `fail` says (no traceback)."""

    @functools.wraps(fn)
    def command(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DatakitError as exc:
            fail(exc, as_json=bool(kwargs.get("as_json")))

    return command
