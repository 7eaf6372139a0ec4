"""The PostgreSQL pool pings a connection only after it has rested, on a real server.

A ping on every checkout (``pool_pre_ping``) cost 18 % of a call under load; the pool now
pings a connection that rested in it for a while (router/store/engine.py), and a unit of
work whose connection broke under it is run once more on a new one
(router/service/recording.py). These tests cut the server's side of the pooled
connection, as a restart or a failover does, and show what the next unit of work sees."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from router.service.ports import ContactUnitOfWork, DatabaseUnavailable
from router.service.recording import recorded
from router.store import Store, create_engine, migrate
from router.store.uow import UnitOfWork

from .test_store import an_email

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


@asynccontextmanager
async def pooled(url: str, ping_after_idle_seconds: float) -> AsyncIterator[AsyncEngine]:
    """An engine of one pooled connection, pinged after it rested that long."""
    engine = create_engine(url, pool_size=1, ping_after_idle_seconds=ping_after_idle_seconds)
    try:
        yield engine
    finally:
        await engine.dispose()


async def cut_pooled_connections(killer: AsyncEngine) -> None:
    async with killer.connect() as connection:
        cut = (await connection.execute(_CUT_THE_OTHERS)).scalar_one()
    assert cut >= 1  # the pooled connection of the engine under test


async def test_a_rested_connection_the_server_closed_is_replaced_before_use(
    postgres_database_url: str, killer: AsyncEngine
) -> None:
    async with pooled(postgres_database_url, 0.0) as engine:
        first = await backend_pid(engine)
        await cut_pooled_connections(killer)
        # no error: the ping found the connection dead and the pool connected afresh
        assert await backend_pid(engine) != first


async def test_a_connection_in_use_a_moment_ago_is_not_pinged_and_recovers_after_one_error(
    postgres_database_url: str, killer: AsyncEngine
) -> None:
    async with pooled(postgres_database_url, 3600.0) as engine:
        first = await backend_pid(engine)
        await cut_pooled_connections(killer)
        # not pinged (under load that ping was a transaction per call): the statement meets
        # the closed connection, and SQLAlchemy reads that as a disconnect
        with pytest.raises(sa.exc.DBAPIError) as raised:
            await backend_pid(engine)
        assert raised.value.connection_invalidated
        assert await backend_pid(engine) != first  # the pool was emptied: a fresh connection


async def test_a_contact_whose_connection_broke_under_it_is_recorded_on_a_new_one(
    postgres_database_url: str, killer: AsyncEngine
) -> None:
    async with pooled(postgres_database_url, 3600.0) as engine:
        store = Store(engine, timeout_seconds=5.0)
        await migrate.upgrade(engine)

        async def add(provider_id: str) -> int | None:
            async def work(uow: ContactUnitOfWork) -> int | None:
                return await uow.add_interaction(an_email(provider_id))

            return await recorded(store.unit_of_work(), work)

        assert await add("<before@example.cz>") is not None  # the pool's connection is hot
        await cut_pooled_connections(killer)
        with structlog.testing.capture_logs() as logs:
            assert await add("<after@example.cz>") is not None  # no DatabaseUnavailable
        assert [line["event"] for line in logs] == ["store.connection_lost"]
        async with engine.connect() as connection:
            ids = await connection.execute(sa.text("SELECT provider_id FROM interactions"))
            assert sorted(row[0] for row in ids) == ["<after@example.cz>", "<before@example.cz>"]

        # a connection lost on every run: one more run, then the outage as before
        with structlog.testing.capture_logs() as logs, pytest.raises(DatabaseUnavailable):
            await add_when_unreachable(store)
        assert [line["event"] for line in logs] == ["store.connection_lost"]


async def add_when_unreachable(store: Store) -> None:
    """A unit of work on a store whose every connection is lost on use."""

    async def work(uow: ContactUnitOfWork) -> None:
        connection = cast(UnitOfWork, uow).connection  # the store's, under the port
        await connection.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))

    await recorded(store.unit_of_work(), work)


async def test_a_database_errors_text_holds_no_statement_parameters(
    postgres_database_url: str,
) -> None:
    engine = create_engine(postgres_database_url, pool_size=1)
    try:
        secret = "jana.novakova@example.cz"
        with pytest.raises(sa.exc.DBAPIError) as raised:
            async with engine.connect() as connection:
                await connection.execute(
                    sa.text("SELECT * FROM no_such_table WHERE x = :x"), {"x": secret}
                )
        assert secret not in str(raised.value)
        assert "hidden due to hide_parameters" in str(raised.value)
    finally:
        await engine.dispose()
