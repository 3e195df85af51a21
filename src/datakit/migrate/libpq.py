"""PostgreSQL through libpq, called with ctypes: the part of a driver the runner uses.

Importing psycopg costs about 0.15 s (its package loads every adapter, asyncio, logging
and importlib.metadata), more than the rest of a 200-migration apply's client work; its
`psycopg.pq` layer cannot be imported without it. The runner needs little: connect, run a
statement with parameters or a script with all its results, quote a literal, and an
error's SQLSTATE, message and position. So this module talks to the libpq that psycopg
ships (the same library psycopg would use), or the system's.

The interface follows psycopg's where the runner uses it (`conn.execute(sql, params)`
with `%s` / `%(name)s` placeholders, `fetchone`, `nextset`, `conn.transaction()`,
`Error.diag`), and so do the values: parameters go as text with psycopg's types (str as
unknown, int as int8), results come back as int, bool, float, Decimal, datetime and JSON
values by column type, text otherwise. Waits happen in Python, so Ctrl-C cancels the
running statement on the server, as psycopg does. Notices are dropped, as psycopg drops
them without a handler.
"""

from __future__ import annotations

import ctypes
import os
import select
import sys

from datakit.migrate import sqlvalues

OK, IDLE = 0, 0  # CONNECTION_OK, PQTRANS_IDLE
_TUPLES_OK, _COPY_OUT, _COPY_IN, _BAD_RESPONSE, _FATAL_ERROR = 2, 3, 4, 5, 7
_SQLSTATE, _MESSAGE_PRIMARY, _STATEMENT_POSITION = ord("C"), ord("M"), ord("P")


class Error(Exception):
    """A failure reported by libpq or the server (psycopg's `Error`, in the part we use)."""

    def __init__(self, message: str, sqlstate: str | None = None,
                 diag: Diagnostic | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.diag = diag or Diagnostic(None, None)


class OperationalError(Error):
    """The connection could not be made, or was lost."""


class ProgrammingError(Error):
    """A connection string libpq cannot parse."""


class Diagnostic:
    def __init__(self, message_primary: str | None, statement_position: str | None) -> None:
        self.message_primary, self.statement_position = message_primary, statement_position


class _Option(ctypes.Structure):  # PQconninfoOption
    _fields_ = [("keyword", ctypes.c_char_p), ("envvar", ctypes.c_char_p),
                ("compiled", ctypes.c_char_p), ("val", ctypes.c_char_p),
                ("label", ctypes.c_char_p), ("dispchar", ctypes.c_char_p),
                ("dispsize", ctypes.c_int)]


_NOTICES = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)(lambda arg, message: None)
_lib = None


def load():
    """libpq (psycopg's copy first, then the system's); None when there is none."""
    global _lib
    if _lib is None:
        cdll = _open()
        _lib = _Lib(cdll) if cdll is not None else None
    return _lib


def _open():
    for entry in sys.path:
        libs = os.path.join(entry or ".", "psycopg_binary.libs")
        try:
            names = sorted(n for n in os.listdir(libs) if n.startswith("libpq"))
        except OSError:
            continue
        for name in names:
            try:
                return ctypes.CDLL(os.path.join(libs, name))
            except OSError:
                continue
    try:
        return ctypes.CDLL("libpq.so.5")
    except OSError:
        return None


