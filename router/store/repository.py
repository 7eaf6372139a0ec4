"""The store: the queries the service needs, over one engine.

It knows nothing of providers: webhook replies are stored as opaque text under (provider
id, step). Within one process SQLite writers queue on an asyncio lock, which keeps them off
aiosqlite's threads.

It takes and gives the typed rows of :mod:`router.service.records`: ORM objects are turned
into records here, before they leave, so no table class (and no lazy attribute that would
need a session) reaches the service. :class:`Store` satisfies the service's ports
(:class:`~router.service.ports.VersionRecords`, :class:`~router.service.ports.Forwards`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from router.core.contact import Channel
from router.core.lifecycle import ForwardStatus, Outcome, outcomes_before, statuses_before
from router.service.ports import DatabaseUnavailable, StaleVersion
from router.service.records import (
    AttemptKind,
    AttemptRecord,
    FailedAttempt,
    ForwardRecord,
    HeldConversations,
    HeldRecord,
    InteractionRecord,
    InteractionSearch,
    NewPlanStep,
    NewToken,
    PartnerFeedback,
    PlanStepRecord,
    RetentionCounts,
    RetentionCursor,
    TokenRecord,
    VersionRecord,
)
from router.store.group_commit import GroupCommit, Member
from router.store.tables import (
    ApiToken,
    AttemptRow,
    Interaction,
    OutboxRow,
    PlanStepRow,
    RoutingVersion,
    ScheduledRun,
    UTCDateTime,
)
from router.store.uow import UnitOfWork, database_errors, insert_ignoring_duplicates

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Record = TypeVar("_Record", bound="DataclassInstance")


@cache
def _field_names(record: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(field.name for field in fields(record))


_READ_ONLY = sa.text(
    "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"
)


def read_as(record: type[_Record], row: object) -> _Record:
    """*row* (an ORM object or a Core row) as *record*, column by field name."""
    return record(**{name: getattr(row, name) for name in _field_names(record)})


def read_all(record: type[_Record], rows: Iterable[object]) -> list[_Record]:
    return [read_as(record, row) for row in rows]


#: retention's first batch starts at the first row of each table
_START = RetentionCursor()


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
        #: SQLite: contacts arriving together share a transaction and its fsync
        self.group_commit = GroupCommit(self.transaction) if self.is_sqlite else None

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with (
            database_errors(None),
            AsyncSession(self.engine, expire_on_commit=False) as session,
        ):
            yield session

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[AsyncConnection]:
        """A Core-level connection for reads that need no ORM objects."""
        async with database_errors(None), self.engine.connect() as connection:
            yield connection

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed on success, rolled back on any error."""
        async with (
            database_errors(self.timeout_seconds),
            self._writer(),
            AsyncSession(self._write_engine, expire_on_commit=False) as session,
        ):
            yield session
            await session.commit()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A Core-level write transaction (no ORM)."""
        async with (
            database_errors(self.timeout_seconds),
            self._writer(),
            self._write_engine.begin() as connection,
        ):
            yield connection

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[None]:
        """SQLite has one writer: this process's writers queue here, off aiosqlite's
        threads, instead of on the busy timeout."""
        if self._write_lock is None:
            yield
            return
        async with self._write_lock:
            yield

    @asynccontextmanager
    async def contact_transaction(self) -> AsyncIterator[tuple[AsyncConnection, Member | None]]:
        """A unit of work's transaction: on SQLite its turn in a group commit (with the
        member that reports its writes), elsewhere a transaction of its own."""
        if self.group_commit is None:
            async with self.transaction() as connection:
                yield connection, None
            return
        async with database_errors(self.timeout_seconds), self.group_commit.member() as turn:
            yield turn

    def unit_of_work(self) -> UnitOfWork:
        """A new unit of work (enter it with ``async with``) over this store's engine."""
        return UnitOfWork(self)

    async def ping(self, timeout_seconds: float) -> None:
        async with database_errors(timeout_seconds), self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def writable(self, timeout_seconds: float) -> None:
        """Return when a contact could be written now; :class:`DatabaseUnavailable` when not
        within *timeout_seconds*. Writes nothing. On SQLite: one turn in the group commit
        (its transaction takes the write lock, which another process may hold); a turn
        shared with the contacts of the moment, and a commit of nothing costs no fsync. On
        PostgreSQL: the server answers and takes writes (not a standby, not read-only)."""
        async with database_errors(timeout_seconds):
            if self.group_commit is not None:
                async with self.group_commit.member():
                    return
            async with self.engine.connect() as connection:
                read_only = await connection.scalar(_READ_ONLY)
        if read_only:
            raise DatabaseUnavailable("the database takes no writes (read-only or a standby)")

    # -- routing versions -------------------------------------------------------------

    async def latest_version_number(self) -> int:
        """The newest version's number (0: none yet). Every process asks this several times
        a second, so it is one prebuilt Core statement on a plain connection, no ORM session
        (1.0 instead of 1.4 ms CPU a poll on SQLite)."""
        async with self.connected() as connection:
            newest: int | None = await connection.scalar(_latest_version_statement())
            return newest or 0

    async def current_version(self) -> VersionRecord | None:
        async with self.reading() as session:
            row = await newest_version(session)
            return None if row is None else read_as(VersionRecord, row)

    async def version(self, number: int) -> VersionRecord | None:
        async with self.reading() as session:
            row = await session.get(RoutingVersion, number)
            return None if row is None else read_as(VersionRecord, row)

    async def history(self, limit: int | None = None) -> list[VersionRecord]:
        async with self.reading() as session:
            query = select(RoutingVersion).order_by(col(RoutingVersion.version).desc())
            if limit is not None:
                query = query.limit(limit)
            return read_all(VersionRecord, (await session.exec(query)).all())

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
    ) -> VersionRecord:
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
                row = await insert_version(
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
                return read_as(VersionRecord, row)
        except IntegrityError as exc:
            raise StaleVersion(expected_current, None) from exc

    # -- plans ---------------------------------------------------------------------------

    async def execute_plan_step(
        self,
        step_id: int,
        now: datetime,
        next_document: Callable[[VersionRecord], str | None],
        *,
        actor: str,
        reason: str,
    ) -> VersionRecord | None:
        """Claim a pending step and store the version it makes, in one transaction, so it
        happens once across replicas. *next_document* gives the new document's JSON from
        the current version, or None to hold the step (it stays pending). None when the
        step was taken by another replica or cancelled, held, or raced by another change."""
        try:
            async with self.writing() as session:
                if not await claim_plan_step(session, step_id, now):
                    return None
                current = await newest_version(session)
                if current is None:
                    raise _GiveBack
                document = next_document(read_as(VersionRecord, current))
                if document is None:
                    raise _GiveBack
                row = await insert_version(
                    session,
                    after=current.version,
                    document=document,
                    kind="plan",
                    actor=actor,
                    reason=reason,
                    now=now,
                )
                await mark_step_version(session, step_id, row.version)
                return read_as(VersionRecord, row)
        except (IntegrityError, _GiveBack):  # a concurrent version, or held: next tick
            return None

    async def add_plan_steps(self, steps: Sequence[NewPlanStep]) -> list[PlanStepRecord]:
        """Store *steps*, pending; as stored, with their ids."""
        rows = [PlanStepRow(**step.values()) for step in steps]
        async with self.writing() as session:
            session.add_all(rows)
        return read_all(PlanStepRecord, rows)

    async def plan_steps(self, *, status: str | None = "pending") -> list[PlanStepRecord]:
        async with self.reading() as session:
            query = select(PlanStepRow).order_by(col(PlanStepRow.due_at), col(PlanStepRow.id))
            if status is not None:
                query = query.where(PlanStepRow.status == status)
            return read_all(PlanStepRecord, (await session.exec(query)).all())

    async def cancel_plan_steps(self, now: datetime, step_id: int | None = None) -> int:
        async with self.writing() as session:
            query = sa.update(PlanStepRow).where(col(PlanStepRow.status) == "pending")
            if step_id is not None:
                query = query.where(col(PlanStepRow.id) == step_id)
            result = await session.exec(query.values(status="cancelled", finished_at=now))
            return int(result.rowcount)

    # -- tokens --------------------------------------------------------------------------

    async def add_token(self, token: NewToken) -> None:
        async with self.writing() as session:
            session.add(ApiToken(**token.values()))

    async def tokens(self) -> list[TokenRecord]:
        async with self.reading() as session:
            query = select(ApiToken).order_by(col(ApiToken.name))
            return read_all(TokenRecord, (await session.exec(query)).all())

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        async with self.reading() as session:
            query = select(ApiToken).where(ApiToken.token_hash == token_hash)
            row = (await session.exec(query)).first()
            return None if row is None else read_as(TokenRecord, row)

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
        self, since: datetime, external: Sequence[str], *, limit: int | None
    ) -> HeldConversations:
        """The last contact of each email thread or chat since *since*, where it went to an
        external destination: what the partner still holds. All of them are counted; the
        newest *limit* (all with None) are read, a few columns each, never whole rows: at
        a million stored contacts they number over a hundred thousand."""
        if not external:
            return HeldConversations(count=0, newest=[])
        latest = (
            sa.select(sa.func.max(Interaction.id))
            .where(
                col(Interaction.conversation_id).is_not(None),
                col(Interaction.received_at) >= since,
            )
            .group_by(col(Interaction.conversation_id))
        )
        held = sa.and_(col(Interaction.id).in_(latest), col(Interaction.destination).in_(external))
        query = (
            sa.select(
                col(Interaction.conversation_id),
                col(Interaction.channel),
                col(Interaction.destination),
                col(Interaction.received_at),
                col(Interaction.id),
                # every held conversation, before the limit: one pass instead of two
                sa.func.count().over().label("total"),
            )
            .where(held)
            .order_by(col(Interaction.received_at).desc(), col(Interaction.id).desc())
            .limit(limit)
        )
        async with self.connected() as connection:
            rows = (await connection.execute(query)).all()
        newest = [
            HeldRecord(
                conversation_id=row.conversation_id,
                channel=row.channel,
                destination=row.destination,
                received_at=row.received_at,
                id=row.id,
            )
            for row in rows
        ]
        return HeldConversations(count=rows[0].total if rows else 0, newest=newest)

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

    async def versions_in_force(self, start: datetime, end: datetime) -> list[VersionRecord]:
        """The routing versions in force at some moment of [*start*, *end*): the one current
        at *start* and every one created after it, before *end* (what prices each day)."""
        created = col(RoutingVersion.created_at)
        current_at_start = (
            select(sa.func.max(RoutingVersion.version)).where(created < start).scalar_subquery()
        )
        async with self.reading() as session:
            query = (
                select(RoutingVersion)
                .where(
                    sa.or_(
                        sa.and_(created >= start, created < end),
                        col(RoutingVersion.version) == current_at_start,
                    )
                )
                .order_by(col(RoutingVersion.version))
            )
            return read_all(VersionRecord, (await session.exec(query)).all())

    async def report_counts(
        self, since: datetime, until: datetime, day_starts: Sequence[datetime] = ()
    ) -> list[tuple[int, str, str, str, str, str | None, int]]:
        """(day, channel, destination, first destination, category, outcome, contacts) of
        the contacts received in [*since*, *until*): the report's figures, aggregated in the
        database so a month of traffic is a few hundred rows, not a row per contact. *day*
        is the number of *day_starts* (the local midnights inside the period, in order) at
        or before the contact: 0 on the period's first day."""
        rows: list[tuple[int, str, str, str, str, str | None, int]] = []
        for first, start, end, inside in _day_chunks(since, until, day_starts):
            day = _day_number(col(Interaction.received_at), inside).label("day")
            columns = (
                col(Interaction.channel),
                col(Interaction.destination),
                col(Interaction.first_destination),
                col(Interaction.category),
                col(Interaction.outcome),
            )
            received = (
                sa.select(day, *columns)
                .where(col(Interaction.received_at) >= start, col(Interaction.received_at) < end)
                .subquery()
            )
            grouped = list(received.c)
            # Core select: seven columns are more than sqlmodel's typed select() takes
            query = sa.select(*grouped, sa.func.count()).group_by(*grouped)
            async with self.connected() as connection:
                found = (await connection.execute(query)).all()
            rows.extend((first + int(r[0]), r[1], r[2], r[3], r[4], r[5], int(r[6])) for r in found)
        return rows

    async def handled_per_day(
        self, since: datetime, until: datetime, day_starts: Sequence[datetime]
    ) -> list[tuple[int, str, str, str | None, int, int]]:
        """(day, channel, destination, outcome, contacts, voicemails) of the contacts
        received in [*since*, *until*): what a month's statement bills, aggregated in the
        database (read through the index on received_at). *day* as in
        :meth:`report_counts`; a voicemail is a call with a recording."""
        rows: list[tuple[int, str, str, str | None, int, int]] = []
        for first, start, end, inside in _day_chunks(since, until, day_starts):
            query = handled_per_day_query(start, end, inside)
            async with self.connected() as connection:
                found = (await connection.execute(query)).all()
            rows.extend(
                (first + int(r[0]), r[1], r[2], r[3], int(r[4]), int(r[5] or 0)) for r in found
            )
        return rows

    async def staffing_calls(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, float, datetime, str | None, int | None, int | None]]:
        """(category, bucket, received_at, outcome, handle seconds, call seconds) of every
        call received in [*since*, *until*) that left the IVR menu: what staffing replays
        through the routing. A few columns a call, read in one statement."""
        query = sa.select(
            col(Interaction.category),
            col(Interaction.bucket),
            col(Interaction.received_at),
            col(Interaction.outcome),
            col(Interaction.handle_seconds),
            col(Interaction.duration_seconds),
        ).where(
            col(Interaction.channel) == "phone",
            col(Interaction.reason) != "abandoned",  # hung up in the menu: never queued
            col(Interaction.received_at) >= since,
            col(Interaction.received_at) < until,
        )
        async with self.connected() as connection:
            rows = (await connection.execute(query)).all()
        return [
            (category, float(bucket), received_at, outcome, handle, duration)
            for category, bucket, received_at, outcome, handle, duration in rows
        ]

    # -- service levels (router/core/sla.py) ---------------------------------------------
    # Each aggregated in the database: a month of traffic is a few dozen groups, except the
    # answered dials' times, which a percentile needs one by one (a float a call).

    def _period(self, since: datetime, until: datetime) -> sa.ColumnElement[bool]:
        return sa.and_(col(Interaction.received_at) >= since, col(Interaction.received_at) < until)

    async def _grouped(self, *columns: Any, where: sa.ColumnElement[bool]) -> list[Any]:
        query = sa.select(*columns, sa.func.count()).where(where).group_by(*columns)
        async with self.connected() as connection:
            return list((await connection.execute(query)).all())

    async def sla_dials(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, str, str | None, str | None, str | None, int]]:
        """(first destination, destination, first dial's status, fallback dial's status,
        outcome, calls) of the calls received in [*since*, *until*) that left the IVR menu."""
        rows = await self._grouped(
            col(Interaction.first_destination),
            col(Interaction.destination),
            col(Interaction.dial_status),
            col(Interaction.fallback_status),
            col(Interaction.outcome),
            where=sa.and_(
                col(Interaction.channel) == "phone",
                col(Interaction.reason) != "abandoned",  # hung up in the menu: never dialled
                self._period(since, until),
            ),
        )
        return [
            (first, destination, dial, fallback, outcome, int(count))
            for first, destination, dial, fallback, outcome, count in rows
        ]

    async def sla_answer_times(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, str, bool, float]]:
        """(first destination, destination, answered by the fallback dial, seconds) of each
        call received in [*since*, *until*) whose answered dial has a time to answer."""
        query = sa.select(
            col(Interaction.first_destination),
            col(Interaction.destination),
            col(Interaction.fallback_status).is_not(None),
            col(Interaction.answer_seconds),
        ).where(
            col(Interaction.channel) == "phone",
            col(Interaction.answer_seconds).is_not(None),
            self._period(since, until),
        )
        async with self.connected() as connection:
            rows = (await connection.execute(query)).all()
        return [
            (first, destination, bool(by_fallback), float(seconds))
            for first, destination, by_fallback, seconds in rows
            if seconds is not None  # the query's own condition; said again for the types
        ]

    async def sla_forwards(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, str, str, str, str, int]]:
        """(channel, first destination, forward's destination now, stage, status, forwards)
        of the forwards of the email and chat contacts received in [*since*, *until*) (not
        a call's voicemail: that is a call's)."""
        rows = await self._grouped(
            col(Interaction.channel),
            col(Interaction.first_destination),
            col(OutboxRow.destination),
            col(OutboxRow.stage),
            col(OutboxRow.status),
            where=sa.and_(
                col(OutboxRow.interaction_id) == col(Interaction.id),
                col(Interaction.channel).in_(["email", "chat"]),
                self._period(since, until),
            ),
        )
        return [
            (channel, first, destination, stage, status, int(count))
            for channel, first, destination, stage, status, count in rows
        ]

    async def sla_feedback(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, str, str, int | None, int]]:
        """(channel, final destination, partner's outcome, rating, reports) of the partner
        feedback on the contacts received in [*since*, *until*)."""
        rows = await self._grouped(
            col(Interaction.channel),
            col(Interaction.destination),
            col(Interaction.partner_outcome),
            col(Interaction.partner_rating),
            where=sa.and_(
                col(Interaction.partner_outcome).is_not(None), self._period(since, until)
            ),
        )
        return [
            (channel, destination, outcome, rating, int(count))
            for channel, destination, outcome, rating, count in rows
        ]

    # -- webhook replies and interactions ---------------------------------------------

    # -- the outbox ------------------------------------------------------------------------

    async def claim_outbox(
        self,
        *,
        now: datetime,
        lease: timedelta,
        limit: int,
        kinds: Sequence[str],
        busy: Sequence[tuple[str, str]] = (),
    ) -> list[ForwardRecord]:
        """Due rows this worker may deliver now; leased so no other worker takes them.
        Rows of the (kind, destination) pairs in *busy* are left: the worker has as many of
        theirs in flight as it lets one destination have.

        One statement picks and leases them (UPDATE … WHERE id IN (the due ones) RETURNING):
        PostgreSQL skips rows another replica holds (FOR UPDATE SKIP LOCKED); SQLite's
        single writer makes the conditional update enough."""
        if not kinds:
            return []
        parameters: dict[str, Any] = {
            "now": now,
            "until": now + lease,
            "kinds": list(kinds),
            "limit": limit,
        }
        if busy:
            parameters["busy"] = [tuple(pair) for pair in busy]
        statement = _claim_statement(not self.is_sqlite, excluding=bool(busy))
        async with self.transaction() as connection:
            result = await connection.execute(statement, parameters)
            rows = read_all(ForwardRecord, result)
        # RETURNING promises no order: the worker sends the longest-waiting first
        return sorted(rows, key=lambda row: (row.next_attempt_at, row.id))

    async def outbox_settled(
        self,
        *,
        delivered: Sequence[ForwardRecord],
        failed: Sequence[tuple[ForwardRecord, FailedAttempt]],
        now: datetime,
    ) -> None:
        """Record what the worker's attempts on claimed rows came to, in one transaction:
        on SQLite one commit and its fsync for a whole batch, not one per row.

        A sent row becomes delivered if it is still pending (whoever holds its lease now: it
        was sent, and a second sender's late failure must not undo that); its interaction
        moves only with it. A failure is recorded only while this worker's lease holds, and
        moves the interaction only where router/core/lifecycle.py allows."""
        if not delivered and not failed:
            return
        async with self.transaction() as connection:
            if delivered:
                await _mark_delivered(connection, [row.id for row in delivered], now)
            for row, attempt in failed:
                await _record_failure(connection, row, attempt, now)
            # the attempt log: one executemany for the whole batch
            await connection.execute(
                _attempt_insert(),
                [_delivery_attempt(row, None, now) for row in delivered]
                + [_delivery_attempt(row, attempt, now) for row, attempt in failed],
            )

    async def outbox_rows(
        self, *, statuses: Sequence[str], limit: int | None = None
    ) -> list[ForwardRecord]:
        async with self.reading() as session:
            query = (
                select(OutboxRow)
                .where(col(OutboxRow.status).in_(statuses))
                .order_by(col(OutboxRow.id))
            )
            if limit is not None:
                query = query.limit(limit)
            return read_all(ForwardRecord, (await session.exec(query)).all())

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
        return None if oldest is None else _aware(oldest)

    async def outbox_pending_by_destination(self) -> list[tuple[str, str, int, datetime]]:
        """(kind, destination, pending forwards, when the longest-waiting of them was
        written) for every pair with any: where a stuck destination shows."""
        async with self.reading() as session:
            query = (
                select(
                    OutboxRow.kind,
                    OutboxRow.destination,
                    sa.func.count(),
                    sa.func.min(OutboxRow.created_at),
                )
                .where(OutboxRow.status == ForwardStatus.PENDING.value)
                .group_by(OutboxRow.kind, OutboxRow.destination)
            )
            rows = (await session.exec(query)).all()
        return [
            (kind, destination, int(count), _aware(oldest))
            for kind, destination, count, oldest in rows
        ]

    async def retry_outbox(self, row_id: int, now: datetime) -> bool:
        """Send a failed (or waiting) forward again now, from a fresh attempt count."""
        async with self.transaction() as connection:
            result = await connection.execute(
                sa.update(OutboxRow)
                .where(
                    col(OutboxRow.id) == row_id,
                    col(OutboxRow.status).in_(statuses_before(ForwardStatus.PENDING)),
                    col(OutboxRow.payload).is_not(None),
                    # never a row a worker is sending right now
                    sa.or_(
                        col(OutboxRow.claimed_until).is_(None), col(OutboxRow.claimed_until) < now
                    ),
                )
                .values(
                    status=ForwardStatus.PENDING.value,
                    attempts=0,
                    next_attempt_at=now,
                    claimed_until=None,
                    updated_at=now,
                )
            )
            return bool(result.rowcount)

    async def record_feedback(self, interaction_id: int, feedback: PartnerFeedback) -> bool:
        """Keep the partner's report on an interaction; False when there is no such one."""
        async with self.transaction() as connection:
            result = await connection.execute(
                sa.update(Interaction)
                .where(col(Interaction.id) == interaction_id)
                .values(**feedback.values())
            )
            return bool(result.rowcount)

    async def interactions(
        self,
        *,
        since: datetime | None = None,
        channel: str | None = None,
        limit: int | None = 100,
    ) -> list[InteractionRecord]:
        """Newest first."""
        return await self.search_interactions(
            InteractionSearch(since=since, channel=channel, limit=limit)
        )

    async def search_interactions(self, search: InteractionSearch) -> list[InteractionRecord]:
        """The interactions *search* names, newest first (by received_at, then id): a page
        ends at *search.limit* rows and the next one starts after its last row (*before*,
        its id), so pages stay put while new contacts arrive. Received, not recorded: a call
        abandoned in the menu is recorded at its end but received when it rang."""
        table: sa.Table = Interaction.__table__  # type: ignore[attr-defined]
        columns = table.c
        conditions: list[sa.ColumnElement[bool]] = []
        if search.since is not None:
            conditions.append(columns.received_at >= search.since)
        if search.provider_id is not None:
            # every channel named, so the unique (channel, provider_id) index answers it
            channels = [search.channel] if search.channel else [c.value for c in Channel]
            conditions.append(columns.channel.in_(channels))
            conditions.append(columns.provider_id == search.provider_id)
        elif search.channel is not None:
            conditions.append(columns.channel == search.channel)
        for name in ("customer_hash", "destination", "category", "outcome"):
            wanted = getattr(search, name)
            if wanted is not None:
                conditions.append(columns[name] == wanted)
        if search.before is not None:
            # after the previous page's last row: an older received_at, or the same one and
            # a lower id (an id that does not exist gives an empty page)
            last = (
                sa.select(columns.received_at).where(columns.id == search.before).scalar_subquery()
            )
            conditions.append(
                sa.or_(
                    columns.received_at < last,
                    sa.and_(columns.received_at == last, columns.id < search.before),
                )
            )
        query = (
            sa.select(table)
            .where(*conditions)
            .order_by(columns.received_at.desc(), columns.id.desc())
        )
        if search.limit is not None:
            query = query.limit(search.limit)
        async with self.connected() as connection:
            rows = (await connection.execute(query)).all()
        return read_all(InteractionRecord, rows)

    async def interaction(self, interaction_id: int) -> InteractionRecord | None:
        async with self.connected() as connection:
            table: sa.Table = Interaction.__table__  # type: ignore[attr-defined]
            row = (
                await connection.execute(sa.select(table).where(table.c.id == interaction_id))
            ).first()
        return None if row is None else read_as(InteractionRecord, row)

    async def attempts_of(self, interaction_id: int) -> list[AttemptRecord]:
        """Every attempt on one interaction, in the order they happened."""
        table: sa.Table = AttemptRow.__table__  # type: ignore[attr-defined]
        query = (
            sa.select(table)
            .where(table.c.interaction_id == interaction_id)
            .order_by(table.c.at, table.c.id)
        )
        async with self.connected() as connection:
            return read_all(AttemptRecord, (await connection.execute(query)).all())

    async def forwards_of(self, interaction_id: int) -> list[ForwardRecord]:
        """The forwards (outbox rows) of one interaction, oldest first."""
        async with self.reading() as session:
            query = (
                select(OutboxRow)
                .where(OutboxRow.interaction_id == interaction_id)
                .order_by(col(OutboxRow.id))
            )
            return read_all(ForwardRecord, (await session.exec(query)).all())

    # -- retention ---------------------------------------------------------------------------

    async def has_run(self, job: str, period: str) -> bool:
        """True when *job* was claimed for *period* (by any replica)."""
        runs: sa.Table = ScheduledRun.__table__  # type: ignore[attr-defined]
        query = sa.select(runs.c.job).where(runs.c.job == job, runs.c.period == period)
        async with self.connected() as connection:
            return (await connection.execute(query)).first() is not None

    async def retention_batch(
        self,
        *,
        cutoff: datetime,
        now: datetime,
        batch: int,
        note: str,
        claim: tuple[str, str] | None = None,
        cursor: RetentionCursor = _START,
    ) -> tuple[RetentionCounts, RetentionCursor] | None:
        """Empty, in one transaction, up to *batch* rows of each kind of personal data kept
        for contacts received before *cutoff*, after *cursor*: the bodies of forwards that
        failed for good (*note* becomes their error; a pending one is owed and never
        touched), recording links, partner comments, attempts' errors; with the cursor of
        the next batch (unchanged: nothing was left). With *claim* (job, period) the
        transaction first claims that run; None when another replica already has (nothing
        is done). Rows and their outcomes stay: reports over old periods do not change."""
        async with self.transaction() as connection:
            if claim is not None and not await _claim_run(connection, *claim, now):
                return None
            return await _empty_batch(connection, cutoff, now, batch, note, cursor)

    async def retention_due(self, *, cutoff: datetime, now: datetime) -> RetentionCounts:
        """What :meth:`retention_batch` would empty, counted (a dry run)."""
        statements = _retention_statements()
        parameters = _retention_parameters(cutoff, _EVERY_ROW, RetentionCursor())
        async with self.connected() as connection:
            found = {
                name: (await connection.execute(query, parameters)).all()
                for name, query in statements.selects.items()
            }
        return _counted(found)

    async def finish_run(self, job: str, period: str, now: datetime, counts: str) -> None:
        runs: sa.Table = ScheduledRun.__table__  # type: ignore[attr-defined]
        async with self.transaction() as connection:
            await connection.execute(
                sa.update(runs)
                .where(runs.c.job == job, runs.c.period == period)
                .values(finished_at=now, counts=counts)
            )


