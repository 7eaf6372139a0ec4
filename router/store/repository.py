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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
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
    # rollback: the version resume brings back; resume: the version it brought back
    restores: int | None = None
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # timed rollback
    channel: str | None = None  # a rollback of one channel only


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
    conversation_id: str | None = Field(default=None, index=True)  # email thread, chat
    partner_outcome: str | None = None  # what the partner reported (webhooks/partner/feedback)
    partner_rating: int | None = None
    partner_comment: str | None = None  # card numbers masked
    feedback_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OutboxRow(SQLModel, table=True):
    """A forward waiting for delivery (email to a mailbox, chat hand-off over HTTP).

    Written in the same transaction as its interaction; the payload is deleted once
    delivered. The fallback is resolved when the row is written."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    interaction_id: int = Field(foreign_key="interactions.id", index=True)
    kind: str  # email | chat
    destination: str
    address: str
    external: bool
    fallback: str | None = None
    fallback_address: str | None = None
    fallback_external: bool = False
    stage: str = "primary"
    status: str = Field(default="pending", index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime, index=True)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = None
    payload: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    meta: str = "{}"  # JSON: what the sender needs besides the payload
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SeenToken(SQLModel, table=True):
    """Provider tokens already accepted (Mailgun), so a replayed request is refused."""

    __tablename__ = "seen_tokens"

    provider: str = Field(primary_key=True)
    token: str = Field(primary_key=True)
    seen_at: datetime = Field(sa_type=UTCDateTime, index=True)


class PlanStepRow(SQLModel, table=True):
    """One scheduled cut-over step; executed once, by whichever replica claims it first."""

    __tablename__ = "plan_steps"

    id: int | None = Field(default=None, primary_key=True)
    due_at: datetime = Field(sa_type=UTCDateTime, index=True)
    reason: str
    cutover: str  # JSON {channel: {category: percent}}
    status: str = "pending"  # pending | done | cancelled
    created_by: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int | None = None  # the version the step became


class ApiToken(SQLModel, table=True):
    """An operator's bearer token; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    name: str = Field(primary_key=True)
    role: str
    token_hash: str = Field(unique=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookReply(SQLModel, table=True):
    """What we answered to one provider request, so a retry gets the very same answer."""

    __tablename__ = "webhook_replies"

    provider_id: str = Field(primary_key=True)
    step: str = Field(primary_key=True)
    body: str
    created_at: datetime = Field(sa_type=UTCDateTime)


# Built once: the hot path passes only parameters, so each insert is a compiled-cache hit.
_INSERT_INTERACTION = sa.insert(Interaction.__table__)  # type: ignore[attr-defined]
_INSERT_REPLY = sa.insert(WebhookReply.__table__)  # type: ignore[attr-defined]
_INSERT_OUTBOX = sa.insert(OutboxRow.__table__)  # type: ignore[attr-defined]
_INSERT_TOKEN = sa.insert(SeenToken.__table__)  # type: ignore[attr-defined]


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

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A Core-level write transaction: the hot path (one contact) skips the ORM."""
        if self._write_lock is None:
            async with self._write_engine.begin() as connection:
                yield connection
            return
        async with self._write_lock, self._write_engine.begin() as connection:
            yield connection

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
        restores: int | None = None,
        expires_at: datetime | None = None,
        channel: str | None = None,
    ) -> RoutingVersion:
        """Store a new version numbered after the current one.

        With *expected_current*, refuse (:class:`StaleVersion`) when someone else changed
        routing first; concurrent writers on PostgreSQL collide on the primary key and the
        loser gets :class:`StaleVersion` too, so no change is silently lost.
        """
        try:
            async with self.writing() as session:
                current = await newest_version(session)
                number = current.version if current is not None else 0
                if expected_current is not None and number != expected_current:
                    raise StaleVersion(expected_current, number)
                return await insert_version(
                    session,
                    after=number,
                    document=document,
                    kind=kind,
                    actor=actor,
                    reason=reason,
                    now=now,
                    restores=restores,
                    expires_at=expires_at,
                    channel=channel,
                )
        except IntegrityError as exc:
            raise StaleVersion(expected_current, None) from exc

    # -- plans ---------------------------------------------------------------------------

    async def add_plan_steps(self, steps: Sequence[PlanStepRow]) -> list[PlanStepRow]:
        async with self.writing() as session:
            for step in steps:
                session.add(step)
        return list(steps)

    async def plan_steps(self, *, status: str | None = "pending") -> Sequence[PlanStepRow]:
        async with self.reading() as session:
            query = select(PlanStepRow).order_by(col(PlanStepRow.due_at), col(PlanStepRow.id))
            if status is not None:
                query = query.where(PlanStepRow.status == status)
            return (await session.exec(query)).all()

    async def cancel_plan_steps(self, now: datetime, step_id: int | None = None) -> int:
        async with self.writing() as session:
            query = sa.update(PlanStepRow).where(col(PlanStepRow.status) == "pending")
            if step_id is not None:
                query = query.where(col(PlanStepRow.id) == step_id)
            result = await session.exec(query.values(status="cancelled", finished_at=now))
            return int(result.rowcount)

    # -- tokens --------------------------------------------------------------------------

    async def add_token(self, token: ApiToken) -> None:
        async with self.writing() as session:
            session.add(token)

    async def tokens(self) -> Sequence[ApiToken]:
        async with self.reading() as session:
            return (await session.exec(select(ApiToken).order_by(col(ApiToken.name)))).all()

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        async with self.reading() as session:
            query = select(ApiToken).where(ApiToken.token_hash == token_hash)
            return (await session.exec(query)).first()

    async def revoke_token(self, name: str, now: datetime) -> bool:
        async with self.writing() as session:
            query = (
                sa.update(ApiToken)
                .where(col(ApiToken.name) == name, col(ApiToken.revoked_at).is_(None))
                .values(revoked_at=now)
            )
            return int((await session.exec(query)).rowcount) > 0

    # -- questions the migration logic asks ------------------------------------------------

    async def external_contacts(
        self, since: datetime, external: Sequence[str]
    ) -> list[tuple[str, int, int]]:
        """(channel, contacts, failures) of contacts first sent to *external* since then."""
        if not external:
            return []
        async with self.reading() as session:
            failed = sa.func.sum(sa.case((col(Interaction.delivery_failed), 1), else_=0))
            query = (
                select(Interaction.channel, sa.func.count(), failed)
                .where(
                    Interaction.received_at >= since,
                    col(Interaction.first_destination).in_(external),
                )
                .group_by(Interaction.channel)
            )
            rows = (await session.exec(query)).all()
            return [(channel, int(count), int(fails or 0)) for channel, count, fails in rows]

    async def replay_rows(
        self, since: datetime, channel: str | None = None
    ) -> list[tuple[str, str, float, datetime]]:
        """(channel, category, bucket, received_at) of every interaction since then that
        was routed (not the calls abandoned in the IVR: no routing would have changed them)."""
        async with self.reading() as session:
            query = select(
                Interaction.channel,
                Interaction.category,
                Interaction.bucket,
                Interaction.received_at,
            ).where(Interaction.received_at >= since, Interaction.reason != "abandoned")
            if channel is not None:
                query = query.where(Interaction.channel == channel)
            return [tuple(row) for row in (await session.exec(query)).all()]  # type: ignore[misc]

    async def conversations_held(
        self, since: datetime, external: Sequence[str]
    ) -> Sequence[Interaction]:
        """The last contact of each email thread or chat since *since*, where it went to an
        external destination: what the partner still holds."""
        if not external:
            return []
        async with self.reading() as session:
            latest = (
                select(sa.func.max(Interaction.id))
                .where(
                    col(Interaction.conversation_id).is_not(None),
                    Interaction.received_at >= since,
                )
                .group_by(Interaction.conversation_id)
            )
            query = (
                select(Interaction)
                .where(col(Interaction.id).in_(latest), col(Interaction.destination).in_(external))
                .order_by(col(Interaction.received_at).desc())
            )
            return (await session.exec(query)).all()

    async def contacts_per_hour(
        self, since: datetime, until: datetime
    ) -> list[tuple[datetime, str, str, int]]:
        """Contacts received in [*since*, *until*) counted per UTC hour (its start), channel
        and final destination: the console's traffic chart, aggregated in the database."""
        if self.is_sqlite:  # SQLite keeps UTC text; PostgreSQL a timestamptz
            hour: Any = sa.func.strftime("%Y-%m-%d %H:00:00", Interaction.received_at)
        else:  # truncated in UTC, whatever the session's time zone
            hour = sa.func.date_trunc("hour", sa.func.timezone("UTC", Interaction.received_at))
        async with self.reading() as session:
            query = (
                select(hour, Interaction.channel, Interaction.destination, sa.func.count())
                .where(Interaction.received_at >= since, Interaction.received_at < until)
                .group_by(hour, Interaction.channel, Interaction.destination)
            )
            rows = (await session.exec(query)).all()
        counted: list[tuple[datetime, str, str, int]] = []
        for start, channel, destination, count in rows:
            moment = datetime.fromisoformat(start) if isinstance(start, str) else start
            counted.append((moment.replace(tzinfo=UTC), channel, destination, int(count)))
        return counted

    async def report_counts(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, str, str, str, str | None, int]]:
        """(channel, destination, first destination, category, outcome, contacts) of the
        contacts received in [*since*, *until*): the report's figures, aggregated in the
        database so a month of traffic is a few dozen rows, not a row per contact."""
        columns = (
            col(Interaction.channel),
            col(Interaction.destination),
            col(Interaction.first_destination),
            col(Interaction.category),
            col(Interaction.outcome),
        )
        # Core select: six columns are more than sqlmodel's typed select() takes
        query = (
            sa.select(*columns, sa.func.count())
            .where(col(Interaction.received_at) >= since, col(Interaction.received_at) < until)
            .group_by(*columns)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [
            (channel, destination, first, category, outcome, int(count))
            for channel, destination, first, category, outcome, count in rows
        ]

    # -- webhook replies and interactions ---------------------------------------------

    async def record_contact(
        self, interaction: dict[str, Any], reply: dict[str, Any]
    ) -> str | None:
        """Insert an interaction and the answer given for it, together.

        Returns None when stored, or the earlier answer when this provider id was recorded
        before (a provider's retry, maybe racing the first delivery)."""
        try:
            async with self.transaction() as connection:
                await connection.execute(_INSERT_INTERACTION, interaction)
                await connection.execute(_INSERT_REPLY, reply)
            return None
        except IntegrityError:
            earlier = await self.stored_reply(reply["provider_id"], reply["step"])
            return earlier if earlier is not None else reply["body"]

    async def record_forwarded_contact(
        self,
        interaction: dict[str, Any],
        forwards: Sequence[dict[str, Any]],
        *,
        seen_token: tuple[str, str] | None = None,
    ) -> tuple[int, bool]:
        """Insert an interaction and its outbox rows together (nothing acknowledged is lost).

        Returns (interaction id, True), or the id of the interaction recorded earlier under
        the same provider id and False (a provider's retry or a duplicate delivery). With
        *seen_token* (provider, token), the token is recorded in the same transaction; a
        token seen before raises :class:`TokenReplayed`."""
        try:
            async with self.transaction() as connection:
                if seen_token is not None:
                    await connection.execute(
                        _INSERT_TOKEN,
                        {
                            "provider": seen_token[0],
                            "token": seen_token[1],
                            "seen_at": interaction["received_at"],
                        },
                    )
                result = await connection.execute(_INSERT_INTERACTION, interaction)
                key = result.inserted_primary_key
                assert key is not None
                interaction_id = int(key[0])
                for forward in forwards:
                    await connection.execute(
                        _INSERT_OUTBOX, {**forward, "interaction_id": interaction_id}
                    )
            return interaction_id, True
        except IntegrityError:
            if seen_token is not None and await self.token_seen(*seen_token):
                raise TokenReplayed(seen_token[0]) from None
            earlier = await self.interaction_by_provider_id(
                interaction["channel"], interaction["provider_id"]
            )
            if earlier is not None and earlier.id is not None:
                return earlier.id, False
            raise

    async def token_seen(self, provider: str, token: str) -> bool:
        async with self.engine.connect() as connection:
            found = await connection.scalar(
                select(SeenToken.token).where(
                    SeenToken.provider == provider, SeenToken.token == token
                )
            )
            return found is not None

    async def thread_of(self, channel: str, provider_ids: Sequence[str]) -> Interaction | None:
        """The earliest interaction among *provider_ids* (a reply's In-Reply-To/References)."""
        if not provider_ids:
            return None
        async with self.reading() as session:
            query = (
                select(Interaction)
                .where(
                    Interaction.channel == channel, col(Interaction.provider_id).in_(provider_ids)
                )
                .order_by(col(Interaction.id))
                .limit(1)
            )
            return (await session.exec(query)).first()

    async def conversation_start(self, channel: str, conversation_id: str) -> Interaction | None:
        """The first interaction of a conversation (its category is the thread's)."""
        async with self.reading() as session:
            query = (
                select(Interaction)
                .where(
                    Interaction.channel == channel, Interaction.conversation_id == conversation_id
                )
                .order_by(col(Interaction.id))
                .limit(1)
            )
            return (await session.exec(query)).first()

    # -- the outbox ------------------------------------------------------------------------

    async def claim_outbox(
        self, *, now: datetime, lease: timedelta, limit: int, kinds: Sequence[str]
    ) -> list[OutboxRow]:
        """Due rows this worker may deliver now; leased so no other worker takes them.

        PostgreSQL skips rows another replica holds (FOR UPDATE SKIP LOCKED); SQLite's
        single writer makes the conditional update enough."""
        if not kinds:
            return []
        async with self.writing() as session:
            query = (
                select(OutboxRow)
                .where(
                    OutboxRow.status == "pending",
                    OutboxRow.next_attempt_at <= now,
                    col(OutboxRow.kind).in_(kinds),
                    sa.or_(
                        col(OutboxRow.claimed_until).is_(None), col(OutboxRow.claimed_until) < now
                    ),
                )
                .order_by(col(OutboxRow.next_attempt_at), col(OutboxRow.id))
                .limit(limit)
            )
            if not self.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = list((await session.exec(query)).all())
            for row in rows:
                row.claimed_until = now + lease
                session.add(row)
        return rows

    async def outbox_delivered(self, row: OutboxRow, now: datetime) -> None:
        async with self.transaction() as connection:
            await connection.execute(
                sa.update(OutboxRow)
                .where(col(OutboxRow.id) == row.id, col(OutboxRow.status) == "pending")
                .values(
                    status="delivered",
                    payload=None,  # bodies are not kept once delivered,
                    meta="{}",  # nor who sent them
                    delivered_at=now,
                    updated_at=now,
                    claimed_until=None,
                    last_error=None,
                )
            )
            await connection.execute(
                sa.update(Interaction)
                .where(col(Interaction.id) == row.interaction_id)
                .values(outcome="delivered", updated_at=now)
            )

    async def outbox_failed_attempt(
        self,
        row: OutboxRow,
        *,
        changes: dict[str, Any],
        interaction_changes: dict[str, Any],
        now: datetime,
    ) -> None:
        async with self.transaction() as connection:
            # only while this worker's lease holds: a late answer never undoes a delivery
            result = await connection.execute(
                sa.update(OutboxRow)
                .where(
                    col(OutboxRow.id) == row.id,
                    col(OutboxRow.status) == "pending",
                    col(OutboxRow.claimed_until) == row.claimed_until,
                )
                .values(**changes, claimed_until=None, updated_at=now)
            )
            if interaction_changes and result.rowcount:
                await connection.execute(
                    sa.update(Interaction)
                    .where(col(Interaction.id) == row.interaction_id)
                    .values(**interaction_changes, updated_at=now)
                )

    async def outbox_rows(
        self, *, statuses: Sequence[str], limit: int | None = None
    ) -> Sequence[OutboxRow]:
        async with self.reading() as session:
            query = (
                select(OutboxRow)
                .where(col(OutboxRow.status).in_(statuses))
                .order_by(col(OutboxRow.id))
            )
            if limit is not None:
                query = query.limit(limit)
            return (await session.exec(query)).all()

    async def outbox_depth(self) -> dict[str, int]:
        async with self.reading() as session:
            query = (
                select(OutboxRow.status, sa.func.count())
                .where(col(OutboxRow.status).in_(("pending", "failed")))
                .group_by(OutboxRow.status)
            )
            counts = {status: int(count) for status, count in (await session.exec(query)).all()}
        return {"pending": counts.get("pending", 0), "failed": counts.get("failed", 0)}

    async def oldest_pending_forward(self) -> datetime | None:
        """When the longest-waiting pending forward was written (None: none waits)."""
        async with self.reading() as session:
            query = select(sa.func.min(OutboxRow.created_at)).where(OutboxRow.status == "pending")
            oldest = (await session.exec(query)).one()
        if oldest is None:
            return None
        moment = datetime.fromisoformat(oldest) if isinstance(oldest, str) else oldest
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment

    async def retry_outbox(self, row_id: int, now: datetime) -> bool:
        """Send a failed (or waiting) forward again now, from a fresh attempt count."""
        async with self.transaction() as connection:
            result = await connection.execute(
                sa.update(OutboxRow)
                .where(
                    col(OutboxRow.id) == row_id,
                    col(OutboxRow.status).in_(("failed", "pending")),
                    col(OutboxRow.payload).is_not(None),
                    # never a row a worker is sending right now
                    sa.or_(
                        col(OutboxRow.claimed_until).is_(None), col(OutboxRow.claimed_until) < now
                    ),
                )
                .values(
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    claimed_until=None,
                    updated_at=now,
                )
            )
            return bool(result.rowcount)

    async def record_progress(
        self,
        *,
        channel: str,
        provider_id: str,
        changes: dict[str, Any],
        reply: dict[str, Any] | None,
        forwards: Sequence[dict[str, Any]] = (),
    ) -> tuple[bool, str | None]:
        """Update an interaction, queue *forwards* for it and store the answer given, all
        together.

        Returns (found, earlier answer): the answer given before to the very same request,
        if any, in which case nothing is changed."""
        try:
            async with self.transaction() as connection:
                if reply is not None:
                    earlier = await connection.scalar(
                        select(WebhookReply.body).where(
                            WebhookReply.provider_id == reply["provider_id"],
                            WebhookReply.step == reply["step"],
                        )
                    )
                    if earlier is not None:
                        return True, earlier
                result = await connection.execute(
                    sa.update(Interaction)
                    .where(
                        col(Interaction.channel) == channel,
                        col(Interaction.provider_id) == provider_id,
                    )
                    .values(**changes)
                )
                if forwards and result.rowcount:
                    interaction_id = await connection.scalar(
                        select(Interaction.id).where(
                            Interaction.channel == channel, Interaction.provider_id == provider_id
                        )
                    )
                    for forward in forwards:
                        await connection.execute(
                            _INSERT_OUTBOX, {**forward, "interaction_id": interaction_id}
                        )
                if reply is not None:
                    await connection.execute(_INSERT_REPLY, reply)
                return result.rowcount > 0, None
        except IntegrityError:
            if reply is None:
                return True, None
            return True, await self.stored_reply(reply["provider_id"], reply["step"])

    async def record_feedback(self, interaction_id: int, changes: dict[str, Any]) -> bool:
        """Keep the partner's report on an interaction; False when there is no such one."""
        async with self.transaction() as connection:
            result = await connection.execute(
                sa.update(Interaction)
                .where(col(Interaction.id) == interaction_id)
                .values(**changes)
            )
            return bool(result.rowcount)

    async def stored_reply(self, provider_id: str, step: str) -> str | None:
        async with self.engine.connect() as connection:
            body: str | None = await connection.scalar(
                select(WebhookReply.body).where(
                    WebhookReply.provider_id == provider_id, WebhookReply.step == step
                )
            )
            return body

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


class TokenReplayed(RuntimeError):
    """A provider token (Mailgun's) was accepted before: the request is a replay."""


class StaleVersion(RuntimeError):
    def __init__(self, expected: int | None, current: int | None) -> None:
        super().__init__(
            f"routing changed meanwhile: expected version {expected}, current is {current}"
        )
        self.expected = expected
        self.current = current


def metadata() -> sa.MetaData:
    return SQLModel.metadata


async def newest_version(session: AsyncSession) -> RoutingVersion | None:
    query = select(RoutingVersion).order_by(col(RoutingVersion.version).desc()).limit(1)
    return (await session.exec(query)).first()


#: PostgreSQL channel on which every new routing version is announced (LISTEN/NOTIFY).
ROUTING_CHANNEL = "switchboard_routing"


async def insert_version(
    session: AsyncSession,
    *,
    after: int,
    document: str,
    kind: str,
    actor: str,
    reason: str,
    now: datetime,
    restores: int | None = None,
    expires_at: datetime | None = None,
    channel: str | None = None,
) -> RoutingVersion:
    """Add version *after* + 1 in *session*'s transaction; on PostgreSQL, announce it to
    every replica when the transaction commits."""
    row = RoutingVersion(
        version=after + 1,
        kind=kind,
        actor=actor,
        reason=reason,
        document=document,
        created_at=now,
        restores=restores,
        expires_at=expires_at,
        channel=channel,
    )
    session.add(row)
    await session.flush()
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.exec(
            sa.select(sa.func.pg_notify(ROUTING_CHANNEL, str(row.version)))  # type: ignore[call-overload]
        )
    return row


async def claim_plan_step(session: AsyncSession, step_id: int, now: datetime) -> bool:
    """Mark a pending step done; False when another replica (or a cancel) got there first."""
    query = (
        sa.update(PlanStepRow)
        .where(col(PlanStepRow.id) == step_id, col(PlanStepRow.status) == "pending")
        .values(status="done", finished_at=now)
    )
    return int((await session.exec(query)).rowcount) == 1


async def mark_step_version(session: AsyncSession, step_id: int, version: int) -> None:
    await session.exec(
        sa.update(PlanStepRow).where(col(PlanStepRow.id) == step_id).values(version=version)
    )


async def find_interaction(
    session: AsyncSession, channel: str, provider_id: str
) -> Interaction | None:
    query = select(Interaction).where(
        Interaction.channel == channel, Interaction.provider_id == provider_id
    )
    return (await session.exec(query)).first()
