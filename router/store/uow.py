"""The unit of work: one transaction through which the service records a contact.

Everything written through one :class:`UnitOfWork` — the interaction, its forwards, the
answer given to the provider, a provider's one-time token — commits together or not at all
(SPEC §7: nothing acknowledged is lost). It takes typed rows (:mod:`router.service.records`)
and gives back plain values, so no SQLAlchemy object or error reaches the service:
:func:`database_errors` is the one place where a failure of the database becomes
:class:`~router.service.ports.DatabaseUnavailable`.

A duplicate (a provider's retry, maybe racing the first delivery) is not an error here: the
inserts that can collide use ``ON CONFLICT DO NOTHING`` and report that nothing was added, so
the transaction stays usable and the caller answers as the first time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from router.core.contact import Category
from router.core.lifecycle import Outcome
from router.service.ports import ConnectionLost, DatabaseUnavailable
from router.service.records import NewAttempt, NewForward, NewInteraction, Reply, StoredContact
from router.store.tables import AttemptRow, Interaction, OutboxRow, SeenToken, WebhookReply

if TYPE_CHECKING:
    from router.core.calls import CallProgress
    from router.store.group_commit import Member
    from router.store.repository import Store

log = structlog.get_logger(__name__)

#: at most one ``database.pool_exhausted`` line per this many seconds: under overload every
#: waiting request would log it
POOL_LOG_INTERVAL = 10.0
_pool_logged_at = -POOL_LOG_INTERVAL
_pool_unlogged = 0

_INTERACTIONS: sa.Table = Interaction.__table__  # type: ignore[attr-defined]
_OUTBOX: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]
_REPLIES: sa.Table = WebhookReply.__table__  # type: ignore[attr-defined]
_TOKENS: sa.Table = SeenToken.__table__  # type: ignore[attr-defined]
_ATTEMPTS: sa.Table = AttemptRow.__table__  # type: ignore[attr-defined]


@asynccontextmanager
async def database_errors(timeout_seconds: float | None) -> AsyncIterator[None]:
    """The one place where a failure of the database becomes :class:`DatabaseUnavailable`:
    the server down, the file locked by another process, the disk full, or no answer within
    *timeout_seconds* (None: no limit).

    A broken constraint (:class:`IntegrityError`) is not an outage: it passes through for
    the store's own methods to turn into what it means (a concurrent version, a replay)."""
    try:
        async with asyncio.timeout(timeout_seconds):
            yield
    except IntegrityError:
        raise
    except PoolTimeout as exc:
        _pool_exhausted(exc)
        raise DatabaseUnavailable(f"no free database connection: {exc}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:  # a disconnect: SQLAlchemy has emptied the pool
            raise ConnectionLost(str(exc) or type(exc).__name__) from exc
        raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc


def _pool_exhausted(exc: PoolTimeout) -> None:
    global _pool_logged_at, _pool_unlogged
    now = time.monotonic()
    if now - _pool_logged_at < POOL_LOG_INTERVAL:
        _pool_unlogged += 1
        return
    log.error(
        "database.pool_exhausted",
        error=str(exc).split("(Background", 1)[0].strip(),
        also_since_last_line=_pool_unlogged,
        hint="every connection of this process was busy for the whole wait: the database is "
        "slow or SWITCHBOARD_DB_POOL_SIZE is too small for the load; keep replicas × pool "
        "size + replicas (LISTEN) under PostgreSQL's max_connections",
    )
    _pool_logged_at, _pool_unlogged = now, 0


def insert_ignoring_duplicates(dialect: str, table: sa.Table, keys: Sequence[str]) -> Any:
    # only the dialect in use is imported: PostgreSQL's costs a SQLite command 25 ms
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))


@dataclass(frozen=True, slots=True)
class _Statements:
    """Built once per dialect: the hot path passes only parameters (compiled-cache hits)."""

    add_interaction: Any
    add_reply: Any
    add_token: Any
    add_forward: Any
    add_attempt: Any
    #: The new interaction's id comes back by RETURNING (PostgreSQL), else as the cursor's
    #: lastrowid (SQLite: no result rows to fetch, which would cost one more trip to
    #: aiosqlite's thread on every call)
    returns_id: bool


@cache
def _statements(dialect: str) -> _Statements:
    add_interaction = insert_ignoring_duplicates(dialect, _INTERACTIONS, ("channel", "provider_id"))
    returns_id = dialect != "sqlite"
    return _Statements(
        add_interaction=(
            add_interaction.returning(_INTERACTIONS.c.id) if returns_id else add_interaction
        ),
        add_reply=insert_ignoring_duplicates(dialect, _REPLIES, ("provider_id", "step")),
        add_token=insert_ignoring_duplicates(dialect, _TOKENS, ("provider", "token")),
        add_forward=sa.insert(_OUTBOX),
        add_attempt=sa.insert(_ATTEMPTS),
        returns_id=returns_id,
    )


