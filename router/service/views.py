"""JSON shapes shared by the CLI (``--format json``) and the HTTP API, so they never drift.

Each shape is a pydantic model, and the functions here build the model and dump it, so what
is printed or answered is exactly what the model declares: the OpenAPI document
(``router.web.openapi``) publishes these models' JSON schemas, and a key the model does not
know cannot be answered (the models forbid extra keys). Times are ISO 8601 in UTC.

Pure: rows and values in, JSON-able dicts out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, RootModel, WithJsonSchema

from router.core.contact import Category
from router.core.document import Change as DocumentChange
from router.core.migration import CancelledReturn, VersionFacts
from router.core.migration import Impact as ReplayedImpact
from router.core.problems import Problem as FoundProblem
from router.core.traffic import Traffic as HourlyTraffic
from router.service.records import (
    AttemptRecord,
    ForwardRecord,
    HeldConversations,
    InteractionRecord,
    PlanStepRecord,
)

if TYPE_CHECKING:  # the classifier costs a command that never classifies 25 ms to import
    from router.core.classify import Classification as Classified


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


Timestamp = Annotated[
    datetime,
    PlainSerializer(iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

# Text read back from the database, documented as one of the values written today but not
# checked: a row written by another release (a new kind of version) must still print, not
# turn `config history` into a traceback.
Kind = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "enum": ["apply", "cutover", "rollback", "resume", "plan", "revert"]}
    ),
]
StepStatus = Annotated[
    str, WithJsonSchema({"type": "string", "enum": ["pending", "done", "cancelled"]})
]
#: A share as people write it: 25, not 25.0 (the int is kept as it comes).
WholeOrPercent = Annotated[int | float, Field(ge=0, le=100)]
Number = int | float  # kept as it comes: a weight of 2 is printed 2, not 2.0
Counts = dict[str, dict[str, int]]


class Answer(BaseModel):
    """A JSON shape Switchboard prints or answers: a key it does not declare is an error."""

    # defer_build: a model's validator is built when first used, not at import, so a
    # command that prints one answer (a rollback) does not pay for all of them
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        return data


# -- errors --------------------------------------------------------------------------------


class Error(Answer):
    error: str


class Problem(Answer):
    path: str
    message: str


class Invalid(Error):
    problems: list[Problem] = Field(description="every problem, by path")


def error_json(message: str, problems: Sequence[FoundProblem] | None = None) -> dict[str, Any]:
    """``{"error"}``, or with *problems* ``{"error", "problems": [{"path", "message"}]}``."""
    if problems is None:
        return Error(error=message).as_json()
    listed = [Problem(path=p.path, message=p.message) for p in problems]
    return Invalid(error=message, problems=listed).as_json()


# -- versions ------------------------------------------------------------------------------


class Version(Answer):
    """A version as ``config history --format json`` prints it."""

    version: int
    kind: Kind
    actor: str = Field(description="the token name, CLI user, scheduler or guard")
    reason: str
    created_at: Timestamp


class Change(Version):
    """A version just made. Keys that do not apply are left out, not null."""

    until: Timestamp | None = Field(
        default=None, description="when a timed rollback ends by itself"
    )
    changed: bool | None = Field(
        default=None,
        description="PUT /api/routing only: false when the document equals the current one "
        "(nothing stored)",
    )

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        return data


def _version_fields(row: VersionFacts) -> dict[str, Any]:
    return {
        "version": row.version,
        "kind": row.kind,
        "actor": row.actor,
        "reason": row.reason,
        "created_at": row.created_at,
    }


def version_json(row: VersionFacts) -> dict[str, Any]:
    """A version as ``config history --format json`` prints it."""
    return Version.model_validate(_version_fields(row)).as_json()


def change_json(row: VersionFacts, *, changed: bool | None = None) -> dict[str, Any]:
    """A version just made; a timed rollback says until when."""
    return Change.model_validate(
        {**_version_fields(row), "until": row.expires_at, "changed": changed}
    ).as_json()


# -- status --------------------------------------------------------------------------------


class ChannelShares(Answer):
    admin: WholeOrPercent
    product: WholeOrPercent
    unknown: WholeOrPercent


class Shares(Answer):
    """channel -> category -> percentage of customers on target routing"""

    phone: ChannelShares
    email: ChannelShares
    chat: ChannelShares


class RollbackInForce(Answer):
    version: int
    reason: str
    actor: str
    since: Timestamp
    until: Timestamp | None = Field(description="null: until someone changes routing")
    channel: str | None = Field(description="null: every channel")
    restores: int | None


class ReturnCancelled(Answer):
    """A timed rollback whose automatic return a later change cancelled."""

    rollback_version: int
    would_have_ended: Timestamp
    cancelled_by_version: int
    actor: str
    reason: str


class PendingStep(Answer):
    id: int | None
    at: Timestamp
    reason: str
    cutover: dict[str, dict[str, WholeOrPercent]] = Field(
        description="only the shares named change"
    )
    held_by_rollback: bool


class OutboxDepth(Answer):
    pending: int
    failed: int


class HeldConversation(Answer):
    """A conversation the partner still holds (it comes back in-house with its next
    message)."""

    conversation_id: str | None
    channel: str
    destination: str
    last_contact_at: Timestamp
    interaction_id: int | None


#: Held conversations status lists by default, newest first; all are counted. After weeks
#: on the partner they number in the hundred thousands: a list nobody reads at 3 a.m.
#: that took seconds to build (bench/RESULTS.md, scaling). ``--conversations all`` lists
#: every one.
STATUS_CONVERSATIONS = 100


class Status(Version):
    """What ``status --format json`` and ``GET /api/status`` show."""

    cutover: Shares
    rollback: RollbackInForce | None
    rollback_return_cancelled: ReturnCancelled | None
    plan: list[PendingStep]
    outbox: OutboxDepth
    partner_conversations: list[HeldConversation] = Field(
        description="The newest conversations the partner still holds (all with "
        "`conversations=all`), newest first."
    )
    partner_conversations_count: int = Field(
        description="How many conversations the partner still holds, listed or not."
    )


def status_json(
    current: VersionFacts,
    *,
    shares: dict[str, dict[str, float]],
    in_force: VersionFacts | None,
    cancelled: CancelledReturn | None,
    steps: Iterable[PlanStepRecord],
    outbox: dict[str, int],
    held: HeldConversations,
    now: datetime,
) -> dict[str, Any]:
    """*current* with the state around it; a step already due is held by a rollback."""
    status = Status(
        **_version_fields(current),
        cutover=Shares.model_validate(shares),
        rollback=None if in_force is None else _rollback(in_force),
        rollback_return_cancelled=None if cancelled is None else _cancelled(cancelled),
        plan=[
            PendingStep(
                id=step.id,
                at=step.due_at,
                reason=step.reason,
                cutover=json.loads(step.cutover),
                held_by_rollback=in_force is not None and step.due_at <= now,
            )
            for step in steps
        ],
        outbox=OutboxDepth.model_validate(outbox),
        partner_conversations=[
            HeldConversation(
                conversation_id=row.conversation_id,
                channel=row.channel,
                destination=row.destination,
                last_contact_at=row.received_at,
                interaction_id=row.id,
            )
            for row in held.newest
        ],
        partner_conversations_count=held.count,
    )
    return status.as_json()


def _rollback(record: VersionFacts) -> RollbackInForce:
    return RollbackInForce(
        version=record.version,
        reason=record.reason,
        actor=record.actor,
        since=record.created_at,
        until=record.expires_at,
        channel=record.channel,
        restores=record.restores,
    )


def _cancelled(cancelled: CancelledReturn) -> ReturnCancelled:
    return ReturnCancelled(
        rollback_version=cancelled.rollback,
        would_have_ended=cancelled.would_have_ended,
        cancelled_by_version=cancelled.cancelled_by,
        actor=cancelled.actor,
        reason=cancelled.reason,
    )


# -- changes, previews ---------------------------------------------------------------------


class DiffEntry(Answer):
    model_config = ConfigDict(populate_by_name=True)

    path: str
    from_: Any = Field(alias="from", description="null where the leaf is absent")
    to: Any = Field(description="null where the leaf is absent")


class Diff(RootModel[list[DiffEntry]]):
    """Leaf-level differences between two versions' documents."""