async def _claim_run(connection: AsyncConnection, job: str, period: str, now: datetime) -> bool:
    runs: sa.Table = ScheduledRun.__table__  # type: ignore[attr-defined]
    insert = insert_ignoring_duplicates(connection.dialect.name, runs, ("job", "period"))
    result = await connection.execute(insert, {"job": job, "period": period, "started_at": now})
    return bool(result.rowcount)


#: LIMIT of a dry run's count: every row (PostgreSQL refuses SQLite's "no limit", -1)
_EVERY_ROW = 2**62


class _Retention(NamedTuple):
    #: what to empty, per table: (id, then a flag per count) of rows older than the cutoff
    selects: dict[str, sa.Select[Any]]


@cache
def _retention_statements() -> _Retention:
    interactions: sa.Table = Interaction.__table__  # type: ignore[attr-defined]
    attempts: sa.Table = AttemptRow.__table__  # type: ignore[attr-defined]
    outbox: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]
    cutoff = sa.bindparam("cutoff", type_=UTCDateTime())
    limit = sa.bindparam("batch", type_=sa.BigInteger())  # _EVERY_ROW is past int32

    def after(table: sa.Table) -> sa.ColumnElement[bool]:  # the cursor: rows not yet read
        return table.c.id > sa.bindparam(f"after_{table.name}", type_=sa.BigInteger())

    old = interactions.c.received_at < cutoff
    contacts = (
        sa.select(
            interactions.c.id,
            interactions.c.recording_url.is_not(None),
            interactions.c.partner_comment.is_not(None),
        )
        .where(
            after(interactions),
            old,
            sa.or_(
                interactions.c.recording_url.is_not(None),
                interactions.c.partner_comment.is_not(None),
            ),
        )
        .order_by(interactions.c.id)
        .limit(limit)
    )
    their_attempts = (
        sa.select(attempts.c.id, attempts.c.url.is_not(None), attempts.c.error.is_not(None))
        .join(interactions, interactions.c.id == attempts.c.interaction_id)
        .where(
            after(attempts),
            old,
            sa.or_(attempts.c.url.is_not(None), attempts.c.error.is_not(None)),
        )
        .order_by(attempts.c.id)
        .limit(limit)
    )
    forwards = (
        sa.select(outbox.c.id)
        .join(interactions, interactions.c.id == outbox.c.interaction_id)
        .where(
            after(outbox),
            old,
            outbox.c.payload.is_not(None),
            # only a forward that failed for good: a pending one is still owed (SPEC §7, an
            # SMTP outage longer than the retention keeps it), a delivered one has no body
            outbox.c.status == ForwardStatus.FAILED.value,
        )
        .order_by(outbox.c.id)
        .limit(limit)
    )
    return _Retention({"interactions": contacts, "attempts": their_attempts, "outbox": forwards})


