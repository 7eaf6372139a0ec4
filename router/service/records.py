"""The typed rows that cross between the service and the store, both ways.

To the store: a contact's interaction, its forwards (outbox rows), the answer given to the
provider, new plan steps and tokens, and the changes a failed delivery or a partner's report
make. From the store: routing versions, interactions, forwards, plan steps and tokens as
they were read.

Plain frozen dataclasses (enums where the service chooses a state), so nothing between the
service and the store travels as an ORM object or an untyped dict; :meth:`values` gives the
column values the store inserts. The rows read back keep the column names and stored text
the callers (views, CLI, API) read, so they print exactly as the tables did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from router.core.contact import Category, CategorySource, Channel, Reason, Side
from router.core.delivery import Stage
from router.core.lifecycle import ForwardStatus, Outcome

#: The largest integer a row holds (SQLite's INTEGER, PostgreSQL's bigint): no id, version
#: or count can exceed it, and a driver cannot even bind a larger one (OverflowError), so
#: every number that reaches the store from outside is bounded by it first.
MAX_ROW_INTEGER = 2**63 - 1


class _Row:
    __slots__ = ()

    def values(self) -> dict[str, Any]:
        """Column → value, enums as their stored text."""
        return {
            field.name: _stored(getattr(self, field.name))
            for field in fields(self)  # type: ignore[arg-type]
        }


def _stored(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


@dataclass(frozen=True, slots=True)
class NewInteraction(_Row):
    """One contact as it is first recorded (``interactions``)."""

    channel: Channel
    provider_id: str
    customer_hash: str
    category: Category
    category_source: CategorySource
    rule: str | None
    confidence: float | None
    side: Side
    destination: str
    first_destination: str
    reason: Reason
    version: int
    bucket: float
    language: str | None
    received_at: datetime
    decided_at: datetime
    updated_at: datetime
    outcome: Outcome
    delivery_failed: bool = False
    conversation_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewForward(_Row):
    """A forward due now (``outbox``): the fallback is resolved when it is written."""

    kind: Channel
    destination: str
    address: str
    external: bool
    fallback: str | None
    fallback_address: str | None
    fallback_external: bool
    payload: bytes
    meta: str  # JSON: what the sender needs besides the payload
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    stage: Stage = Stage.PRIMARY
    status: ForwardStatus = ForwardStatus.PENDING
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Reply(_Row):
    """The answer given to one provider request (provider id + step = path and query), kept
    so that a retry of the very same request gets the very same answer."""

    provider_id: str
    step: str
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Target:
    """Where a forward goes: a destination's name, its address on the channel, and whether
    it is outside the shop (card numbers are masked toward it)."""

    destination: str
    address: str
    external: bool


def new_forward(
    channel: Channel,
    to: Target,
    payload: bytes,
    meta: Mapping[str, Any],
    now: datetime,
    *,
    fallback: Target | None = None,
) -> NewForward:
    return NewForward(
        kind=channel,
        destination=to.destination,
        address=to.address,
        external=to.external,
        fallback=fallback.destination if fallback else None,
        fallback_address=fallback.address if fallback else None,
        fallback_external=fallback.external if fallback else False,
        payload=payload,
        meta=json.dumps(dict(meta)),
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )


@dataclass(frozen=True, slots=True)
class NewPlanStep(_Row):
    """A scheduled cut-over step as it is first recorded (``plan_steps``), pending."""

    due_at: datetime
    reason: str
    cutover: str  # JSON {channel: {category: percent}}
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewToken(_Row):
    """An operator's bearer token as it is first recorded: only its hash is kept."""

    name: str
    role: str
    token_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """What one failed delivery attempt changes (None: unchanged): on the forward, and on its
    interaction. *redirect* sends the forward to its fallback, and the interaction with it."""

    status: ForwardStatus
    last_error: str
    stage: Stage | None = None
    attempts: int | None = None
    next_attempt_at: datetime | None = None
    redirect: Target | None = None
    outcome: Outcome | None = None  # the interaction's, where the lifecycle allows the move
    delivery_failed: bool | None = None  # the interaction's: the guard counts it a failure


class AttemptKind(StrEnum):
    """What an attempt row records (``attempts.kind``)."""

    DIAL = "dial"  # a <Dial> ended: its DialCallStatus, and talk time when answered
    DELIVERY = "delivery"  # an outbox send: delivered, or its error and what comes next
    VOICEMAIL = "voicemail"  # the caller's message was recorded (or they hung up first)
    RECORDING = "recording"  # a dialled call's recording is ready (destination record: true)


@dataclass(frozen=True, slots=True)
class NewAttempt(_Row):
    """One dial, delivery, voicemail or recording (``attempts``), written in the
    transaction of the state change it records; its interaction is named when it is added."""

    at: datetime
    kind: AttemptKind
    number: int
    destination: str
    status: str
    address: str | None = None
    error: str | None = None
    seconds: int | None = None
    url: str | None = None
    provider_ref: str | None = None


@dataclass(frozen=True, slots=True)
class InteractionSearch:
    """What ``interactions`` and ``GET /api/interactions`` look for; None: any. Newest
    (last received, then highest id) first, only the rows after *before* (the previous page's last
    row) in that order."""

    since: datetime | None = None
    channel: str | None = None
    customer_hash: str | None = None
    provider_id: str | None = None
    destination: str | None = None
    category: str | None = None
    outcome: str | None = None
    before: int | None = None
    limit: int | None = 100