def diff_json(changes: Iterable[DocumentChange]) -> list[dict[str, Any]]:
    return [DiffEntry(path=c.path, from_=c.old, to=c.new).as_json() for c in changes]


class Impact(Answer):
    """What a cut-over would have changed: recorded contacts replayed; nothing stored."""

    dry_run: Literal[True]
    version: int = Field(description="the version compared against")
    days: int = Field(description="days of recorded contacts replayed")
    contacts: int = Field(description="recorded contacts replayed")
    moved: Counts = Field(description="channel -> day -> contacts that would go elsewhere")
    moves: Counts = Field(description='channel -> "from -> to" -> contacts')


def impact_json(version: int, days: int, impact: ReplayedImpact) -> dict[str, Any]:
    return Impact(
        dry_run=True,
        version=version,
        days=days,
        contacts=impact.contacts,
        moved=impact.moved,
        moves=impact.moves,
    ).as_json()


# -- the classifier ------------------------------------------------------------------------


class RuleMatch(Answer):
    rule: str
    category: Category
    weight: Number


class Classification(Answer):
    """As ``classify --format json`` prints it."""

    category: Category
    confidence: float
    language: str | None
    matches: list[RuleMatch]


def classification_json(result: Classified, language: str | None) -> dict[str, Any]:
    return Classification(
        category=result.category,
        confidence=result.confidence,
        language=language,
        matches=[
            RuleMatch(rule=m.rule, category=m.category, weight=m.weight) for m in result.matches
        ],
    ).as_json()