def _counted(found: dict[str, Sequence[Any]]) -> RetentionCounts:
    return RetentionCounts(
        payloads=len(found["outbox"]),
        recordings=sum(bool(row[1]) for row in found["interactions"])
        + sum(bool(row[1]) for row in found["attempts"]),
        comments=sum(bool(row[2]) for row in found["interactions"]),
        errors=sum(bool(row[2]) for row in found["attempts"]),
    )


def _retention_parameters(cutoff: datetime, batch: int, cursor: RetentionCursor) -> dict[str, Any]:
    return {
        "cutoff": cutoff,
        "batch": batch,
        "after_interactions": cursor.interactions,
        "after_attempts": cursor.attempts,
        "after_outbox": cursor.outbox,
    }


def _moved(cursor: RetentionCursor, found: dict[str, Sequence[Any]]) -> RetentionCursor:
    def last(name: str, before: int) -> int:
        return max((row[0] for row in found[name]), default=before)

    return RetentionCursor(
        last("interactions", cursor.interactions),
        last("attempts", cursor.attempts),
        last("outbox", cursor.outbox),
    )


async def _empty_batch(
    connection: AsyncConnection,
    cutoff: datetime,
    now: datetime,
    batch: int,
    note: str,
    cursor: RetentionCursor,
) -> tuple[RetentionCounts, RetentionCursor]:
    interactions: sa.Table = Interaction.__table__  # type: ignore[attr-defined]
    attempts: sa.Table = AttemptRow.__table__  # type: ignore[attr-defined]
    outbox: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]
    parameters = _retention_parameters(cutoff, batch, cursor)
    statements = _retention_statements()
    found = {
        name: (await connection.execute(query, parameters)).all()
        for name, query in statements.selects.items()
    }
    if found["interactions"]:
        ids = [row[0] for row in found["interactions"]]
        await connection.execute(
            sa.update(interactions)
            .where(interactions.c.id.in_(ids))
            .values(recording_url=None, partner_comment=None)
        )
    if found["attempts"]:
        ids = [row[0] for row in found["attempts"]]
        await connection.execute(
            sa.update(attempts).where(attempts.c.id.in_(ids)).values(url=None, error=None)
        )
    if found["outbox"]:
        ids = [row[0] for row in found["outbox"]]
        await connection.execute(
            sa.update(outbox)
            # still failed: `outbox retry` may have made it pending again since the select
            .where(outbox.c.id.in_(ids), outbox.c.status == ForwardStatus.FAILED.value)
            .values(
                payload=None,
                meta="{}",
                last_error=note,  # the one it had may quote an address
                updated_at=now,
            )
        )
    return _counted(found), _moved(cursor, found)


