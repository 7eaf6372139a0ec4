"""The service layer: what happens to routing versions and contacts, vendor-free.

Handlers (HTTP, CLI) call these functions; they combine the pure core (``decide``,
``document``) with the store. Provider answers are passed in as opaque text so that a
retried webhook can be answered byte-for-byte the same (SPEC §3).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from router.core.contact import Category, CategorySource, Channel, Contact, Reason, Side
from router.core.decide import Decision, bucket, categorize, decide, stored_bucket
from router.core.document import RoutingDocument, document_json, shipped_document, validate_document
from router.core.migration import (
    ChannelHealth,
    Impact,
    PlanStep,
    Recorded,
    cancelled_return,
    cut_over,
    guard_trips,
    impact,
    plan_rollback,
    return_due,
    rollback_in_force,
    shares_of,
    with_shares,
)
from router.core.report import Count, Report, build_report
from router.core.traffic import Traffic, hourly, window
from router.service.routing import ActiveRouting
from router.service.views import iso
from router.store import (
    DatabaseUnavailable,
    Interaction,
    PlanStepRow,
    RoutingVersion,
    StaleVersion,
    Store,
    TokenReplayed,
    claim_plan_step,
    insert_version,
    mark_step_version,
    newest_version,
)

log = structlog.get_logger(__name__)

SYSTEM_ACTOR = "system"


def customer_hash(secret: bytes, customer_key: str) -> str:
    """Keyed hash of a customer key; the raw number or address is never stored."""
    if not customer_key:
        return ""
    return hmac.new(secret, customer_key.encode("utf-8"), hashlib.sha256).hexdigest()


# -- routing versions ----------------------------------------------------------------------


async def ensure_initial_routing(store: Store, now: datetime) -> RoutingVersion:
    """The current version; on an empty database, the shipped document becomes version 1."""
    row = await store.current_version()
    if row is not None:
        return row
    try:
        return await store.add_version(
            document=document_json(shipped_document()),
            kind="apply",
            actor=SYSTEM_ACTOR,
            reason="initial routing from config/routing.yaml",
            now=now,
            expected_current=0,
        )
    except StaleVersion:  # another replica or command stored it first
        row = await store.current_version()
        assert row is not None
        return row


async def apply_document(
    store: Store,
    document: RoutingDocument,
    *,
    actor: str,
    reason: str,
    now: datetime,
    kind: str = "apply",
    expected_current: int | None = None,
) -> RoutingVersion | None:
    """Store *document* as a new version; None when it equals the current one."""
    current = await store.current_version()
    unchanged = current is not None and current.document == document_json(document)
    if unchanged and expected_current in (None, current.version if current else None):
        return None
    return await store.add_version(
        document=document_json(document),
        kind=kind,
        actor=actor,
        reason=reason,
        now=now,
        expected_current=expected_current,
    )


def stored_document(row: RoutingVersion) -> RoutingDocument:
    return validate_document(json.loads(row.document))


# -- calls -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer given to one provider request (provider id + step = path and query)."""

    provider_id: str
    step: str
    body: str


async def stored_reply(store: Store, provider_id: str, step: str) -> str | None:
    """The answer given before to this very request, if any; None also when the database
    cannot be read (the caller must get an answer anyway)."""
    try:
        async with asyncio.timeout(store.timeout_seconds):
            return await store.stored_reply(provider_id, step)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("reply.lookup_failed", provider_id=provider_id, step=step, error=str(exc))
        return None


async def record_routed_contact(
    store: Store,
    contact: Contact,
    decision: Decision,
    *,
    customer_hash: str,
    reply: Reply,
    now: datetime,
) -> tuple[str, bool]:
    """Store the interaction and our answer together.

    Returns the answer to send and whether this request was new: a retry of a request
    already recorded (same provider id), even one racing the first delivery, gets the
    answer stored the first time. Raises :class:`DatabaseUnavailable` when nothing could
    be written.
    """
    interaction = {**_interaction_row(contact, decision, customer_hash, now), "outcome": "routed"}
    try:
        async with asyncio.timeout(store.timeout_seconds):
            earlier = await store.record_contact(interaction, _reply_row(reply, now))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    return (reply.body, True) if earlier is None else (earlier, False)


