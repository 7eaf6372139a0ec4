"""The tables (SQLModel).

The schema's one description: Alembic migrations (router/store/migrations) follow it, and a
test checks that they agree. Nothing outside router/store imports these classes: the store
turns their rows into the records of router/service/records.py before they leave it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


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
        # the guard: contacts sent to external destinations in its window
        sa.Index(
            "ix_interactions_first_destination_received_at", "first_destination", "received_at"
        ),
        # status: each conversation's last contact in a window; a chat's thread look-up
        sa.Index("ix_interactions_conversation_id_received_at", "conversation_id", "received_at"),
        # the archive's searches, newest (received_at, id) first: one customer, one destination
        sa.Index("ix_interactions_customer_hash_received_at", "customer_hash", "received_at", "id"),
        sa.Index("ix_interactions_destination_received_at", "destination", "received_at", "id"),
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
    conversation_id: str | None = None  # email thread, chat (indexed with received_at)
    partner_outcome: str | None = None  # what the partner reported (webhooks/partner/feedback)
    partner_rating: int | None = None
    partner_comment: str | None = None  # card numbers masked
    feedback_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # DialCallDuration of the answered <Dial>: the caller's time with an agent (0006)
    handle_seconds: int | None = None
    # a call's time to answer: from the answered <Dial> being given to the agent answering
    # (0008), and when the fallback <Dial> was given, from which a fallback's is measured
    answer_seconds: float | None = None
    fallback_dialled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OutboxRow(SQLModel, table=True):
    """A forward waiting for delivery (email to a mailbox, chat hand-off over HTTP).

    Written in the same transaction as its interaction; the payload is deleted once
    delivered. The fallback is resolved when the row is written."""

    __tablename__ = "outbox"
    __table_args__ = (
        # the worker's claim: the pending rows due first, read in index order up to its
        # batch, however many wait (an SMTP outage leaves hundreds of thousands)
        sa.Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )

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
    status: str = "pending"
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


class AttemptRow(SQLModel, table=True):
    """One thing that happened to a contact after routing: a dial, a delivery attempt, a
    voicemail, a call recording; written with the state change it records (0007)."""

    __tablename__ = "attempts"

    id: int | None = Field(default=None, primary_key=True)
    interaction_id: int = Field(foreign_key="interactions.id", index=True)
    at: datetime = Field(sa_type=UTCDateTime)
    kind: str  # dial | delivery | voicemail | recording
    number: int  # the attempt's number (a dial's 1 or 2, a forward's attempts so far + 1)
    destination: str
    address: str | None = None
    status: str  # DialCallStatus, delivered/pending/failed, RecordingStatus
    error: str | None = None  # a failed delivery's error; emptied by retention
    seconds: int | None = None  # DialCallDuration, RecordingDuration
    url: str | None = None  # a recording's URL; emptied by retention
    provider_ref: str | None = None  # RecordingSid: a repeated callback is recognised


class ScheduledRun(SQLModel, table=True):
    """A job's run for one period (``retention`` per UTC day): inserted, with ON CONFLICT DO
    NOTHING, in the transaction that does the work, so only one replica does it (0007)."""

    __tablename__ = "scheduled_runs"

    job: str = Field(primary_key=True)
    period: str = Field(primary_key=True)
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    counts: str | None = None  # JSON: what the run did


def metadata() -> sa.MetaData:
    return SQLModel.metadata