#: the outcomes of a call whose caller left a voicemail: the voicemail itself, then its email
#: delivered or failed (core/lifecycle.py); a call reaches them no other way
_VOICEMAIL_OUTCOMES = (Outcome.VOICEMAIL.value, Outcome.DELIVERED.value, Outcome.FAILED.value)


def handled_per_day_query(
    since: datetime, until: datetime, day_starts: Sequence[datetime]
) -> sa.Select[Any]:
    """:meth:`Store.handled_per_day`'s statement: a range on the received_at index, then
    grouped (tests/test_statement.py checks the plan)."""
    day = _day_number(col(Interaction.received_at), day_starts).label("day")
    # by outcome, not by recording_url (retention empties that link): a call whose caller
    # left a voicemail ends as the voicemail's email does, and a call ends so no other way
    left_one = sa.and_(
        col(Interaction.channel) == Channel.PHONE.value,
        col(Interaction.outcome).in_(_VOICEMAIL_OUTCOMES),
    )
    voicemail = sa.case((left_one, 1), else_=0)
    received = (
        sa.select(
            day,
            col(Interaction.channel),
            col(Interaction.destination),
            col(Interaction.outcome),
            voicemail.label("voicemail"),
        )
        .where(col(Interaction.received_at) >= since, col(Interaction.received_at) < until)
        .subquery()
    )
    grouped = [received.c.day, received.c.channel, received.c.destination, received.c.outcome]
    return sa.select(*grouped, sa.func.count(), sa.func.sum(received.c.voicemail)).group_by(
        *grouped
    )


