"""Errors a user can cause or fix: one clear line that names the thing and the fix."""

import sys


class DatakitError(Exception):
    """An expected failure: the CLI prints its message in one line and exits non-zero."""

    exit_code = 1


def report(exc: DatakitError, *, as_json: bool = False) -> int:
    """Print `exc` as every command ends on one: a line on stderr and, under --json, JSON
    on stdout too; return its exit code."""
    text = str(exc)
    message = text if "\n" in text else " ".join(text.split())
    if as_json:
        import json  # here: the lean `migrate apply` path loads json only when it must

        print(json.dumps({"error": message, "exit_code": exc.exit_code}))
    print(f"error: {message}", file=sys.stderr)
    return exc.exit_code
