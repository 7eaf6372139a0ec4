"""The service's ports: what it needs from the outside world, named for their role.

The store, the senders (SMTP, chat hand-offs) and the clock are adapters behind these
names. Nothing here imports the store, SQLAlchemy, aiohttp or a vendor's package, so the
integrations can implement a port without reaching the database. The store satisfies its
ports (:class:`VersionRecords`, :class:`Forwards`) structurally, with the typed rows of
:mod:`router.service.records`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from router.core.contact import Category
from router.service.records import (
    FailedAttempt,
    ForwardRecord,
    NewAttempt,
    NewForward,
    NewInteraction,
    Reply,
    StoredContact,
    VersionRecord,
)

if TYPE_CHECKING:  # an annotation only: deciding a call (and its classifier) stays unimported
    from router.core.calls import CallProgress

#: Now, as an aware datetime; the application's one clock (tests move it).
Clock = Callable[[], datetime]


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached or written (an outage, not bad input)."""


class RolledBack(DatabaseUnavailable):
    """Nothing of this unit of work was kept, through no fault of its own or of the
    database: the transaction it shared (SQLite's group commit) was rolled back because
    another unit of work in it failed. Running it again is expected to succeed."""


class ConnectionLost(DatabaseUnavailable):
    """The connection broke under this unit of work (the server closed it, or turned
    read-only in a failover), and the pool has been emptied: run again, it gets a new
    connection, and when the server is really gone that one fails plainly. Nothing of a
    rolled-back unit of work was kept; one whose commit went through before the break is
    recognised by its provider id when run again."""


class TokenReplayed(RuntimeError):
    """A provider token (Mailgun's) was accepted before: the request is a replay."""


class StaleVersion(RuntimeError):
    """Someone else changed routing between reading the current version and writing."""

    def __init__(self, expected: int | None, current: int | None) -> None:
        super().__init__(
            f"routing changed meanwhile: expected version {expected}, current is {current}"
        )
        self.expected = expected
        self.current = current


@dataclass(frozen=True, slots=True)
class Delivery:
    """One forward as a sender sees it."""

    outbox_id: int
    interaction_id: int
    kind: str
    destination: str
    address: str
    external: bool  # mask card numbers: the destination is outside the shop
    payload: bytes
    meta: Mapping[str, Any]


class DeliveryError(Exception):
    """A failed attempt; *permanent* skips the remaining retries (SMTP 5xx, HTTP 4xx)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sender(Protocol):
    """Delivers one kind of forward (email, chat); the outbox worker calls it."""

    async def send(self, delivery: Delivery) -> None:
        """Deliver or raise :class:`DeliveryError`."""


class VersionRecords(Protocol):
    """The routing versions, newest last; a version, once stored, never changes."""

    async def current_version(self) -> VersionRecord | None: ...

    async def version(self, number: int) -> VersionRecord | None: ...

    async def history(self, limit: int | None = None) -> Sequence[VersionRecord]: ...

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
        """Store the version after the current one; with *expected_current*, raise
        :class:`StaleVersion` when the current one is another (someone changed routing)."""
        ...


class Forwards(Protocol):
    """The outbox as the delivery worker sees it: due forwards, leased, and their results."""

    async def claim_outbox(
        self,
        *,
        now: datetime,
        lease: timedelta,
        limit: int,
        kinds: Sequence[str],
        busy: Sequence[tuple[str, str]] = (),
    ) -> list[ForwardRecord]:
        """Lease up to *limit* due forwards of *kinds*, none of a (kind, destination) pair
        in *busy*."""
        ...

    async def outbox_settled(
        self,
        *,
        delivered: Sequence[ForwardRecord],
        failed: Sequence[tuple[ForwardRecord, FailedAttempt]],
        now: datetime,
    ) -> None:
        """Record the outcomes of attempts on claimed rows, all in one transaction: sent rows
        delivered (if still pending), failed ones changed while this worker's lease holds."""
        ...


class ContactUnitOfWork(Protocol):
    """One transaction in which a contact, or a call's next step, is recorded: everything
    written inside ``async with`` commits together or not at all (SPEC §7). A write that
    collides with an earlier one (a provider's retry) reports it instead of failing, so the
    caller can answer as the first time.

    A unit of work may be entered again after it ended (to run it once more when it was
    :class:`RolledBack`)."""

    #: The budget, in seconds, of everything the database does for one request: waiting for
    #: it, writing, committing (``SWITCHBOARD_DB_TIMEOUT``).
    @property
    def timeout_seconds(self) -> float: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None: ...

    async def add_interaction(self, row: NewInteraction) -> int | None:
        """The new interaction's id, or None when its provider id was recorded before."""
        ...

    async def add_forward(self, interaction_id: int, forward: NewForward) -> None: ...

    async def add_attempt(self, interaction_id: int, attempt: NewAttempt) -> None:
        """Log a dial, voicemail or recording with the state change it records."""
        ...

    async def add_reply(self, reply: Reply) -> bool:
        """False when this step was answered before (the first answer stands)."""
        ...

    async def update_interaction(
        self, interaction_id: int, progress: CallProgress, now: datetime
    ) -> None: ...

    async def mark_token_seen(self, provider: str, token: str, now: datetime) -> bool:
        """False when the token was seen before (a replay)."""
        ...

    async def contact(self, channel: str, provider_id: str) -> StoredContact | None: ...

    async def reply(self, provider_id: str, step: str) -> str | None: ...

    async def thread_start(
        self, channel: str, *, references: Sequence[str] = (), conversation_id: str | None = None
    ) -> tuple[Category, str] | None:
        """The category and conversation id of the thread a message belongs to, if any."""
        ...
