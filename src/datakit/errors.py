"""Errors a user can cause or fix: one clear line that names the thing and the fix."""

import sys

# Every command's exit codes, one table (docs/cli.md shows it; tests/unit/test_exit_codes.py
# holds every error class to it). 2 is Click's usage error and no error class's.
EXIT_CODES = {
    0: "success: the command ran and everything it checks held",
    1: "failure: a check, baseline, drill, verification or migration state did not hold, or "
       "an error named in one line (bad config, unreachable node, wrong password, missing "
       "tool)",
    2: "usage error: an unknown command or option, or a bad option value or choice",
    3: "load: the load generator's driver does not run queries concurrently, so its "
       "figures would be false",
    4: "load: the run could not go as asked (a bad --baseline or --pool override, Locust "
       "ending without results)",
}


class DatakitError(Exception):
    """An expected failure: the CLI prints its message in one line and exits non-zero."""

    exit_code = 1
    # One line, whatever the message holds (a server's error text may span lines); a class
    # whose lines are separate problems (a stack config's, the engine's) says False.
    one_line = True


def report(exc: DatakitError, *, as_json: bool = False) -> int:
    """Print `exc` as every command ends on one: a line on stderr and, under --json, JSON
    on stdout too; return its exit code."""
    text = str(exc)
    message = " ".join(text.split()) if exc.one_line else text.strip()
    if as_json:
        import json  # here: the lean `migrate apply` path loads json only when it must

        print(json.dumps({"error": message, "exit_code": exc.exit_code}))
    print(f"error: {message}", file=sys.stderr)
    return exc.exit_code
