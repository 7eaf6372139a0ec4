"""SQLAlchemy's aiosqlite dialect with one trip to the connection's thread per statement.

aiosqlite runs each SQLite connection in a thread of its own; every call into it is a trip:
the event loop queues a function, the thread wakes, runs it, and wakes the loop again. The
stock adapter makes three or four trips per statement (open a cursor, execute, fetch the
rows, close the cursor). A trip costs about 40 µs of CPU when the loop is busy and about
100–200 µs when the loop was idle in between, which is where a webhook at moderate load
spends most of its time: at 100 calls/s, 11 trips a call were half of the ~3 ms of CPU each
call cost (bench/RESULTS.md). Here a statement is one trip: the thread opens a cursor,
executes, fetches every row and closes it, and the adapter answers ``description``,
``rowcount`` and the rows from what came back.

What is given up: server-side cursors stay the stock adapter's (nothing on the hot path
streams), and every result is fetched whole, which the stock adapter also did for
client-side cursors.

The dialect is registered as ``sqlite+switchboard_aiosqlite``; :func:`one_trip_url` turns
the configured ``sqlite+aiosqlite://`` URL (the public setting) into it.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from typing import Any

from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.engine import URL
from sqlalchemy.util import EMPTY_DICT

DRIVER = "switchboard_aiosqlite"

#: (description, rows, rowcount, lastrowid) of one finished statement
_Outcome = tuple[Any, list[Any], int, int | None]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    """In the connection's thread: the whole life of one cursor."""
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_many(
    connection: sqlite3.Connection, operation: str, parameters: Sequence[Any]
) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return cursor.description, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement runs, and whose rows arrive, in one trip."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # no aiosqlite cursor is opened here (the stock adapter's first trip)
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]  # DBAPI allows None

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        async with self._adapt_connection._execute_mutex:
            connection = self._connection._conn
            outcome = await self._connection._execute(_run, connection, operation, parameters)
        self._settle(outcome)
        return self

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        async with self._adapt_connection._execute_mutex:
            connection = self._connection._conn
            outcome = await self._connection._execute(
                _run_many, connection, operation, seq_of_parameters
            )
        self._settle(outcome)
        return self

    def _settle(self, outcome: _Outcome) -> None:
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = deque(rows)

    async def _async_soft_close(self) -> None:
        """Nothing to close: the cursor was closed in the thread."""

    def close(self) -> None:
        self._rows.clear()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor


class _OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        stock = super().connect(*arg, **kw)
        return OneTripConnection(self, stock._connection)


class OneTripDialect(SQLiteDialect_aiosqlite):
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> AsyncAdapt_aiosqlite_dbapi:
        return _OneTripDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{DRIVER}", __name__, "OneTripDialect")


def one_trip_url(url: URL) -> URL:
    """*url* (``sqlite+aiosqlite://…``) served by this module's dialect."""
    return url.set(drivername=f"sqlite+{DRIVER}")
