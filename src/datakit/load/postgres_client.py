"""PostgreSQL for Locust users: one psycopg_pool per process and DSN, created on first use.

`--processes N` forks after the locustfile is imported, so nothing connects at import: the
first user of a process builds the pool behind a lock (and a forked child never reuses its
parent's). Each query reports two request types: `pool_wait/<dsn kind>` (time to acquire a
connection) and the query's own name (time on the connection), so an oversubscribed pool
shows as acquire wait, not as query time. Queries go through Locust's `request` event (and
from there into the microsecond histograms); a successful pool wait goes into the
histograms directly, a failed one through Locust as a failure.

Two ways to run a query on a pooled connection:

- `query(kind, name, statement, params)`: the fast path for one statement per request.
  The statement is prepared once per connection and executed through psycopg's libpq
  layer (`psycopg.pq`: `send_query_prepared`, text parameters), waiting on the socket with
  gevent's hub directly. A Locust process is CPU-bound, and psycopg's cursor machinery
  (query conversion, adapters, a `select.poll` object per wait) costs several times the
  database round trip of a small query; this path does what pgbench does per request.
- `run(kind, name, work)`: `work(conn)` gets the psycopg connection, for transactions and
  anything the fast path does not cover (cursors, row factories, COPY, ...).

Both measure the pool wait from before `getconn` to after it, and the query from just
before the statement is sent to just after its last result is read. `query` keeps a
user's connection between back-to-back queries while nobody waits on the pool
("connection affinity" below); `run` always gives it back.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any, TypeVar

import locust  # noqa: F401 - Locust monkey-patches first: psycopg then cooperates
from gevent import get_hub, getcurrent
from gevent.socket import wait_write
from psycopg import Error, OperationalError, errors, pq
from psycopg.adapt import Transformer
from psycopg_pool import ConnectionPool, PoolTimeout

from datakit.load import pacing
from datakit.load.events import reporter
from datakit.load.recorder import RECORDER, key_of
from datakit.load.settings import current

T = TypeVar("T")
REQUEST_TYPE = "postgres"

_lock = threading.Lock()  # gevent's lock: Locust monkey-patches before any locustfile
_pools: dict[str, Any] = {}
fire = reporter(REQUEST_TYPE)
_record = RECORDER.record


def _forget_pools() -> None:  # a forked child: the parent's pools are not ours
    _pools.clear()
    _conn_state.clear()
    _leases.clear()


def pool(kind: str):
    """The process's pool for `write` (read-write primary) or `read` (prefer a standby)."""
    p = _pools.get(kind)
    if p is not None:
        return p
    with _lock:
        p = _pools.get(kind)
        if p is None:
            s = current()
            p = ConnectionPool(
                getattr(s.postgres, f"{kind}_dsn"), min_size=int(s.pool["min_size"]),
                max_size=int(s.pool["max_size"]), timeout=float(s.pool["acquire_timeout_s"]),
                kwargs={"autocommit": True, "prepare_threshold": 0}, open=True,
                name=f"datakit-{kind}", reconnect_timeout=30.0)
            _pools[kind] = p
    return p


_WAIT_KEYS: dict[str, tuple[str, str]] = {}


def _acquire(kind: str):
    """(pool, a pooled connection or None when acquiring failed). Reports the pool wait.

    A successful wait goes straight into the microsecond histograms (a pool wait is a
    derived measurement, not an operation: Locust's own figures count operations); a
    failed one is a Locust request failure like any other.
    """
    p = _pools.get(kind) or pool(kind)
    keys = _WAIT_KEYS.get(kind)
    if keys is None:
        name = f"pool_wait/{kind}"
        keys = _WAIT_KEYS[kind] = (name, key_of(REQUEST_TYPE, name))
    started = perf_counter()
    try:
        conn = p.getconn()
    except (PoolTimeout, Error) as exc:
        fire(keys[0], perf_counter() - started, exc)
        return p, None
    _record(keys[1], int((perf_counter() - started) * 1_000_000))
    return p, conn


def run(kind: str, name: str, work: Callable[[Any], T]) -> T | None:
    """Acquire from the `kind` pool, run `work(conn)`, report wait and query separately.

    Returns None when acquiring or the query failed (both are reported as failures).
    """
    p, conn = _acquire(kind)
    if conn is None:
        return None
    try:
        started = perf_counter()
        result = work(conn)
        elapsed = perf_counter() - started
    except Error as exc:
        fire(name, perf_counter() - started, exc)
        return None
    finally:
        p.putconn(conn)
    fire(name, elapsed)
    return result


# -- the fast path ---------------------------------------------------------------------

class Statement:
    """One SQL statement for `query`, with `$1, $2, ...` placeholders (PostgreSQL's own).

    It is prepared once on each pooled connection under a name of its own (psycopg's
    statement cache uses other names), so the server parses and plans it once.
    """

    _count = 0

    def __init__(self, sql: str) -> None:
        Statement._count += 1
        self.sql = sql
        self.name = f"datakit_{Statement._count}".encode()
        self.encoded = sql.encode()


class _ConnState:
    """What the fast path keeps per pooled connection: prepared names, socket watcher."""

    __slots__ = ("prepared", "watcher", "fd", "tx")

    def __init__(self, conn) -> None:
        self.prepared: set[bytes] = set()
        self.fd = conn.pgconn.socket
        self.watcher = get_hub().loop.io(self.fd, 1)  # readable
        self.tx = None