#: Days counted by one statement: its CASE has one branch per day, and a statement of many
#: thousand branches takes SQLite longer to prepare than to run (100 years: 50 s).
_DAYS_PER_STATEMENT = 366


def _day_chunks(
    since: datetime, until: datetime, day_starts: Sequence[datetime]
) -> list[tuple[int, datetime, datetime, Sequence[datetime]]]:
    """[*since*, *until*) cut into runs of at most a year of days: (the number of the run's
    first day, its start, its end, the day starts inside it). Runs of equal length compile
    to the same SQL, which SQLAlchemy caches."""
    edges = [since, *day_starts, until]  # edges[d]: where day d starts; the last: the end
    days = len(day_starts) + 1
    return [
        (
            first,
            edges[first],
            edges[min(first + _DAYS_PER_STATEMENT, days)],
            day_starts[first : min(first + _DAYS_PER_STATEMENT, days) - 1],
        )
        for first in range(0, days, _DAYS_PER_STATEMENT)
    ]


def _day_number(column: Any, starts: Sequence[datetime]) -> sa.ColumnElement[int]:
    """How many of *starts* (ordered) are at or before *column*: the day a contact fell on,
    counted from 0. A balanced tree of CASEs, so a month costs each row five comparisons,
    not thirty, and the same SQL runs on SQLite (no time zones) and PostgreSQL: the local
    midnights are computed in Python, where the time zone rules are."""
    if not starts:
        return sa.literal(0, sa.Integer)

    def between(low: int, high: int) -> sa.ColumnElement[int]:
        # the answer lies in [low, high]: starts[low:high] are the candidates
        if low == high:
            return sa.literal(low, sa.Integer)
        middle = (low + high) // 2
        return sa.case(
            (column < sa.literal(starts[middle], UTCDateTime()), between(low, middle)),
            else_=between(middle + 1, high),
        )

    return between(0, len(starts))


