"""The SQLite dialect of ``router/store/sqlite_driver.py``: every statement is one trip to
aiosqlite's thread, and the answers are what the stock adapter gives (rows, counts, errors),
on a real SQLite file through the engine the service uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from router.store.engine import create_engine
from router.store.sqlite_driver import DRIVER

ITEMS = sa.Table(
    "items",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(ITEMS.metadata.create_all)
    yield engine
    await engine.dispose()


class TripCounter:
    """Counts the functions aiosqlite runs in its connection threads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.trips = 0
        stock: Any = aiosqlite.Connection._execute

        async def counted(connection: aiosqlite.Connection, fn: object, *args: object) -> object:
            self.trips += 1
            return await stock(connection, fn, *args)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)


async def test_the_configured_sqlite_url_is_served_by_the_one_trip_dialect(
    engine: AsyncEngine,
) -> None:
    assert engine.dialect.driver == "aiosqlite"  # what SQLAlchemy's own checks look at
    assert engine.url.drivername == f"sqlite+{DRIVER}"


async def test_a_statement_is_one_trip_whatever_it_returns(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine.connect() as connection:
        await connection.execute(sa.text("SELECT 1"))  # the pool's first checkout done
        await connection.rollback()
        counter = TripCounter(monkeypatch)
        await connection.execute(sa.insert(ITEMS).values(name="a"))
        inserted = counter.trips
        rows = (await connection.execute(sa.select(ITEMS.c.name))).all()
        selected = counter.trips - inserted
        await connection.commit()
    # the stock adapter: 3 trips for the insert (open, execute, close), 4 for the select
    # (and fetch), and the same for the BEGIN the engine emits
    assert rows == [("a",)]
    assert inserted == 2  # BEGIN, then the INSERT
    assert selected == 1


async def test_rows_counts_and_ids_come_back_as_the_stock_adapter_gives_them(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as connection:
        first = await connection.execute(sa.insert(ITEMS).values(name="a"))
        await connection.execute(sa.insert(ITEMS), [{"name": "b"}, {"name": "c"}])
        updated = await connection.execute(
            sa.update(ITEMS).where(ITEMS.c.name != "a").values(name=ITEMS.c.name + "!")
        )
        nothing = await connection.execute(sa.select(ITEMS.c.id).where(ITEMS.c.name == "z"))
        returned = await connection.execute(
            sa.delete(ITEMS).where(ITEMS.c.name == "b!").returning(ITEMS.c.name)
        )
        assert first.inserted_primary_key == (1,)
        assert updated.rowcount == 2
        assert nothing.all() == []
        assert returned.all() == [("b!",)]
    async with engine.connect() as connection:
        rows = (await connection.execute(sa.select(ITEMS.c.name).order_by(ITEMS.c.id))).all()
        assert [name for (name,) in rows] == ["a", "c!"]
        one = await connection.execute(sa.select(ITEMS.c.name).order_by(ITEMS.c.id))
        assert one.first() == ("a",)


async def test_a_failed_statement_raises_the_usual_error_and_rolls_back(
    engine: AsyncEngine,
) -> None:
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(sa.insert(ITEMS).values(name="x"))
            await connection.execute(sa.insert(ITEMS).values(name="x"))
    async with engine.connect() as connection:
        count = (await connection.execute(sa.select(sa.func.count()).select_from(ITEMS))).scalar()
    assert count == 0