# -- records -------------------------------------------------------------------------------


class RecordedInteraction(Answer):
    """One routed contact, as ``interactions --format json`` prints it."""

    id: int | None
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
    received_at: Timestamp
    decided_at: Timestamp
    updated_at: Timestamp
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
    feedback_at: Timestamp | None
    handle_seconds: int | None = Field(
        default=None,
        description="a call's time connected to the destination that answered "
        "(DialCallDuration), the handle time staffing uses",
    )
    answer_seconds: float | None = Field(
        default=None,
        description="a call's time from the answered <Dial> being given to the agent "
        "answering, the time to answer sla uses",
    )
    fallback_dialled_at: Timestamp | None = Field(
        default=None, description="when the fallback <Dial> was given, after the first failed"
    )


def interaction_json(row: InteractionRecord) -> dict[str, Any]:
    return RecordedInteraction.model_validate(row, from_attributes=True).as_json()


class ScheduledStep(Answer):
    """A plan step as stored: pending, done (with the version it became) or cancelled."""

    id: int | None
    at: Timestamp
    reason: str
    cutover: dict[str, dict[str, WholeOrPercent]] = Field(
        description="only the shares named change"
    )
    status: StepStatus
    created_by: str
    created_at: Timestamp
    version: int | None


class PlanScheduled(Answer):
    scheduled: list[ScheduledStep]


class PlanCancelled(Answer):
    cancelled: int = Field(description="pending steps dropped")


def step_json(row: PlanStepRecord) -> dict[str, Any]:
    return ScheduledStep(
        id=row.id,
        at=row.due_at,
        reason=row.reason,
        cutover=json.loads(row.cutover),
        status=row.status,
        created_by=row.created_by,
        created_at=row.created_at,
        version=row.version,
    ).as_json()


def outbox_json(row: ForwardRecord) -> dict[str, Any]:
    """A forward without its payload (message bodies are not shown)."""
    return {
        "id": row.id,
        "interaction_id": row.interaction_id,
        "kind": row.kind,
        "destination": row.destination,
        "address": row.address,
        "stage": row.stage,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at),
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "delivered_at": iso(row.delivered_at) if row.delivered_at else None,
    }


# -- one interaction, everything about it ---------------------------------------------------