def _aware(moment: datetime | str) -> datetime:
    """A time read by an aggregate (which skips the column's type: SQLite gives text)."""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def _mark_delivered(connection: AsyncConnection, row_ids: list[int], now: datetime) -> None:
    """Sent forwards become delivered, and their interactions with them: two statements
    however many rows (the interactions are those of the forwards this one changed)."""
    statements = _delivered_statements()
    changed = await connection.execute(statements.forwards, {"row_ids": row_ids, "now": now})
    interaction_ids = [interaction_id for (interaction_id,) in changed]
    if interaction_ids:
        await connection.execute(
            statements.interactions, {"interaction_ids": interaction_ids, "now": now}
        )


async def _record_failure(
    connection: AsyncConnection, row: ForwardRecord, attempt: FailedAttempt, now: datetime
) -> None:
    changes = forward_changes(attempt)
    interaction_changes = interaction_changes_after(attempt)
    # only while this worker's lease holds: a late answer never undoes a delivery
    result = await connection.execute(
        sa.update(OutboxRow)
        .where(
            col(OutboxRow.id) == row.id,
            col(OutboxRow.status) == ForwardStatus.PENDING.value,
            col(OutboxRow.claimed_until) == row.claimed_until,
        )
        .values(**changes, claimed_until=None, updated_at=now)
    )
    if interaction_changes and result.rowcount:
        update = sa.update(Interaction).where(col(Interaction.id) == row.interaction_id)
        if attempt.outcome is not None:
            allowed = outcomes_before(attempt.outcome)
            update = update.where(col(Interaction.outcome).in_(allowed))
        await connection.execute(update.values(**interaction_changes, updated_at=now))


