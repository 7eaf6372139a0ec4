"""The engine: one per process, set up for safe writes.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL`` so an answered
webhook survives a crash, and write transactions start with ``BEGIN IMMEDIATE`` so that two
writers queue on the busy timeout instead of failing on a lock upgrade. PostgreSQL needs
neither; there a refused write on a read-only server counts as a lost connection, so that
the pool reconnects, which with several hosts and ``target_session_attrs=read-write`` finds
the one that takes writes (a failover).

A PostgreSQL connection is pinged before use only when it has rested in the pool a while
(:data:`PING_AFTER_IDLE_SECONDS`), not on every checkout as ``pool_pre_ping`` does: that
ping is a transaction of its own (BEGIN, ``;``, ROLLBACK), which cost 18 % of a call's time
under load (bench/RESULTS.md), when the connections are in use every few milliseconds and
a dead one shows on its next statement anyway. A restart or a failover leaves the pooled
connections idle for longer than that, and the ping finds them dead before a request does.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from router.service.ports import DatabaseUnavailable
from router.store.sqlite_driver import one_trip_url

#: A connection that rested in the pool longer than this is pinged before it is used: less
#: than any restart or failover takes, more than the gap between two calls under load.
PING_AFTER_IDLE_SECONDS = 1.0


def create_engine(
    database_url: str,
    *,
    timeout_seconds: float = 8.0,
    pool_size: int = 10,
    ping_after_idle_seconds: float = PING_AFTER_IDLE_SECONDS,
) -> AsyncEngine:
    """The engine of *database_url*. On PostgreSQL at most *pool_size* connections, never
    more (no overflow: the operator sizes replicas × pool against max_connections); a unit
    of work that finds them all busy waits 4/5 of *timeout_seconds* for one and then fails
    as :class:`sqlalchemy.exc.TimeoutError`, which the store logs as
    ``database.pool_exhausted``. A pooled connection is pinged before use once it has
    rested *ping_after_idle_seconds*."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        engine = create_async_engine(
            database_url,
            # an error's text leaves out the statement's parameters: it is logged (and
            # DatabaseUnavailable carries it), and a contact's are its message and addresses
            hide_parameters=True,
            pool_size=pool_size,
            max_overflow=0,
            # the most recently used connection first: under moderate load the same few
            # stay hot and skip the ping (_ping_after_rest); with FIFO each would rest
            # pool_size times the gap between calls, and be pinged
            pool_use_lifo=True,
            # a little under the unit of work's budget, so the clear error comes first
            pool_timeout=timeout_seconds * 0.8,
            connect_args={"timeout": timeout_seconds},
        )
        event.listen(engine.sync_engine, "handle_error", _read_only_is_disconnect)
        event.listen(engine.sync_engine, "checkin", _note_rest)
        ping = partial(_ping_after_rest, ping_after_idle_seconds)
        event.listen(engine.sync_engine, "checkout", ping)
        return engine
    if url.database and url.database != ":memory:":
        try:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # an unwritable place is an unusable database, said plainly
            raise DatabaseUnavailable(f"cannot create the folder of {url.database}: {exc}") from exc
    busy_ms = int(timeout_seconds * 1000)
    # (the parameters left out of an error's text, as above)
    engine = create_async_engine(
        one_trip_url(url), connect_args={"timeout": timeout_seconds}, hide_parameters=True
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control from the driver so BEGIN IMMEDIATE is ours to emit
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_RESTED_SINCE = "switchboard_rested_since"


def _note_rest(dbapi_connection: Any, record: Any) -> None:
    record.info[_RESTED_SINCE] = time.monotonic()


def _ping_after_rest(rest: float, dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Before a rested connection is used: ping it, and if it is gone, drop it and every
    other pooled connection (a server that closed one has closed them all) so the pool
    connects afresh, as ``pool_pre_ping`` would have."""
    rested_since = record.info.get(_RESTED_SINCE)
    if rested_since is None or time.monotonic() - rested_since < rest:
        return  # new, or in use a moment ago
    try:
        dbapi_connection.ping()
    except Exception as exc:  # whatever the driver raises, this connection is unusable
        raise sa.exc.InvalidatePoolError(f"a rested connection is gone: {exc}") from exc


#: read_only_sql_transaction: a write refused by a standby or default_transaction_read_only
_READ_ONLY_SQLSTATE = "25006"


def _read_only_is_disconnect(context: sa.engine.ExceptionContext) -> None:
    """A server that refuses writes is, for a writer, as good as gone: SQLAlchemy then
    invalidates this connection and every other one the pool holds (pool_pre_ping's
    ``SELECT 1`` still succeeds on them), and the next connect chooses a writable host."""
    if getattr(context.original_exception, "sqlstate", None) == _READ_ONLY_SQLSTATE:
        context.is_disconnect = True


def listen_parameters(database_url: str) -> dict[str, Any] | None:
    """The keyword arguments of ``asyncpg.connect`` for the LISTEN connection, read from
    *database_url* as the engine's own connections read it (several hosts, ports and
    target_session_attrs included: asyncpg's own URL parser keeps only the last ``host=``);
    None when it is not PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    _, parameters = url.get_dialect()().create_connect_args(url)
    return dict(parameters)