class UnitOfWork:
    """``async with store.unit_of_work() as uow:`` — commits when the block ends normally,
    rolls back when it raises. On SQLite it takes its turn in a transaction shared with the
    units of work that arrive with it (:mod:`router.store.group_commit`), and the block ends
    once that transaction is committed."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._stack = AsyncExitStack()
        self._connection: AsyncConnection | None = None
        self._member: Member | None = None
        self._sql = _statements(store.engine.dialect.name)

    @property
    def timeout_seconds(self) -> float:
        """The budget of the whole unit of work (the service holds it to that)."""
        return self._store.timeout_seconds

    async def __aenter__(self) -> Self:
        # the store's transaction is guarded: a failure on connecting, inside the block or
        # on commit becomes DatabaseUnavailable, within the store's timeout. A fresh stack
        # each time: a unit of work rolled back for another's failure is entered again.
        self._stack = AsyncExitStack()
        self._connection, self._member = await self._stack.enter_async_context(
            self._store.contact_transaction()
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        self._connection = self._member = None
        return await self._stack.__aexit__(exc_type, exc, traceback)

    @property
    def connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._connection

    # -- writes --------------------------------------------------------------------------

    async def _write(self, statement: Any, parameters: dict[str, Any]) -> Any:
        """Run a write, telling a shared transaction whether it changed anything: a unit of
        work that fails having written nothing leaves the others in it untouched."""
        member = self._member
        if member is None:
            return await self.connection.execute(statement, parameters)
        member.writing = True  # stays set if the statement fails or is cancelled
        result = await self.connection.execute(statement, parameters)
        member.writing = False
        if result.rowcount:
            member.wrote = True
        return result

    async def add_interaction(self, row: NewInteraction) -> int | None:
        """Insert *row*; its id, or None when its provider id was recorded before."""
        result = await self._write(self._sql.add_interaction, row.values())
        if self._sql.returns_id:
            added = result.scalar_one_or_none()
            return None if added is None else int(added)
        # SQLite: nothing inserted (the conflict) leaves rowcount 0 and lastrowid stale
        return int(result.lastrowid) if result.rowcount == 1 else None

    async def add_forward(self, interaction_id: int, forward: NewForward) -> None:
        await self._write(
            self._sql.add_forward, {**forward.values(), "interaction_id": interaction_id}
        )

    async def add_attempt(self, interaction_id: int, attempt: NewAttempt) -> None:
        await self._write(
            self._sql.add_attempt, {**attempt.values(), "interaction_id": interaction_id}
        )

    async def add_reply(self, reply: Reply) -> bool:
        """Keep the answer given; False when this step was answered before (a retry, maybe
        racing the first request: the first answer stands)."""
        result = await self._write(self._sql.add_reply, reply.values())
        return bool(result.rowcount)

    async def update_interaction(
        self, interaction_id: int, progress: CallProgress, now: datetime
    ) -> None:
        """Set what *progress* changes on a call's interaction, and when."""
        await self._write(
            sa.update(_INTERACTIONS).where(_INTERACTIONS.c.id == interaction_id),
            {**progress.changes(), "updated_at": now},
        )

    async def mark_token_seen(self, provider: str, token: str, now: datetime) -> bool:
        """Record a provider's one-time token; False when it was seen before (a replay)."""
        result = await self._write(
            self._sql.add_token, {"provider": provider, "token": token, "seen_at": now}
        )
        return bool(result.rowcount)

    # -- reads within the transaction ----------------------------------------------------

    async def contact(self, channel: str, provider_id: str) -> StoredContact | None:
        """The interaction recorded under *provider_id* on *channel*, if any."""
        columns = _INTERACTIONS.c
        query = sa.select(
            columns.id,
            columns.category,
            columns.destination,
            columns.reason,
            columns.conversation_id,
            columns.provider_id,
            columns.outcome,
            columns.decided_at,
            columns.fallback_dialled_at,
        ).where(columns.channel == channel, columns.provider_id == provider_id)
        row = (await self.connection.execute(query)).first()
        if row is None:
            return None
        interaction_id, category, destination, reason, conversation, provider, outcome = row[:7]
        return StoredContact(
            interaction_id,
            category,
            destination,
            reason,
            conversation,
            provider,
            Outcome(outcome) if outcome else None,
            decided_at=row.decided_at,
            fallback_dialled_at=row.fallback_dialled_at,
        )

    async def reply(self, provider_id: str, step: str) -> str | None:
        """The answer given before to this very request, if any."""
        columns = _REPLIES.c
        query = sa.select(columns.body).where(
            columns.provider_id == provider_id, columns.step == step
        )
        body: str | None = await self.connection.scalar(query)
        return body

    async def thread_start(
        self, channel: str, *, references: Sequence[str] = (), conversation_id: str | None = None
    ) -> tuple[Category, str] | None:
        """The category and conversation id of the thread a message belongs to: the earliest
        interaction among *references* (an email's In-Reply-To/References), else the first
        of *conversation_id* (a chat)."""
        columns = _INTERACTIONS.c
        condition: sa.ColumnElement[bool]
        if references:
            condition = columns.provider_id.in_(list(references))
        elif conversation_id is not None:
            condition = columns.conversation_id == conversation_id
        else:
            return None
        query = (
            sa.select(columns.category, columns.conversation_id, columns.provider_id)
            .where(columns.channel == channel, condition)
            .order_by(columns.id)
            .limit(1)
        )
        row = (await self.connection.execute(query)).first()
        if row is None:
            return None
        category, conversation, provider_id = row
        return Category(category), conversation or provider_id