@cache
def _attempt_insert() -> sa.Insert:
    attempts: sa.Table = AttemptRow.__table__  # type: ignore[attr-defined]
    return sa.insert(attempts)


def _delivery_attempt(
    row: ForwardRecord, failure: FailedAttempt | None, now: datetime
) -> dict[str, Any]:
    """The attempt row of one send of *row* (delivered when *failure* is None)."""
    return {
        "interaction_id": row.interaction_id,
        "at": now,
        "kind": AttemptKind.DELIVERY.value,
        "number": row.attempts + 1,
        "destination": row.destination,
        "address": row.address,
        "status": ForwardStatus.DELIVERED.value if failure is None else failure.status.value,
        "error": None if failure is None else failure.last_error,
        "seconds": None,
        "url": None,
        "provider_ref": None,
    }


def forward_changes(attempt: FailedAttempt) -> dict[str, Any]:
    """The outbox columns a failed attempt sets."""
    changes: dict[str, Any] = {"status": attempt.status.value, "last_error": attempt.last_error}
    if attempt.stage is not None:
        changes["stage"] = attempt.stage.value
    if attempt.attempts is not None:
        changes["attempts"] = attempt.attempts
    if attempt.next_attempt_at is not None:
        changes["next_attempt_at"] = attempt.next_attempt_at
    if attempt.redirect is not None:
        changes["destination"] = attempt.redirect.destination
        changes["address"] = attempt.redirect.address
        changes["external"] = attempt.redirect.external
    return changes


