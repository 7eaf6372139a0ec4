"""The migrations build the schema the table classes describe (router/store/tables.py), and
the questions asked of a large interactions table are answered from an index (bench
``scaling``: the guard's query scanned a million rows twice a second before 0004)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.sql.sqltypes import AutoString

from router.store import Store, create_engine, metadata, migrate

from .conftest import NOW

SCRIPTS = Path(migrate.__file__).resolve().parent / "migrations"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}")
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


def _differences(connection: sa.Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata()))


def _text_as_string(difference: Any) -> bool:
    # a str column of the model (sqlmodel's AutoString) that a migration made TEXT: the
    # same thing to SQLite and PostgreSQL, not drift
    if not isinstance(difference, list) or difference[0][0] != "modify_type":
        return False
    _, _, _, _, _, existing, wanted = difference[0]
    return isinstance(existing, sa.Text) and isinstance(wanted, (sa.String, AutoString))


async def test_the_migrations_build_the_tables_indexes_and_columns_of_the_model(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert [d for d in differences if not _text_as_string(d)] == []


async def query_plans(
    engine: AsyncEngine, table: str, reads: Callable[[Store], Awaitable[object]]
) -> list[str]:
    """SQLite's plan of every statement *reads* sends that reads *table*, in order."""
    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, sql: str, parameters: Any, *args: Any) -> None:
        if f"FROM {table}" in sql:
            statements.append((sql, parameters))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        await reads(Store(engine))
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", seen)
    async with engine.connect() as connection:
        return [
            " / ".join(
                str(row[-1])
                for row in (
                    await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, parameters)
                ).all()
            )
            for sql, parameters in statements
        ]


async def test_the_guard_and_status_read_interactions_through_their_indexes(
    engine: AsyncEngine,
) -> None:
    async def reads(store: Store) -> None:
        await store.external_contacts(NOW - timedelta(minutes=15), ["partner"])
        await store.conversations_held(NOW - timedelta(days=30), ["partner"], limit=100)

    guard, held = await query_plans(engine, "interactions", reads)
    assert "ix_interactions_first_destination_received_at" in guard, guard
    assert "SCAN" not in guard, guard
    assert "COVERING INDEX ix_interactions_conversation_id_received_at" in held, held


async def test_the_outbox_claim_reads_the_due_rows_in_index_order(engine: AsyncEngine) -> None:
    """However many forwards wait, a claim reads the pending rows due first from the index
    and stops at its batch: no scan, no sort of the whole backlog."""

    async def claim(store: Store) -> object:
        return await store.claim_outbox(
            now=NOW, lease=timedelta(seconds=120), limit=20, kinds=["email"]
        )

    [plan] = await query_plans(engine, "outbox", claim)
    assert "ix_outbox_status_next_attempt_at" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
    assert "SCAN outbox" not in plan, plan


async def test_0006_adds_the_handle_time_to_the_calls_already_kept_and_takes_it_away(
    tmp_path: Path,
) -> None:
    """Calls recorded before 0006 keep everything and have no handle time (NULL), which
    staffing reads as "use the whole call's duration"; a downgrade drops only the column."""
    from alembic import command
    from alembic.config import Config

    def to(revision: str, *, down: bool = False) -> Callable[[sa.Connection], None]:
        def run(connection: sa.Connection) -> None:
            config = Config()
            config.set_main_option("script_location", str(SCRIPTS))
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)

        return run

    def columns(connection: sa.Connection) -> list[str]:
        return [column["name"] for column in sa.inspect(connection).get_columns("interactions")]

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    row = {
        "channel": "phone",
        "provider_id": "CA-old",
        "customer_hash": "h",
        "category": "product",
        "category_source": "digit",
        "side": "baseline",
        "destination": "hotline",
        "first_destination": "hotline",
        "reason": "baseline",
        "version": 1,
        "bucket": 42.0,
        "received_at": "2026-11-02 09:00:00",
        "decided_at": "2026-11-02 09:00:00",
        "updated_at": "2026-11-02 09:05:00",
        "outcome": "answered",
        "delivery_failed": False,
        "duration_seconds": 260,
    }
    insert = sa.text(
        f"INSERT INTO interactions ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"
    )
    read = sa.text("SELECT provider_id, duration_seconds, handle_seconds FROM interactions")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(to("0005"))
            assert "handle_seconds" not in await connection.run_sync(columns)
            await connection.execute(insert, row)
        await migrate.upgrade(engine)
        async with engine.connect() as connection:
            assert (await connection.execute(read)).all() == [("CA-old", 260, None)]
        async with engine.begin() as connection:
            await connection.run_sync(to("0005", down=True))
            assert "handle_seconds" not in await connection.run_sync(columns)
            kept = await connection.execute(sa.text("SELECT provider_id FROM interactions"))
            assert kept.all() == [("CA-old",)]
    finally:
        await engine.dispose()


async def test_0008_adds_the_time_to_answer_to_the_calls_already_kept_and_takes_it_away(
    tmp_path: Path,
) -> None:
    """Calls recorded before 0008 keep everything and have no time to answer (NULL): they
    count in the partner's answer rate, not in its time to answer; a downgrade drops only
    the two columns."""
    from alembic import command
    from alembic.config import Config

    def to(revision: str, *, down: bool = False) -> Callable[[sa.Connection], None]:
        def run(connection: sa.Connection) -> None:
            config = Config()
            config.set_main_option("script_location", str(SCRIPTS))
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)

        return run

    def columns(connection: sa.Connection) -> set[str]:
        return {column["name"] for column in sa.inspect(connection).get_columns("interactions")}

    added = {"answer_seconds", "fallback_dialled_at"}
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    row = {
        "channel": "phone",
        "provider_id": "CA-old",
        "customer_hash": "h",
        "category": "admin",
        "category_source": "digit",
        "side": "target",
        "destination": "partner",
        "first_destination": "partner",
        "reason": "target",
        "version": 1,
        "bucket": 4.0,
        "received_at": "2026-11-02 09:00:00",
        "decided_at": "2026-11-02 09:00:00",
        "updated_at": "2026-11-02 09:05:00",
        "outcome": "answered",
        "delivery_failed": False,
        "dial_status": "completed",
        "handle_seconds": 187,
    }
    insert = sa.text(
        f"INSERT INTO interactions ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"
    )
    read = sa.text(
        "SELECT provider_id, handle_seconds, answer_seconds, fallback_dialled_at FROM interactions"
    )
    try:
        async with engine.begin() as connection:
            await connection.run_sync(to("0006"))
            assert not added & await connection.run_sync(columns)
            await connection.execute(insert, row)
        await migrate.upgrade(engine)
        async with engine.connect() as connection:
            assert added <= await connection.run_sync(columns)
            assert (await connection.execute(read)).all() == [("CA-old", 187, None, None)]
        async with engine.begin() as connection:
            await connection.run_sync(to("0006", down=True))
            assert not added & await connection.run_sync(columns)
            kept = await connection.execute(sa.text("SELECT handle_seconds FROM interactions"))
            assert kept.all() == [(187,)]
    finally:
        await engine.dispose()