_vp, _cp, _i, _pp = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)
_SIGNATURES = {
    "PQconnectdbParams": ([_pp, _pp, _i], _vp), "PQstatus": ([_vp], _i),
    "PQerrorMessage": ([_vp], _cp), "PQfinish": ([_vp], None),
    "PQsetNoticeProcessor": ([_vp, _NOTICES.__class__, _vp], _vp),
    "PQparameterStatus": ([_vp, _cp], _cp), "PQtransactionStatus": ([_vp], _i),
    "PQsocket": ([_vp], _i), "PQsendQuery": ([_vp, _cp], _i),
    "PQsendQueryParams": ([_vp, _cp, _i, ctypes.POINTER(ctypes.c_uint), _pp,
                           ctypes.POINTER(_i), ctypes.POINTER(_i), _i], _i),
    "PQconsumeInput": ([_vp], _i), "PQisBusy": ([_vp], _i), "PQgetResult": ([_vp], _vp),
    "PQresultStatus": ([_vp], _i), "PQresultErrorField": ([_vp, _i], _cp),
    "PQresultErrorMessage": ([_vp], _cp), "PQntuples": ([_vp], _i), "PQnfields": ([_vp], _i),
    "PQftype": ([_vp, _i], ctypes.c_uint), "PQgetvalue": ([_vp, _i, _i], _cp),
    "PQgetisnull": ([_vp, _i, _i], _i), "PQcmdStatus": ([_vp], _cp), "PQclear": ([_vp], None),
    "PQescapeLiteral": ([_vp, _cp, ctypes.c_size_t], _vp), "PQfreemem": ([_vp], None),
    "PQconninfoParse": ([_cp, ctypes.POINTER(_vp)], ctypes.POINTER(_Option)),
    "PQconninfoFree": ([ctypes.POINTER(_Option)], None), "PQgetCancel": ([_vp], _vp),
    "PQcancel": ([_vp, _cp, _i], _i), "PQfreeCancel": ([_vp], None),
    "PQputCopyEnd": ([_vp, _cp], _i), "PQgetCopyData": ([_vp, ctypes.POINTER(_vp), _i], _i),
}


class _Lib:
    """libpq's functions, each typed on first use (all of them up front costs the no-op)."""

    def __init__(self, cdll) -> None:
        self._cdll = cdll

    def __getattr__(self, name: str):
        fn = getattr(self._cdll, name)
        fn.argtypes, fn.restype = _SIGNATURES[name]
        setattr(self, name, fn)
        return fn


def _text(raw: bytes | None) -> str:
    return " ".join((raw or b"").decode("utf-8", "replace").split())


def conninfo(dsn: str) -> dict[str, str]:
    """The options a connection string sets (psycopg's `conninfo_to_dict`)."""
    lib = load()
    if lib is None:
        raise OperationalError("no libpq found: install psycopg[binary] or libpq5")
    errmsg = ctypes.c_void_p()
    opts = lib.PQconninfoParse(dsn.encode(), ctypes.byref(errmsg))
    if not opts:
        message = ctypes.string_at(errmsg.value) if errmsg.value else b"invalid DSN"
        if errmsg.value:
            lib.PQfreemem(errmsg)
        raise ProgrammingError(_text(message))
    try:
        found, i = {}, 0
        while opts[i].keyword:
            if opts[i].val is not None:
                found[opts[i].keyword.decode()] = opts[i].val.decode()
            i += 1
        return found
    finally:
        lib.PQconninfoFree(opts)


def connect(dsn: str, **params: str) -> Connection:
    """A connection to `dsn`, `params` overriding what it sets (as psycopg's keywords do)."""
    conninfo(dsn)  # a string libpq cannot parse is a ProgrammingError, as in psycopg
    lib = load()
    keys = [b"dbname", *(k.encode() for k in params), None]
    values = [dsn.encode(), *(str(v).encode() for v in params.values()), None]
    pg = lib.PQconnectdbParams((ctypes.c_char_p * len(keys))(*keys),
                               (ctypes.c_char_p * len(values))(*values), 1)
    if not pg:
        raise OperationalError("out of memory connecting to PostgreSQL")
    if lib.PQstatus(pg) != OK:
        message = lib.PQerrorMessage(pg)
        lib.PQfinish(pg)
        raise OperationalError(" ".join(message.decode("utf-8", "replace").split()))
    return Connection(lib, pg)