def interaction_changes_after(attempt: FailedAttempt) -> dict[str, Any]:
    """The interaction columns a failed attempt sets (none: the interaction stays)."""
    changes: dict[str, Any] = {}
    if attempt.redirect is not None:
        changes["destination"] = attempt.redirect.destination
    if attempt.outcome is not None:
        changes["outcome"] = attempt.outcome.value
    if attempt.delivery_failed is not None:
        changes["delivery_failed"] = attempt.delivery_failed
    return changes


class _Delivered(NamedTuple):
    forwards: sa.UpdateBase
    interactions: sa.Update


@cache
def _delivered_statements() -> _Delivered:
    """The two updates that record deliveries, built once: building them per message cost
    the worker 0.26 ms each (bench/RESULTS.md), a prebuilt statement keeps its compiled form
    cached. The lists of ids are expanding parameters, so one statement serves any batch."""
    outbox: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]
    interactions: sa.Table = Interaction.__table__  # type: ignore[attr-defined]
    now: sa.BindParameter[datetime] = sa.bindparam("now")
    forwards = (
        sa.update(outbox)
        .where(
            outbox.c.id.in_(sa.bindparam("row_ids", expanding=True)),
            outbox.c.status.in_(statuses_before(ForwardStatus.DELIVERED)),
        )
        .values(
            status=ForwardStatus.DELIVERED.value,
            payload=None,  # bodies are not kept once delivered,
            meta="{}",  # nor who sent them
            delivered_at=now,
            updated_at=now,
            claimed_until=None,
            last_error=None,
        )
        # the rows this changed: a row delivered before (by a worker whose lease had run
        # out) leaves its interaction alone
        .returning(outbox.c.interaction_id)
    )
    interaction = (
        sa.update(interactions)
        .where(
            interactions.c.id.in_(sa.bindparam("interaction_ids", expanding=True)),
            interactions.c.outcome.in_(outcomes_before(Outcome.DELIVERED)),
        )
        .values(outcome=Outcome.DELIVERED.value, updated_at=now)
    )
    return _Delivered(forwards, interaction)


@cache
def _claim_statement(skip_locked: bool, *, excluding: bool = False) -> sa.UpdateBase:
    """Lease the due rows and return them, in one statement built once (twice: with and
    without the ``busy`` (kind, destination) pairs to leave out)."""
    outbox: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]
    now = sa.bindparam("now", type_=UTCDateTime())
    conditions = [
        outbox.c.status == ForwardStatus.PENDING.value,
        outbox.c.next_attempt_at <= now,
        outbox.c.kind.in_(sa.bindparam("kinds", expanding=True)),
        sa.or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now),
    ]
    if excluding:
        pair = sa.tuple_(outbox.c.kind, outbox.c.destination)
        conditions.append(pair.not_in(sa.bindparam("busy", expanding=True)))
    due = (
        sa.select(outbox.c.id)
        .where(*conditions)
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    return (
        sa.update(outbox)
        .where(outbox.c.id.in_(due))
        .values(claimed_until=sa.bindparam("until", type_=UTCDateTime()))
        .returning(*outbox.c)
    )


@cache
def _latest_version_statement() -> sa.Select[tuple[int | None]]:
    versions: sa.Table = RoutingVersion.__table__  # type: ignore[attr-defined]
    return sa.select(sa.func.max(versions.c.version))


class _GiveBack(Exception):
    """Raised inside a transaction to undo it (a plan step held back)."""


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