class Attempt(Answer):
    """One dial, delivery, voicemail or recording of a contact, in the order they happened."""

    at: Timestamp
    kind: Annotated[
        str,
        WithJsonSchema({"type": "string", "enum": ["dial", "delivery", "voicemail", "recording"]}),
    ]
    number: int = Field(description="a dial's 1 or 2 (fallback); a forward's attempt number")
    destination: str
    address: str | None
    status: str = Field(
        description="dial: DialCallStatus; delivery: delivered, pending (retried) or failed; "
        "voicemail and recording: recorded/completed or absent"
    )
    error: str | None = Field(description="a failed delivery's error (emptied by retention)")
    seconds: int | None = Field(description="talk time of an answered dial, a recording's length")
    url: str | None = Field(description="a recording's URL (emptied by retention)")
    provider_ref: str | None = Field(description="the provider's id of it (RecordingSid)")


class Feedback(Answer):
    """What the partner reported about the contact (``/webhooks/partner/feedback``)."""

    outcome: str
    rating: int | None
    comment: str | None = Field(description="card numbers masked; emptied by retention")
    at: Timestamp | None


class Recording(Answer):
    kind: Literal["voicemail", "call"]
    url: str
    at: Timestamp | None
    seconds: int | None


class ForwardState(Answer):
    """The outbox forward of an email or chat contact: where it stands, never its body."""

    id: int
    kind: str
    destination: str
    address: str
    stage: str
    status: str
    attempts: int
    last_error: str | None
    created_at: Timestamp
    delivered_at: Timestamp | None


class InteractionDetail(Answer):
    """Everything about one contact (``interactions show ID``, ``GET
    /api/interactions/{id}``): the recorded row with its decision and outcome, its attempts
    in order, the partner's feedback, the recordings, and its forwards' state."""

    interaction: RecordedInteraction
    attempts: list[Attempt]
    feedback: Feedback | None
    recordings: list[Recording] = Field(
        description="the voicemail and the dialled call's recordings, oldest first"
    )
    forwards: list[ForwardState]


def interaction_detail_json(
    row: InteractionRecord, attempts: Sequence[AttemptRecord], forwards: Sequence[ForwardRecord]
) -> dict[str, Any]:
    recordings = [
        Recording(kind="call", url=item.url, at=item.at, seconds=item.seconds)
        for item in attempts
        if item.kind == "recording" and item.url
    ]
    if row.recording_url:
        voicemail = next((item for item in attempts if item.kind == "voicemail"), None)
        recordings.append(
            Recording(
                kind="voicemail",
                url=row.recording_url,
                at=voicemail.at if voicemail else None,
                seconds=voicemail.seconds if voicemail else None,
            )
        )
    recordings.sort(key=lambda item: (item.at is None, item.at))
    feedback = (
        None
        if row.partner_outcome is None
        else Feedback(
            outcome=row.partner_outcome,
            rating=row.partner_rating,
            comment=row.partner_comment,
            at=row.feedback_at,
        )
    )
    return InteractionDetail(
        interaction=RecordedInteraction.model_validate(row, from_attributes=True),
        attempts=[Attempt.model_validate(item, from_attributes=True) for item in attempts],
        feedback=feedback,
        recordings=recordings,
        forwards=[ForwardState.model_validate(item, from_attributes=True) for item in forwards],
    ).as_json()


# -- traffic -------------------------------------------------------------------------------


class HourOfTraffic(Answer):
    start: Timestamp
    counts: Counts = Field(description="destination -> channel -> contacts")


class Traffic(Answer):
    """Contacts per hour by destination and channel (the console's chart)."""

    since: Timestamp = Field(description="start of the first hour (UTC)")
    until: Timestamp = Field(description="end of the last hour (the current one)")
    hours: int
    destinations: dict[str, Literal["external", "in_house", "unknown", "none"]] = Field(
        description='destination -> its kind; "" (kind none) counts the calls abandoned in '
        "the IVR menu, a destination no longer in the document is unknown"
    )
    buckets: list[HourOfTraffic] = Field(
        description="every hour of the window, oldest first, empty ones too"
    )


def traffic_json(traffic: HourlyTraffic) -> dict[str, Any]:
    return Traffic(
        since=traffic.since,
        until=traffic.until,
        hours=len(traffic.buckets),
        destinations=traffic.destinations,
        buckets=[HourOfTraffic(start=start, counts=counts) for start, counts in traffic.buckets],
    ).as_json()
