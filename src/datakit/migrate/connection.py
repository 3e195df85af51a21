"""Connections for the migration runner: from --dsn or --stack, with errors a person can act on.

Every runner connection names itself (`application_name`) so a lock holder can be told
apart, and asks the server to notice a vanished client (`client_connection_check_interval`)
so a killed runner's queries stop instead of running on.
"""

from __future__ import annotations

import os

from datakit.errors import DatakitError
from datakit.migrate import libpq

TYPE_CHECKING = False  # typing itself costs the no-op apply a tenth of its start-up
if TYPE_CHECKING:  # for the hint only: importing pydantic's models costs 0.1 s at start-up
    from datakit.stack.schema import StackOutputs

APP_NAME = f"datakit-migrate {os.uname().nodename} pid {os.getpid()}"


DEFAULT_STACK = "local"  # every datakit command's default stack


def stack_for(dsn: str | None = None, stack: str | None = None) -> str | None:
    """The stack whose outputs name the database, or None when a DSN does. The first of:
    `dsn`, `stack` (as given on the command line), $DATAKIT_DSN, $DATAKIT_STACK, `local`."""
    if dsn and stack:
        raise DatakitError("give either --dsn or --stack, not both")
    if dsn:
        return None
    if stack:
        return stack
    if os.environ.get("DATAKIT_DSN"):
        return None
    return os.environ.get("DATAKIT_STACK") or DEFAULT_STACK


def dsn_for(dsn: str | None = None, stack: str | None = None) -> str:
    """The DSN to use: `dsn` as given, or the chosen stack's write DSN (see stack_for)."""
    chosen = stack_for(dsn, stack)
    if chosen is None:
        return dsn or os.environ["DATAKIT_DSN"]
    return stack_outputs(chosen).endpoints.postgres.write_dsn


def stack_outputs(stack: str) -> StackOutputs:
    """The stack's outputs, with the app password in the DSNs; a stack without outputs, or
    outputs that do not fit the schema, are one DatakitError line (stack/outputs.py)."""
    # Here, not at the top: reading outputs loads the topology and the stack facade, 0.14 to
    # 0.5 s measured with -X importtime, which a run given --dsn never needs.
    from datakit.stack import outputs

    return outputs.read(stack)


def describe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        parts = libpq.conninfo(dsn)
    except libpq.Error:  # an unparsable DSN is reported by connect()
        return "the given DSN"
    user = parts.get("user") or os.environ.get("PGUSER") or "?"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    db = parts.get("dbname") or user
    return f"{user}@{host}:{port}/{db}"


def connect(dsn: str, *, timeout: int = 10) -> libpq.Connection:
    """Open a connection (in autocommit), turning failures into one clear DatakitError."""
    where = describe(dsn)
    try:
        return libpq.connect(dsn, connect_timeout=timeout, application_name=APP_NAME,
                             options="-c client_connection_check_interval=500")
    except libpq.ProgrammingError as exc:
        raise DatakitError(f"invalid DSN ({exc}); check --dsn or the stack outputs") from None
    except libpq.OperationalError as exc:
        text = " ".join(str(exc).split())
        if "password authentication failed" in text or "no password supplied" in text:
            fix = "check the password in --dsn or the stack's secrets"
        elif "does not exist" in text:
            fix = "check the database and user names"
        elif "refused" in text or "timeout" in text or "could not translate" in text:
            fix = "is the server running and reachable? check host and port"
        else:
            fix = "check the DSN and that the server is up"
        raise DatakitError(f"cannot connect to PostgreSQL at {where}: {text[:300]}; {fix}") \
            from None
