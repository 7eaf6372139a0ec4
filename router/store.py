"""The database: tables, engine set-up, and the queries the service needs.

The only module that imports sqlmodel/SQLAlchemy ORM pieces. It knows nothing of providers:
webhook replies are stored as opaque text under (provider id, step).

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL`` so an answered
webhook survives a crash, and write transactions start with ``BEGIN IMMEDIATE`` so that two
writers queue on the busy timeout instead of failing on a lock upgrade. Within one process
SQLite writers also queue on an asyncio lock, which keeps them off aiosqlite's threads.
PostgreSQL needs neither.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RoutingVersion(SQLModel, table=True):
    __tablename__ = "routing_versions"

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    kind: str
    actor: str
    reason: str
    document: str  # canonical JSON of the routing document
    created_at: datetime = Field(sa_type=UTCDateTime)


class Interaction(SQLModel, table=True):
    __tablename__ = "interactions"
    __table_args__ = (
        sa.UniqueConstraint("channel", "provider_id", name="uq_interaction_provider"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str
    provider_id: str
    customer_hash: str
    category: str
    category_source: str
    rule: str | None = None
    confidence: float | None = None
    side: str
    destination: str
    first_destination: str
    reason: str
    version: int
    bucket: float
    language: str | None = None
    received_at: datetime = Field(sa_type=UTCDateTime, index=True)
    decided_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    outcome: str | None = None
    delivery_failed: bool = False
    dial_status: str | None = None
    fallback_status: str | None = None
    call_status: str | None = None
    duration_seconds: int | None = None
    recording_url: str | None = None


class WebhookReply(SQLModel, table=True):
    """What we answered to one provider request, so a retry gets the very same answer."""

    __tablename__ = "webhook_replies"

    provider_id: str = Field(primary_key=True)
    step: str = Field(primary_key=True)
    body: str
    created_at: datetime = Field(sa_type=UTCDateTime)


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached or written (an outage, not bad input)."""


def create_engine(database_url: str, *, timeout_seconds: float = 8.0) -> AsyncEngine:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_async_engine(
            database_url,
            pool_pre_ping=True,
            pool_size=10,
            connect_args={"timeout": timeout_seconds},
        )
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    busy_ms = int(timeout_seconds * 1000)
    engine = create_async_engine(database_url, connect_args={"timeout": timeout_seconds})

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


class Store:
    """Repository over one engine; every method is one short transaction."""

    def __init__(self, engine: AsyncEngine, *, timeout_seconds: float = 8.0) -> None:
        self.engine = engine
        self.timeout_seconds = timeout_seconds
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._write_engine = (
            engine.execution_options(sqlite_write=True) if self.is_sqlite else engine
        )
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed on success, rolled back on any error."""
        if self._write_lock is None:
            async with AsyncSession(self._write_engine, expire_on_commit=False) as session:
                yield session
                await session.commit()
            return
        async with (
            self._write_lock,
            AsyncSession(self._write_engine, expire_on_commit=False) as session,
        ):
            yield session
            await session.commit()

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    # -- routing versions -------------------------------------------------------------

    async def latest_version_number(self) -> int:
        async with self.reading() as session:
            result = await session.exec(select(sa.func.max(RoutingVersion.version)))
            return result.one() or 0

    async def current_version(self) -> RoutingVersion | None:
        async with self.reading() as session:
            query = select(RoutingVersion).order_by(col(RoutingVersion.version).desc()).limit(1)
            return (await session.exec(query)).first()

    async def version(self, number: int) -> RoutingVersion | None:
        async with self.reading() as session:
            return await session.get(RoutingVersion, number)

    async def history(self, limit: int | None = None) -> Sequence[RoutingVersion]:
        async with self.reading() as session:
            query = select(RoutingVersion).order_by(col(RoutingVersion.version).desc())
            if limit is not None:
                query = query.limit(limit)
            return (await session.exec(query)).all()

    async def add_version(
        self,
        *,
        document: str,
        kind: str,
        actor: str,
        reason: str,
        now: datetime,
        expected_current: int | None = None,
    ) -> RoutingVersion:
        """Store a new version numbered after the current one.

        With *expected_current*, refuse (:class:`StaleVersion`) when someone else changed
        routing first; concurrent writers on PostgreSQL collide on the primary key and the
        loser gets :class:`StaleVersion` too, so no change is silently lost.
        """
        try:
            async with self.writing() as session:
                result = await session.exec(select(sa.func.max(RoutingVersion.version)))
                current = result.one() or 0
                if expected_current is not None and current != expected_current:
                    raise StaleVersion(expected_current, current)
                row = RoutingVersion(
                    version=current + 1,
                    kind=kind,
                    actor=actor,
                    reason=reason,
                    document=document,
                    created_at=now,
                )
                session.add(row)
            return row
        except IntegrityError as exc:
            raise StaleVersion(expected_current, None) from exc

    # -- webhook replies and interactions ---------------------------------------------

    async def stored_reply(self, provider_id: str, step: str) -> str | None:
        async with self.reading() as session:
            row = await session.get(WebhookReply, (provider_id, step))
            return None if row is None else row.body

    async def interaction_by_provider_id(
        self, channel: str, provider_id: str
    ) -> Interaction | None:
        async with self.reading() as session:
            query = select(Interaction).where(
                Interaction.channel == channel, Interaction.provider_id == provider_id
            )
            return (await session.exec(query)).first()

    async def interactions(
        self,
        *,
        since: datetime | None = None,
        channel: str | None = None,
        limit: int | None = 100,
    ) -> Sequence[Interaction]:
        """Newest first."""
        async with self.reading() as session:
            query = select(Interaction)
            if since is not None:
                query = query.where(Interaction.received_at >= since)
            if channel is not None:
                query = query.where(Interaction.channel == channel)
            query = query.order_by(col(Interaction.received_at).desc(), col(Interaction.id).desc())
            if limit is not None:
                query = query.limit(limit)
            return (await session.exec(query)).all()


class StaleVersion(RuntimeError):
    def __init__(self, expected: int | None, current: int | None) -> None:
        super().__init__(
            f"routing changed meanwhile: expected version {expected}, current is {current}"
        )
        self.expected = expected
        self.current = current


def metadata() -> sa.MetaData:
    return SQLModel.metadata


async def find_interaction(
    session: AsyncSession, channel: str, provider_id: str
) -> Interaction | None:
    query = select(Interaction).where(
        Interaction.channel == channel, Interaction.provider_id == provider_id
    )
    return (await session.exec(query)).first()