@dataclass(frozen=True, slots=True)
class RetentionCursor:
    """Where retention's next batch starts: the last row id it looked at in each table, so
    a run over a large backlog reads each old row once, not once per batch."""

    interactions: int = 0
    attempts: int = 0
    outbox: int = 0


@dataclass(frozen=True, slots=True)
class RetentionCounts:
    """What retention emptied (or, on a dry run, would empty) of the contacts older than
    its window: forwards' bodies, recording links, partner comments, attempts' errors."""

    payloads: int = 0
    recordings: int = 0
    comments: int = 0
    errors: int = 0

    def __add__(self, other: RetentionCounts) -> RetentionCounts:
        return RetentionCounts(
            self.payloads + other.payloads,
            self.recordings + other.recordings,
            self.comments + other.comments,
            self.errors + other.errors,
        )

    @property
    def total(self) -> int:
        return self.payloads + self.recordings + self.comments + self.errors

    def as_json(self) -> dict[str, int]:
        return {
            "payloads": self.payloads,
            "recordings": self.recordings,
            "comments": self.comments,
            "errors": self.errors,
        }


@dataclass(frozen=True, slots=True)
class PartnerFeedback(_Row):
    """The partner's report on an interaction; a repeated report replaces every field."""

    partner_outcome: str
    partner_rating: int | None
    partner_comment: str | None  # card numbers masked
    feedback_at: datetime


# -- rows as the store gives them back --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredContact:
    """What a contact recorded earlier was answered with (a retry gets the same)."""

    interaction_id: int
    category: str
    destination: str
    reason: str
    conversation_id: str | None
    provider_id: str
    outcome: Outcome | None
    # when the <Dial> that may be ringing now was given: a call's time to answer runs from it
    decided_at: datetime | None = None  # the first dial's, with the route's answer
    fallback_dialled_at: datetime | None = None  # the fallback's, after the first failed

    def dialled_at(self, attempt: int) -> datetime | None:
        """When dial *attempt* (1: the first, 2: the fallback) was given to Twilio."""
        return self.decided_at if attempt == 1 else self.fallback_dialled_at


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One routing version (``routing_versions``); it satisfies the core's
    :class:`router.core.migration.VersionFacts` protocol."""

    version: int
    kind: str
    actor: str
    reason: str
    document: str  # canonical JSON of the routing document
    created_at: datetime
    restores: int | None  # rollback: the version resume brings back; resume: the one it did
    expires_at: datetime | None  # a timed rollback's end
    channel: str | None  # a rollback of one channel only


@dataclass(frozen=True, slots=True)
class InteractionRecord:
    """One recorded contact (``interactions``), every column in the table's order (the
    order ``interactions --format json`` prints)."""

    id: int
    channel: str
    provider_id: str
    customer_hash: str
    category: str
    category_source: str
    rule: str | None
    confidence: float | None
    side: str
    destination: str
    first_destination: str
    reason: str
    version: int
    bucket: float
    language: str | None
    received_at: datetime
    decided_at: datetime
    updated_at: datetime
    outcome: str | None
    delivery_failed: bool
    dial_status: str | None
    fallback_status: str | None
    call_status: str | None
    duration_seconds: int | None
    recording_url: str | None
    conversation_id: str | None
    partner_outcome: str | None
    partner_rating: int | None
    partner_comment: str | None
    feedback_at: datetime | None
    handle_seconds: int | None  # talk time of the answered <Dial> (DialCallDuration)
    answer_seconds: float | None  # from the answered <Dial> to the agent answering (0008)
    fallback_dialled_at: datetime | None  # when the fallback <Dial> was given (0008)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt (``attempts``) as it was read."""

    id: int
    interaction_id: int
    at: datetime
    kind: str
    number: int
    destination: str
    address: str | None
    status: str
    error: str | None
    seconds: int | None
    url: str | None
    provider_ref: str | None


@dataclass(frozen=True, slots=True)
class HeldConversations:
    """The conversations an external destination still holds: how many, and the newest
    ones asked for (their last contact each), newest first."""

    count: int
    newest: list[HeldRecord]


@dataclass(frozen=True, slots=True)
class HeldRecord:
    conversation_id: str | None
    channel: str
    destination: str
    received_at: datetime
    id: int


@dataclass(frozen=True, slots=True)
class ForwardRecord:
    """One forward (``outbox``) as it was read; *claimed_until* is the lease it was read
    under, which the worker's later update must still find."""

    id: int
    interaction_id: int
    kind: str
    destination: str
    address: str
    external: bool
    fallback: str | None
    fallback_address: str | None
    fallback_external: bool
    stage: str
    status: str
    attempts: int
    next_attempt_at: datetime
    claimed_until: datetime | None
    last_error: str | None
    payload: bytes | None  # None once delivered
    meta: str  # JSON
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class PlanStepRecord:
    """One scheduled cut-over step (``plan_steps``)."""

    id: int
    due_at: datetime
    reason: str
    cutover: str  # JSON {channel: {category: percent}}
    status: str  # pending | done | cancelled
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    version: int | None  # the version the step became


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An operator's bearer token (``api_tokens``): its hash, never the token."""

    name: str
    role: str
    token_hash: str
    created_at: datetime
    revoked_at: datetime | None
