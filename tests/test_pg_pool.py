"""The PostgreSQL pool pings a connection only after it has rested, on a real server.

A ping on every checkout (``pool_pre_ping``) cost 18 % of a call under load; the pool now
pings a connection that rested in it for a while (router/store/engine.py). These tests
cut the server's side of the pooled connection, as a restart or a failover does, and show
what the next unit of work sees."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from router.store import create_engine

_CUT_THE_OTHERS = sa.text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


@pytest.fixture
async def killer(postgres_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_database_url, pool_size=1)
    yield engine
    await engine.dispose()


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def cut_pooled_connections(killer: AsyncEngine) -> None:
    async with killer.connect() as connection:
        cut = (await connection.execute(_CUT_THE_OTHERS)).scalar_one()
    assert cut >= 1  # the pooled connection of the engine under test


async def test_a_rested_connection_the_server_closed_is_replaced_before_use(
    postgres_database_url: str, killer: AsyncEngine
) -> None:
    engine = create_engine(postgres_database_url, pool_size=1, ping_after_idle_seconds=0.0)
    try:
        first = await backend_pid(engine)
        await cut_pooled_connections(killer)
        # no error: the ping found the connection dead and the pool connected afresh
        assert await backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_a_connection_in_use_a_moment_ago_is_not_pinged_and_recovers_after_one_error(
    postgres_database_url: str, killer: AsyncEngine
) -> None:
    engine = create_engine(postgres_database_url, pool_size=1, ping_after_idle_seconds=3600.0)
    try:
        first = await backend_pid(engine)
        await cut_pooled_connections(killer)
        # not pinged (under load that ping was a transaction per call): the statement meets
        # the closed connection, and SQLAlchemy reads that as a disconnect
        with pytest.raises(sa.exc.DBAPIError) as raised:
            await backend_pid(engine)
        assert raised.value.connection_invalidated
        assert await backend_pid(engine) != first  # the pool was emptied: a fresh connection
    finally:
        await engine.dispose()
