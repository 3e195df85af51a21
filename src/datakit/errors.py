"""Errors a user can cause or fix: one clear line that names the thing and the fix."""


class DatakitError(Exception):
    """An expected failure: the CLI prints its message in one line and exits non-zero."""

    exit_code = 1