_FATAL = pq.ExecStatus.FATAL_ERROR
_conn_state: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_hub_wait: Callable[[Any], Any] | None = None


def _wait_readable(state: _ConnState) -> None:
    global _hub_wait
    if _hub_wait is None:
        _hub_wait = get_hub().wait
    _hub_wait(state.watcher)


def _flush(pgconn, fd: int) -> None:
    if pgconn.flush():  # the rare large statement: wait for the socket to take the rest
        while pgconn.flush():
            wait_write(fd)


def _results(pgconn, state: _ConnState) -> Any:
    """Read every result of the statement just sent; the last one (raises on an error)."""
    last = None
    while True:
        while pgconn.is_busy():
            _wait_readable(state)
            pgconn.consume_input()
        res = pgconn.get_result()
        if res is None:
            break
        last = res
    if last is None:
        raise _error(pgconn, None)
    if last.status == _FATAL:
        raise _error(pgconn, last)
    return last


def _error(pgconn, res) -> Exception:
    if res is None:
        msg = pgconn.error_message.decode("utf-8", "replace").strip()
        return OperationalError(msg or "no result from the server")
    msg = (res.error_message or b"").decode("utf-8", "replace").strip()
    sqlstate = res.error_field(pq.DiagnosticField.SQLSTATE)
    try:
        cls = errors.lookup(sqlstate.decode()) if sqlstate else errors.DatabaseError
    except KeyError:
        cls = errors.DatabaseError
    return cls(msg)


def _encode(params: Sequence[Any]) -> list[bytes | None]:
    out: list[bytes | None] = []
    for v in params:
        if v is None or isinstance(v, bytes):
            out.append(v)
        elif isinstance(v, bool):
            out.append(b"t" if v else b"f")
        else:
            out.append(str(v).encode())
    return out


def _state(conn) -> _ConnState:
    state = _conn_state.get(conn)
    if state is None:
        state = _conn_state[conn] = _ConnState(conn)
    return state


def send(conn, statement: Statement, params: Sequence[Any] = ()):
    """Run `statement` on `conn` (autocommit, not in use elsewhere) through `psycopg.pq`.

    Prepares it first on a connection that has not seen it. Returns the `pq.PGresult`;
    raises psycopg's errors (a server error by its SQLSTATE, a lost connection as
    OperationalError), like a cursor would.
    """
    state = _state(conn)
    pgconn = conn.pgconn
    if statement.name not in state.prepared:
        pgconn.send_prepare(statement.name, statement.encoded)
        _flush(pgconn, state.fd)
        _results(pgconn, state)
        state.prepared.add(statement.name)
    pgconn.send_query_prepared(statement.name, _encode(params) if params else None)
    _flush(pgconn, state.fd)
    return _results(pgconn, state)


def first_row(conn, res) -> tuple | None:
    """The first row of a result as Python values (psycopg's loaders), None if empty."""
    if res.ntuples == 0:
        return None
    state = _state(conn)
    if state.tx is None:
        state.tx = Transformer.from_context(conn)
    state.tx.set_pgresult(res)
    return state.tx.load_row(0, tuple)


# -- connection affinity ----------------------------------------------------------------
#
# A user that goes straight on to its next query keeps the connection it just used, as a
# pgbench client (or Locust's contrib user) keeps its one connection, and as pools with
# thread affinity do (HikariCP): psycopg_pool hands out its connections in turn, and at low
# concurrency every query would wake a different, idle server backend. The pool still
# rules: a user gives its connection back as soon as anyone waits on that pool, before it
# thinks (`pacing.think`), before it acquires from another pool (never holding while
# waiting) and when it stops. A query on a kept connection reports a pool wait of zero.

_leases: dict[Any, dict[str, Any]] = {}  # a user's greenlet -> {kind: connection}


def release() -> None:
    """Give the calling user's kept connections back to their pools."""
    held = _leases.pop(getcurrent(), None)
    if held:
        for kind, conn in held.items():
            _pools[kind].putconn(conn)


def query(kind: str, name: str, statement: Statement, params: Sequence[Any] = (),
          fetch: bool = False) -> Any:
    """`send` on a connection of the `kind` pool, then the first row (`fetch`) or the row
    count; pool wait and query reported apart.

    The query's time is the round trip: from sending the statement to its last result
    read (rows are converted after). Returns None when acquiring or the query failed
    (both are reported as failures).
    """
    me = getcurrent()
    held = _leases.get(me)
    conn = held.pop(kind, None) if held else None
    if conn is not None:
        p = _pools[kind]
        _record(_WAIT_KEYS[kind][1], 0)
    else:
        if held:
            release()
        p, conn = _acquire(kind)
        if conn is None:
            return None
    try:
        started = perf_counter()
        res = send(conn, statement, params)
        elapsed = perf_counter() - started
        result = first_row(conn, res) if fetch else (res.ntuples or res.command_tuples or 0)
    except Error as exc:
        fire(name, perf_counter() - started, exc)
        p.putconn(conn)
        return None
    except BaseException:  # a user stopped mid-query (GreenletExit): the pool decides
        p.putconn(conn)
        raise
    if p.get_stats()["requests_waiting"] or conn.closed:
        p.putconn(conn)
    else:
        _leases.setdefault(me, {})[kind] = conn
    fire(name, elapsed)
    return result


def close_all() -> None:
    for p in list(_pools.values()):
        p.close(timeout=1.0)
    _forget_pools()


os.register_at_fork(after_in_child=_forget_pools)
pacing.before_think(release)