class Connection:
    """One libpq connection in autocommit: each statement commits unless a BEGIN is open."""

    def __init__(self, lib, pg) -> None:
        self._lib, self._pg = lib, pg
        lib.PQsetNoticeProcessor(pg, _NOTICES, None)
        name = (lib.PQparameterStatus(pg, b"client_encoding") or b"UTF8").decode()
        self.encoding = {"UTF8": "utf-8", "SQL_ASCII": "ascii"}.get(
            name, name.replace("WIN", "cp") if name.startswith("WIN") else name)
        try:
            "".encode(self.encoding)
        except LookupError:
            self.close()
            raise OperationalError(f"client_encoding {name} is not one Python knows; add "
                                   "client_encoding=UTF8 to the DSN") from None

    @property
    def closed(self) -> bool:
        return self._pg is None or self._lib.PQstatus(self._pg) != OK

    @property
    def transaction_status(self) -> int:
        return self._lib.PQtransactionStatus(self._pg)

    def close(self) -> None:
        if self._pg is not None:
            self._lib.PQfinish(self._pg)
            self._pg = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def execute(self, query: str, params=None) -> Cursor:
        """Run `query`: a script (all its statements) without `params`, one statement with."""
        if self.closed:
            raise OperationalError("the connection is closed")
        lib, pg = self._lib, self._pg
        if params is None:
            sent = lib.PQsendQuery(pg, query.encode(self.encoding))
        else:
            sql, args = sqlvalues.convert(query, params)
            values = [None if v is None else v.encode(self.encoding) for v, _ in args]
            n = len(args)
            sent = lib.PQsendQueryParams(
                pg, sql.encode(self.encoding), n, (ctypes.c_uint * n)(*(t for _, t in args)),
                (ctypes.c_char_p * n)(*values), None, None, 0)
        if not sent:
            raise OperationalError(_text(lib.PQerrorMessage(pg)))
        return Cursor(self._results())

    def _results(self) -> list[tuple[str, list[tuple]]]:
        """Every result of the query sent; the first error is raised once all are in."""
        lib, pg = self._lib, self._pg
        results, error = [], None
        while True:
            try:
                self._wait()
            except KeyboardInterrupt:
                self._cancel()
                raise
            res = lib.PQgetResult(pg)
            if not res:
                break
            try:
                status = lib.PQresultStatus(res)
                if status in (_COPY_IN, _COPY_OUT):
                    self._end_copy(status)
                    error = error or Error("COPY to or from the client cannot run in a "
                                           "migration; use COPY with a server file instead")
                elif status in (_BAD_RESPONSE, _FATAL_ERROR):
                    error = error or self._error(res)
                elif error is None:
                    try:
                        results.append(self._result(res, status))
                    except ValueError as exc:  # a value of a type we cannot read
                        error = Error(str(exc))
            finally:
                lib.PQclear(res)
        if error is not None:
            raise error
        return results

    def _wait(self) -> None:
        """Until the next result is in; in Python, so a signal can interrupt it."""
        lib, pg = self._lib, self._pg
        while lib.PQconsumeInput(pg) and lib.PQisBusy(pg):
            select.select([lib.PQsocket(pg)], [], [])

    def _cancel(self) -> None:
        """Stop the running statement on the server and read what is left of the query, so
        the connection can still roll back (as psycopg does on Ctrl-C)."""
        lib, pg = self._lib, self._pg
        cancel = lib.PQgetCancel(pg)
        if cancel:
            lib.PQcancel(cancel, ctypes.create_string_buffer(256), 256)
            lib.PQfreeCancel(cancel)
        while res := lib.PQgetResult(pg):
            status = lib.PQresultStatus(res)
            lib.PQclear(res)
            if status in (_COPY_IN, _COPY_OUT):
                self._end_copy(status)

    def _end_copy(self, status: int) -> None:
        lib, pg = self._lib, self._pg
        if status == _COPY_IN:
            lib.PQputCopyEnd(pg, b"COPY from the client is not supported by datakit migrate")
            return
        buf = ctypes.c_void_p()
        while lib.PQgetCopyData(pg, ctypes.byref(buf), 0) > 0:
            lib.PQfreemem(buf)

    def _error(self, res) -> Error:
        lib = self._lib
        field = lib.PQresultErrorField
        sqlstate = field(res, _SQLSTATE)
        primary = field(res, _MESSAGE_PRIMARY)
        position = field(res, _STATEMENT_POSITION)
        text = (lib.PQresultErrorMessage(res) or lib.PQerrorMessage(self._pg) or b"").decode(
            self.encoding, "replace")
        for prefix in ("ERROR:  ", "FATAL:  ", "PANIC:  "):
            text = text.removeprefix(prefix)
        diag = Diagnostic(primary and primary.decode(self.encoding, "replace"),
                          position and position.decode())
        kind = OperationalError if self.closed else Error
        return kind(text.strip() or "error", sqlstate and sqlstate.decode(), diag)

    def _result(self, res, status: int) -> tuple[str, list[tuple]]:
        lib = self._lib
        command = (lib.PQcmdStatus(res) or b"").decode()
        if status != _TUPLES_OK:
            return command, []
        nrows, nfields = lib.PQntuples(res), lib.PQnfields(res)
        datestyle = self.parameter("DateStyle")
        loads = [sqlvalues.loader(lib.PQftype(res, c), datestyle) for c in range(nfields)]
        rows = []
        for r in range(nrows):
            row = []
            for c in range(nfields):
                raw = lib.PQgetvalue(res, r, c)
                if not raw and lib.PQgetisnull(res, r, c):
                    row.append(None)
                else:
                    row.append(loads[c](raw.decode(self.encoding)))
            rows.append(tuple(row))
        return command, rows

    def parameter(self, name: str) -> str | None:
        value = self._lib.PQparameterStatus(self._pg, name.encode())
        return value.decode() if value is not None else None

    def quote(self, text: str) -> str:
        """`text` as an SQL string literal (libpq's own quoting)."""
        data = text.encode(self.encoding)
        ptr = self._lib.PQescapeLiteral(self._pg, data, len(data))
        if not ptr:
            raise Error(_text(self._lib.PQerrorMessage(self._pg)))
        try:
            return ctypes.string_at(ptr).decode(self.encoding)
        finally:
            self._lib.PQfreemem(ptr)

    def mogrify(self, query: str, params) -> str:
        """`query` with `params` as literals (psycopg's `ClientCursor.mogrify`)."""
        return sqlvalues.inline(query, params, self.quote)

    def transaction(self) -> Transaction:
        """`with conn.transaction():` BEGIN, then COMMIT, or ROLLBACK on an exception."""
        return Transaction(self)


class Transaction:
    """A transaction block on a connection in autocommit (psycopg's, without savepoints)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        self.conn.execute("BEGIN")
        return self.conn

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.conn.execute("COMMIT")
        elif not self.conn.closed and self.conn.transaction_status != IDLE:
            self.conn.execute("ROLLBACK")


class Cursor:
    """The results of one `execute`: the first one current, `nextset` to move on."""

    def __init__(self, results: list[tuple[str, list[tuple]]]) -> None:
        self._results = results or [("", [])]
        self._at = 0
        self._row = 0

    @property
    def statusmessage(self) -> str:
        return self._results[self._at][0]

    @property
    def rowcount(self) -> int:
        return len(self._results[self._at][1])

    def fetchone(self) -> tuple | None:
        rows = self._results[self._at][1]
        if self._row >= len(rows):
            return None
        self._row += 1
        return rows[self._row - 1]

    def fetchall(self) -> list[tuple]:
        rows = self._results[self._at][1][self._row:]
        self._row += len(rows)
        return rows

    def __iter__(self):
        return iter(self.fetchall())

    def nextset(self) -> bool | None:
        if self._at + 1 >= len(self._results):
            return None
        self._at += 1
        self._row = 0
        return True