async def record_call_progress(
    store: Store,
    *,
    channel: str,
    provider_id: str,
    changes: Mapping[str, Any],
    reply: Reply | None,
    now: datetime,
    forwards: Sequence[dict[str, Any]] = (),
) -> str | None:
    """Apply *changes* to the call's interaction, queue *forwards* (a voicemail's email) and
    store *reply*, in one transaction.

    Returns the answer to send (the earlier one for a repeated request), or None when there
    is no reply to give. Raises :class:`DatabaseUnavailable` when nothing could be written.
    """
    try:
        async with asyncio.timeout(store.timeout_seconds):
            found, earlier = await store.record_progress(
                channel=channel,
                provider_id=provider_id,
                changes={**changes, "updated_at": now},
                reply=None if reply is None else _reply_row(reply, now),
                forwards=forwards,
            )
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    if not found:
        log.warning("call.unknown", provider_id=provider_id, step=reply and reply.step)
    if earlier is not None:
        return earlier
    return None if reply is None else reply.body


def abandoned_call_row(
    *,
    provider_id: str,
    customer_hash: str,
    customer_key: str,
    language: str | None,
    version: int,
    started_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """The interaction of a call whose caller hung up in the IVR menu: no category, no
    destination; the status callback is the first we hear of it after the menu."""
    return {
        "channel": Channel.PHONE.value,
        "provider_id": provider_id,
        "customer_hash": customer_hash,
        "category": Category.UNKNOWN.value,
        "category_source": CategorySource.HANGUP.value,
        "rule": None,
        "confidence": None,
        "side": Side.BASELINE.value,
        "destination": "",
        "first_destination": "",
        "reason": Reason.ABANDONED.value,
        "version": version,
        "bucket": stored_bucket(bucket(customer_key)),
        "language": language,
        "received_at": started_at,
        "decided_at": now,
        "updated_at": now,
        "outcome": "abandoned",
        "delivery_failed": False,
    }


async def record_call_end(
    store: Store,
    *,
    provider_id: str,
    changes: Mapping[str, Any],
    abandoned: Mapping[str, Any],
    reply: Reply,
    now: datetime,
) -> bool:
    """Put the call's final status (*changes*) on its interaction. A call without one (the
    caller hung up in the IVR, before choosing) gets one now, *abandoned* (see
    :func:`abandoned_call_row`), so every call is counted. True when it was abandoned.
    Raises :class:`DatabaseUnavailable` when nothing could be written."""
    update = {**changes, "updated_at": now}
    try:
        async with asyncio.timeout(store.timeout_seconds):
            found, _ = await store.record_progress(
                channel=Channel.PHONE.value,
                provider_id=provider_id,
                changes=update,
                reply=None,
                forwards=(),
            )
            if found:
                return False
            earlier = await store.record_contact({**abandoned, **update}, _reply_row(reply, now))
            if earlier is not None:  # a retry of this callback inserted it first: same data
                await store.record_progress(
                    channel=Channel.PHONE.value,
                    provider_id=provider_id,
                    changes=update,
                    reply=None,
                    forwards=(),
                )
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    return True


def _reply_row(reply: Reply, now: datetime) -> dict[str, Any]:
    return {
        "provider_id": reply.provider_id,
        "step": reply.step,
        "body": reply.body,
        "created_at": now,
    }


# -- migration: cut-over, rollback, resume, plans, the guard ---------------------------------

#: Who the service records for the changes it makes by itself.
SCHEDULER_ACTOR = "scheduler"
#: How far back status looks for conversations the partner still holds.
CONVERSATION_WINDOW = timedelta(days=30)
GUARD_ACTOR = "guard"
_CHANGE_ATTEMPTS = 5


class NothingToResume(RuntimeError):
    """``resume`` without a rollback in force."""


async def _current(store: Store) -> RoutingVersion:
    row = await store.current_version()
    if row is None:
        raise NoRouting("the database holds no routing version yet")
    return row


class NoRouting(RuntimeError):
    """The database holds no routing version (the service has never started on it)."""


async def _change(
    store: Store,
    build: Callable[[RoutingVersion], Awaitable[NewVersion]],
    now: datetime,
) -> RoutingVersion:
    """Compute a new version from the current one and store it, starting again when someone
    else changed routing in between, so concurrent changes are never lost or merged blindly."""
    for _ in range(_CHANGE_ATTEMPTS):
        current = await _current(store)
        change = await build(current)
        try:
            return await store.add_version(
                document=document_json(change.document),
                kind=change.kind,
                actor=change.actor,
                reason=change.reason,
                now=now,
                expected_current=current.version,
                restores=change.restores,
                expires_at=change.expires_at,
                channel=change.channel,
            )
        except StaleVersion:
            continue
    raise StaleVersion(None, None)


@dataclass(frozen=True, slots=True)
class NewVersion:
    document: RoutingDocument
    kind: str
    actor: str
    reason: str
    restores: int | None = None
    expires_at: datetime | None = None
    channel: str | None = None


async def cutover(
    store: Store,
    channel: Channel | None,
    category: Category | None,
    percent: float,
    *,
    actor: str,
    reason: str,
    now: datetime,
) -> RoutingVersion:
    """Set one share (None: every channel or category) as a new version of kind cutover."""

    async def build(current: RoutingVersion) -> NewVersion:
        document = cut_over(stored_document(current), channel, category, percent)
        return NewVersion(document, "cutover", actor, reason)

    return await _change(store, build, now)


async def rollback(
    store: Store,
    *,
    actor: str,
    reason: str,
    now: datetime,
    channel: Channel | None = None,
    duration: timedelta | None = None,
) -> RoutingVersion:
    """Every share (of *channel*, or all) to 0 at once; with *duration*, the version from
    before comes back by itself when the time is up, unless routing changes meanwhile."""

    async def build(current: RoutingVersion) -> NewVersion:
        plan = plan_rollback(current, stored_document(current), channel, now, duration)
        return NewVersion(
            plan.document,
            "rollback",
            actor,
            reason,
            restores=plan.restores,
            expires_at=plan.expires_at,
            channel=channel.value if channel is not None else None,
        )

    row = await _change(store, build, now)
    log.warning(
        "routing.rolled_back",
        version=row.version,
        actor=actor,
        reason=reason,
        channel=row.channel or "all",
        until=row.expires_at.isoformat() if row.expires_at else None,
    )
    return row


async def resume(
    store: Store, *, actor: str, reason: str, now: datetime, expected: int | None = None
) -> RoutingVersion:
    """Bring back the version from before the rollback in force, as a version of kind resume.

    With *expected*, only if that rollback is still current (the scheduler's expiry)."""

    async def build(current: RoutingVersion) -> NewVersion:
        in_force = rollback_in_force(current)
        if in_force is None or in_force.restores is None:
            raise NothingToResume(
                f"no rollback is in force (version {current.version} is a {current.kind})"
            )
        if expected is not None and current.version != expected:
            raise NothingToResume(f"version {expected} is no longer current")
        earlier = await store.version(in_force.restores)
        if earlier is None:
            raise NothingToResume(f"version {in_force.restores} is missing")
        return NewVersion(
            stored_document(earlier), "resume", actor, reason, restores=earlier.version
        )

    row = await _change(store, build, now)
    log.info("routing.resumed", version=row.version, restores=row.restores, actor=actor)
    return row


async def revert(
    store: Store, number: int, *, actor: str, reason: str, now: datetime
) -> RoutingVersion:
    """Make version *number*'s document current again, as a new version of kind revert."""
    old = await store.version(number)
    if old is None:
        raise LookupError(f"there is no version {number}")

    async def build(current: RoutingVersion) -> NewVersion:
        return NewVersion(stored_document(old), "revert", actor, reason, restores=number)

    return await _change(store, build, now)


async def schedule_plan(
    store: Store, steps: Sequence[PlanStep], *, actor: str, now: datetime
) -> list[PlanStepRow]:
    rows = [
        PlanStepRow(
            due_at=step.at,
            reason=step.reason,
            cutover=json.dumps(
                {
                    ch.value: {cat.value: pct for cat, pct in cats.items()}
                    for ch, cats in step.cutover.items()
                },
                sort_keys=True,
            ),
            created_by=actor,
            created_at=now,
        )
        for step in steps
    ]
    return await store.add_plan_steps(rows)


def step_shares(row: PlanStepRow) -> dict[Channel, dict[Category, float]]:
    data = json.loads(row.cutover)
    return {
        Channel(channel): {Category(cat): float(pct) for cat, pct in cats.items()}
        for channel, cats in data.items()
    }


class _StepHeld(Exception):
    """Raised inside a step's transaction to give the claim back."""


async def run_plan_step(store: Store, step: PlanStepRow, now: datetime) -> RoutingVersion | None:
    """Execute one due step, exactly once across replicas: the step is claimed and the
    version stored in one transaction, so a second replica finds it done."""
    assert step.id is not None
    try:
        async with store.writing() as session:
            if not await claim_plan_step(session, step.id, now):
                return None
            current = await newest_version(session)
            if current is None:
                raise NoRouting("the database holds no routing version yet")
            if rollback_in_force(current) is not None:
                # a rollback committed since the caller looked: hold the step (undo claim)
                raise _StepHeld
            document = with_shares(stored_document(current), step_shares(step))
            row = await insert_version(
                session,
                after=current.version,
                document=document_json(document),
                kind="plan",
                actor=SCHEDULER_ACTOR,
                reason=step.reason,
                now=now,
            )
            await mark_step_version(session, step.id, row.version)
    except (IntegrityError, _StepHeld):  # a concurrent version, or a rollback: next tick
        return None
    log.info("plan.step_executed", step=step.id, version=row.version, reason=step.reason)
    return row


async def run_due_work(store: Store, now: datetime) -> list[RoutingVersion]:
    """Everything due now: a timed rollback's return, plan steps, the guard.

    Plan steps wait while a rollback is in force: a scheduled step must not undo an
    incident rollback behind the on-call person's back (status lists them as held)."""
    made: list[RoutingVersion] = []
    current = await store.current_version()
    if current is None:
        return made
    if return_due(current, now):
        # another replica may have resumed, or someone changed routing, a moment ago
        with contextlib.suppress(NothingToResume, StaleVersion):
            made.append(
                await resume(
                    store,
                    actor=SCHEDULER_ACTOR,
                    reason=f"rollback of version {current.version} ended ({current.reason})",
                    now=now,
                    expected=current.version,
                )
            )
        return made
    if rollback_in_force(current) is None:
        for step in await store.plan_steps():
            if step.due_at > now:
                break
            row = await run_plan_step(store, step, now)
            if row is not None:
                made.append(row)
        if made:
            return made
    tripped = await guard_check(store, now)
    if tripped is not None:
        made.append(tripped)
    return made


async def guard_check(store: Store, now: datetime) -> RoutingVersion | None:
    current = await store.current_version()
    if current is None:
        return None
    document = stored_document(current)
    guard = document.guard
    if guard is None:
        return None
    since = now - guard.window_duration
    if current.kind == "resume":  # failures from before a resume were already acted on
        since = max(since, current.created_at)
    external = [name for name in document.destinations if document.is_external(name)]
    health = [
        ChannelHealth(Channel(channel), contacts, failures)
        for channel, contacts, failures in await store.external_contacts(since, external)
    ]
    tripped = guard_trips(document, health)
    if not tripped:
        return None
    channel = tripped[0]
    item = next(h for h in health if h.channel is channel)
    reason = (
        f"guard: {item.failures} of {item.contacts} {channel.value} contacts to external "
        f"destinations failed within {guard.window} (limit {guard.max_failure_rate:.0%})"
    )
    try:
        return await rollback(
            store,
            actor=GUARD_ACTOR,
            reason=reason,
            now=now,
            channel=channel,
            duration=guard.rollback_duration,
        )
    except StaleVersion:
        return None


# -- status and impact -----------------------------------------------------------------------


async def routing_status(store: Store, now: datetime) -> dict[str, Any]:
    """What `status --format json` and GET /api/status show."""
    history = await store.history()
    if not history:
        raise NoRouting("the database holds no routing version yet")
    current = history[0]
    document = stored_document(current)
    in_force = rollback_in_force(current)
    rollback_json: dict[str, Any] | None = None
    if in_force is not None:
        rollback_json = {
            "version": in_force.version,
            "reason": in_force.reason,
            "actor": in_force.actor,
            "since": iso(in_force.created_at),
            "until": iso(in_force.expires_at) if in_force.expires_at else None,
            "channel": in_force.channel,
            "restores": in_force.restores,
        }
    cancelled = cancelled_return(history, now)
    # A conversation comes back in-house with its next message after a rollback; until
    # then the partner holds it, however long ago its last contact was (within a window
    # that bounds the query).
    external = [name for name in document.destinations if document.is_external(name)]
    held = await store.conversations_held(now - CONVERSATION_WINDOW, external)
    steps = await store.plan_steps()
    outbox = await store.outbox_depth()
    return {
        "version": current.version,
        "kind": current.kind,
        "actor": current.actor,
        "reason": current.reason,
        "created_at": iso(current.created_at),
        "cutover": shares_of(document),
        "rollback": rollback_json,
        "rollback_return_cancelled": None
        if cancelled is None
        else {
            "rollback_version": cancelled.rollback,
            "would_have_ended": iso(cancelled.would_have_ended),
            "cancelled_by_version": cancelled.cancelled_by,
            "actor": cancelled.actor,
            "reason": cancelled.reason,
        },
        "plan": [
            {
                "id": step.id,
                "at": iso(step.due_at),
                "reason": step.reason,
                "cutover": json.loads(step.cutover),
                "held_by_rollback": in_force is not None and step.due_at <= now,
            }
            for step in steps
        ],
        "outbox": outbox,
        "partner_conversations": [
            {
                "conversation_id": row.conversation_id,
                "channel": row.channel,
                "destination": row.destination,
                "last_contact_at": iso(row.received_at),
                "interaction_id": row.id,
            }
            for row in held
        ],
    }


async def contacts_per_hour(store: Store, now: datetime, hours: int) -> Traffic:
    """The last *hours* hours of contacts per destination and channel (``GET
    /api/traffic``); destinations' kinds from the routing in force."""
    since, until = window(now, hours)
    document = stored_document(await _current(store))
    return hourly(await store.contacts_per_hour(since, until), document, since, until)


async def contacts_report(store: Store, *, since: datetime, until: datetime) -> Report:
    """What contacts received in [*since*, *until*) went where and what that cost
    (``switchboard report``, ``GET /api/report``).

    Priced with the *current* version's ``costs`` and destination kinds, whatever version
    routed each contact: the report answers "what does this traffic cost at today's
    prices", and one price list keeps the figures comparable across periods."""
    current = await _current(store)
    document = stored_document(current)
    kinds = {
        name: "external" if document.is_external(name) else "in_house"
        for name in document.destinations
    }
    counts = [Count(*row) for row in await store.report_counts(since, until)]
    return build_report(
        counts,
        kinds=kinds,
        costs=document.costs,
        prices_version=current.version,
        since=since,
        until=until,
    )


async def cutover_preview(
    store: Store,
    channel: Channel | None,
    category: Category | None,
    percent: float,
    *,
    days: int,
    now: datetime,
) -> dict[str, Any]:
    """What a cut-over would have changed over the last *days*; nothing is stored."""
    current = await _current(store)
    before = stored_document(current)
    after = cut_over(before, channel, category, percent)
    result = await preview_impact(store, before, after, days=days, now=now)
    return {"dry_run": True, "version": current.version, "days": days, **result.as_json()}


async def preview_impact(
    store: Store,
    before: RoutingDocument,
    after: RoutingDocument,
    *,
    days: int,
    now: datetime,
) -> Impact:
    rows = await store.replay_rows(now - timedelta(days=days))
    recorded = [
        Recorded(Channel(channel), Category(category), bucket_value, received_at)
        for channel, category, bucket_value, received_at in rows
    ]
    return impact(recorded, before, after)


# -- email and chat: contacts that are forwarded through the outbox -----------------------------


@dataclass(frozen=True, slots=True)
class Routed:
    """The answer to a forwarded contact's webhook (the same for every retry)."""

    interaction_id: int
    category: str
    destination: str
    reason: str
    fresh: bool  # False: recorded before, this was a retry or duplicate

    def as_json(self) -> dict[str, Any]:
        return {
            "interaction_id": self.interaction_id,
            "category": self.category,
            "destination": self.destination,
            "reason": self.reason,
        }


def _answer_of(row: Interaction) -> Routed:
    assert row.id is not None
    return Routed(row.id, row.category, row.destination, row.reason, fresh=False)


async def route_forwarded(
    store: Store,
    active: ActiveRouting,
    contact: Contact,
    *,
    payload: bytes,
    meta: Mapping[str, Any],
    customer_hash: str,
    now: datetime,
    references: Sequence[str] = (),
    conversation_id: str | None = None,
    seen_token: tuple[str, str] | None = None,
) -> tuple[Routed, Decision | None]:
    """Decide where an email or chat message goes and record it with its forward.

    A reply keeps its thread's category: an email naming a message we routed
    (In-Reply-To/References), a chat message in a conversation we know. The interaction and
    the outbox row are written in one transaction, so an answered webhook is never lost.
    Raises :class:`DatabaseUnavailable` on an outage (the webhook answers 503)."""
    channel = contact.channel.value
    try:
        async with asyncio.timeout(store.timeout_seconds):
            if seen_token is not None and await store.token_seen(*seen_token):
                raise TokenReplayed(seen_token[0])
            earlier = await store.interaction_by_provider_id(channel, contact.provider_id)
            if earlier is not None:
                return _answer_of(earlier), None
            thread = None
            if references:
                thread = await store.thread_of(channel, references)
            elif conversation_id is not None:
                thread = await store.conversation_start(channel, conversation_id)
            if thread is not None:
                contact = replace(contact, thread_category=Category(thread.category))
                conversation_id = thread.conversation_id or thread.provider_id
            document = active.document
            classification = categorize(contact, document, active.classifier)
            decision = decide(contact, classification, document, now, version=active.version)
            row = _interaction_row(contact, decision, customer_hash, now)
            row["conversation_id"] = conversation_id or contact.provider_id
            forwards = _forwards(contact.channel, decision, document, payload, meta, now)
            if not forwards:
                row["outcome"] = "undeliverable"
                log.error(
                    "contact.no_address",
                    channel=channel,
                    destination=decision.destination,
                    hint=f"the destination has no {channel} address in the routing document",
                )
            interaction_id, fresh = await store.record_forwarded_contact(
                row, forwards, seen_token=seen_token
            )
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    if not fresh:
        again = await store.interaction_by_provider_id(channel, contact.provider_id)
        assert again is not None
        return _answer_of(again), None
    answer = Routed(
        interaction_id,
        decision.category.value,
        decision.destination,
        decision.reason.value,
        fresh=True,
    )
    return answer, decision


def _interaction_row(
    contact: Contact, decision: Decision, customer_hash: str, now: datetime
) -> dict[str, Any]:
    return {
        "channel": contact.channel.value,
        "provider_id": contact.provider_id,
        "customer_hash": customer_hash,
        "category": decision.category.value,
        "category_source": decision.category_source.value,
        "rule": decision.rule,
        "confidence": decision.confidence,
        "side": decision.side.value,
        "destination": decision.destination,
        "first_destination": decision.destination,
        "reason": decision.reason.value,
        "version": decision.version,
        "bucket": stored_bucket(decision.bucket),
        "language": contact.language,
        "received_at": contact.received_at,
        "decided_at": now,
        "updated_at": now,
        "outcome": "queued",
        "delivery_failed": False,
    }


def voicemail_forward(
    destination: str, document: RoutingDocument, message: bytes, now: datetime
) -> list[dict[str, Any]]:
    """The outbox row that emails a voicemail to *destination*'s mailbox (SPEC §3 step 5);
    none when the destination has no email address."""
    address = document.address(destination, Channel.EMAIL)
    if address is None:
        return []
    meta = {"generated": True, "reason": "unanswered", "sender": "switchboard@localhost"}
    return [
        _forward_row(
            Channel.EMAIL,
            destination,
            address,
            document.is_external(destination),
            meta,
            message,
            now,
        )
    ]


def _forward_row(
    channel: Channel,
    destination: str,
    address: str,
    external: bool,
    meta: Mapping[str, Any],
    payload: bytes,
    now: datetime,
    *,
    fallback: tuple[str, str, bool] | None = None,
) -> dict[str, Any]:
    """An outbox row due now; *fallback* is (destination, address, external)."""
    return {
        "kind": channel.value,
        "destination": destination,
        "address": address,
        "external": external,
        "fallback": fallback[0] if fallback else None,
        "fallback_address": fallback[1] if fallback else None,
        "fallback_external": fallback[2] if fallback else False,
        "stage": "primary",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "payload": payload,
        "meta": json.dumps(dict(meta)),
        "created_at": now,
        "updated_at": now,
    }


def _forwards(
    channel: Channel,
    decision: Decision,
    document: RoutingDocument,
    payload: bytes,
    meta: Mapping[str, Any],
    now: datetime,
) -> list[dict[str, Any]]:
    address = document.address(decision.destination, channel)
    if address is None:
        return []
    fallback_name = document.fallback_for(decision.destination)
    fallback_address = document.address(fallback_name, channel) if fallback_name else None
    fallback = (
        (fallback_name, fallback_address, document.is_external(fallback_name))
        if fallback_name and fallback_address
        else None
    )
    meta = {**meta, "category": decision.category.value, "reason": decision.reason.value}
    external = document.is_external(decision.destination)
    return [
        _forward_row(
            channel, decision.destination, address, external, meta, payload, now, fallback=fallback
        )
    ]
