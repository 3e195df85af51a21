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

ENV_PREFIX = "DATAKIT_"


def envvar_of(flag: str) -> str:
    """The environment variable that sets option `flag`: --lock-wait -> DATAKIT_LOCK_WAIT."""
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


def option(*decls, **kw):
    """typer.Option, settable from DATAKIT_<LONG NAME> as well (shown in --help). The same
    name means the same on every command, so DATAKIT_STACK=dev sets every command's stack."""
    long = next(d for d in decls if isinstance(d, str) and d.startswith("--"))
    return typer.Option(*decls, envvar=envvar_of(long), show_envvar=True, **kw)


# Annotated, so both faces' signatures take them: `as_json: Json = False`.
Stack = Annotated[str, option("--stack", "-s", help="the Pulumi stack (environment)")]
Json = Annotated[bool, option("--json", help="print the result as JSON on stdout "
                                    "(an error too)")]
JsonFile = Annotated[Path | None, option("--json-file", metavar="PATH",
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
