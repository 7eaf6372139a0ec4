"""Contacts: the one path every call, email and chat message takes once it is a
:class:`~router.core.contact.Contact`.

:func:`route_contact` decides where the contact goes (the pure core), records it in one
unit of work — the interaction, its forward through the outbox (email, chat) and the
provider's answer (a call's TwiML) — and writes the one ``contact.routed`` line with the
same fields on every channel. A retry or duplicate of a recorded contact records nothing
and gets the first answer. Handlers parse before and render after; they never decide.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from router.core.contact import Channel, Contact
from router.core.decide import Decision, categorize, decide, stored_bucket
from router.core.document import RoutingDocument
from router.core.lifecycle import Outcome
from router.core.masking import identifier_without_cards
from router.metrics import Metrics
from router.service.ports import ContactUnitOfWork, DatabaseUnavailable, TokenReplayed
from router.service.recording import recorded
from router.service.records import NewForward, NewInteraction, Reply, Target, new_forward
from router.service.routing import ActiveRouting

log = structlog.get_logger(__name__)

#: Renders the provider's answer to a routed contact (a call's TwiML), from the decision.
Render = Callable[[Contact, Decision, RoutingDocument], str]


def customer_hash(secret: bytes, customer_key: str) -> str:
    """Keyed hash of a customer key; the raw number or address is never stored."""
    if not customer_key:
        return ""
    return hmac.new(secret, customer_key.encode("utf-8"), hashlib.sha256).hexdigest()


def stored_identifiers(contact: Contact, secret: bytes) -> Contact:
    """*contact* with the ids its sender chose as they may be stored (SPEC §6: no card
    number in anything stored): a message id, conversation id or reference holding a card
    number becomes its keyed hash, the same for every delivery of it."""
    if contact.channel is Channel.PHONE:
        return contact  # Twilio's CallSid: its later callbacks name the call by it as sent

    def stored(identifier: str) -> str:
        return identifier_without_cards(identifier, secret)

    return replace(
        contact,
        provider_id=stored(contact.provider_id),
        conversation_id=None
        if contact.conversation_id is None
        else stored(contact.conversation_id),
        references=tuple(stored(reference) for reference in contact.references),
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """A contact the provider waits on (a call): the request's *step* (path and query) and
    how to render the answer. It is stored with the contact, so a retry of the same step
    gets the same bytes, and it is given even when the database cannot be written."""

    step: str
    render: Render


@dataclass(frozen=True, slots=True)
class Forward:
    """A contact that is forwarded through the outbox (email, chat): what is sent to the
    destination (*payload*) and what the sender needs besides it (*meta*). *masked* gives
    the payload with card numbers masked: what is stored for an external destination, so
    the outbox keeps a card number only for an in-house one (the original email)."""

    payload: bytes
    meta: Mapping[str, Any]
    masked: Callable[[bytes], bytes] | None = None


@dataclass(frozen=True, slots=True)
class Routed:
    """Where a contact went, the same for every retry of it."""

    interaction_id: int | None  # None: a call answered while the database was down
    category: str
    destination: str
    reason: str
    fresh: bool  # False: recorded before, this was a retry or a duplicate
    answer: str | None = None  # the provider's answer (with an :class:`Answer`)
    recorded: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "interaction_id": self.interaction_id,
            "category": self.category,
            "destination": self.destination,
            "reason": self.reason,
        }


async def route_contact(
    contact: Contact,
    uow: ContactUnitOfWork,
    routing: ActiveRouting,
    now: datetime,
    *,
    secret: bytes,
    metrics: Metrics,
    answer: Answer | None = None,
    forward: Forward | None = None,
    seen_token: tuple[str, str] | None = None,
    source: str | None = None,
    key_hash: str | None = None,
) -> Routed:
    """Decide where *contact* goes and record it, with its *forward* or *answer*.

    A reply keeps its thread's category (an email naming a message we routed, a chat message
    in a conversation we know). With *seen_token* (provider, token), a token seen before
    raises :class:`TokenReplayed`. When the database cannot be written, a contact with an
    *answer* (a call) is still answered and logged in full (``contact.unrecorded``, SPEC
    §7); any other raises :class:`DatabaseUnavailable`, so the provider retries.
    *key_hash* is ``customer_hash(secret, contact.customer_key)`` when the caller already
    has it (an SMS conversation is named by it).
    """
    started = time.perf_counter()
    contact = stored_identifiers(contact, secret)
    if contact.channel is Channel.PHONE and contact.language is None:
        contact = replace(contact, language=routing.document.ivr_language(contact.customer_key))
    if key_hash is None:
        key_hash = customer_hash(secret, contact.customer_key)
    record = partial(
        _record,
        contact=contact,
        routing=routing,
        now=now,
        key_hash=key_hash,
        answer=answer,
        forward=forward,
        seen_token=seen_token,
    )
    try:
        # one budget for all of it (SWITCHBOARD_DB_TIMEOUT): the caller is answered in time
        routed, decision = await recorded(uow, record)
    except DatabaseUnavailable as exc:
        if answer is None:
            log.error(
                "contact.unavailable",
                channel=contact.channel.value,
                provider_id=contact.provider_id,
                source=source,
                error=str(exc),
            )
            raise
        decision = _decide(contact, routing, now)
        routed = _unrecorded(contact, decision, routing, now, key_hash, answer, exc)
        metrics.contacts_unrecorded.labels(contact.channel.value).inc()
    if routed.fresh:
        _routed(contact, routed, decision, metrics, started, source)
    return routed


async def _record(
    uow: ContactUnitOfWork,
    *,
    contact: Contact,
    routing: ActiveRouting,
    now: datetime,
    key_hash: str,
    answer: Answer | None,
    forward: Forward | None,
    seen_token: tuple[str, str] | None,
) -> tuple[Routed, Decision | None]:
    channel = contact.channel.value
    if seen_token is not None and not await uow.mark_token_seen(*seen_token, now):
        raise TokenReplayed(seen_token[0])
    conversation_id = contact.conversation_id
    thread = await uow.thread_start(
        channel, references=contact.references, conversation_id=contact.conversation_id
    )
    if thread is not None:
        thread_category, conversation_id = thread
        contact = replace(contact, thread_category=thread_category)
    decision = _decide(contact, routing, now)
    document = routing.document
    forwards = (
        [] if forward is None else _forwards(contact.channel, decision, document, forward, now)
    )
    if forward is None:
        outcome = Outcome.ROUTED
    elif forwards:
        outcome = Outcome.QUEUED
    else:
        outcome = Outcome.UNDELIVERABLE
        log.error(
            "contact.no_address",
            channel=channel,
            destination=decision.destination,
            hint=f"the destination has no {channel} address in the routing document",
        )
    if forward is not None:  # a forwarded contact belongs to a thread, if only its own
        conversation_id = conversation_id or contact.provider_id
    row = _interaction(contact, decision, key_hash, now, outcome, conversation_id)
    interaction_id = await uow.add_interaction(row)
    if interaction_id is None:  # recorded before: answer as the first time
        return await _earlier(contact, uow, answer, decision, document), None
    for item in forwards:
        await uow.add_forward(interaction_id, item)
    body = None
    if answer is not None:
        body = answer.render(contact, decision, document)
        await uow.add_reply(Reply(contact.provider_id, answer.step, body, now))
    routed = Routed(
        interaction_id,
        decision.category.value,
        decision.destination,
        decision.reason.value,
        fresh=True,
        answer=body,
    )
    return routed, decision


async def _earlier(
    contact: Contact,
    uow: ContactUnitOfWork,
    answer: Answer | None,
    decision: Decision,
    document: RoutingDocument,
) -> Routed:
    earlier = await uow.contact(contact.channel.value, contact.provider_id)
    if earlier is None:  # cannot happen: the insert collided with this very row
        raise DatabaseUnavailable(f"{contact.provider_id} collided but cannot be read")
    body = None
    if answer is not None:
        # the first request's answer; while that one is still committing, its own rendering
        stored = await uow.reply(contact.provider_id, answer.step)
        body = stored if stored is not None else answer.render(contact, decision, document)
    return Routed(
        earlier.interaction_id,
        earlier.category,
        earlier.destination,
        earlier.reason,
        fresh=False,
        answer=body,
    )


def _decide(contact: Contact, routing: ActiveRouting, now: datetime) -> Decision:
    classification = categorize(contact, routing.document, routing.classifier)
    return decide(contact, classification, routing.document, now, version=routing.version)


def _unrecorded(
    contact: Contact,
    decision: Decision,
    routing: ActiveRouting,
    now: datetime,
    key_hash: str,
    answer: Answer,
    error: DatabaseUnavailable,
) -> Routed:
    """A call answered while the database cannot be written: logged with everything needed
    to insert its row later, by hand or by a replay script."""
    body = answer.render(contact, decision, routing.document)
    row = _interaction(contact, decision, key_hash, now, Outcome.ROUTED, None)
    log.error(
        "contact.unrecorded",
        **{
            **row.values(),
            "received_at": row.received_at.isoformat(),
            "decided_at": row.decided_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        },
        step=answer.step,
        twiml=body,
        error=str(error),
    )
    return Routed(
        None,
        decision.category.value,
        decision.destination,
        decision.reason.value,
        fresh=True,
        answer=body,
        recorded=False,
    )


def _routed(
    contact: Contact,
    routed: Routed,
    decision: Decision | None,
    metrics: Metrics,
    started: float,
    source: str | None,
) -> None:
    """The one ``contact.routed`` line, and the metrics, of a newly routed contact."""
    assert decision is not None
    channel = contact.channel.value
    latency = time.perf_counter() - started
    metrics.decision_seconds.labels(channel).observe(latency)
    metrics.contacts_routed.labels(
        channel, routed.category, decision.side.value, routed.destination, routed.reason
    ).inc()
    log.info(
        "contact.routed",
        channel=channel,
        provider_id=contact.provider_id,
        interaction_id=routed.interaction_id,
        category=routed.category,
        category_source=decision.category_source.value,
        rule=decision.rule,
        side=decision.side.value,
        destination=routed.destination,
        reason=routed.reason,
        version=decision.version,
        language=contact.language,
        source=source,
        recorded=routed.recorded,
        latency_ms=round(latency * 1000, 2),
    )


def _interaction(
    contact: Contact,
    decision: Decision,
    key_hash: str,
    now: datetime,
    outcome: Outcome,
    conversation_id: str | None,
) -> NewInteraction:
    return NewInteraction(
        channel=contact.channel,
        provider_id=contact.provider_id,
        customer_hash=key_hash,
        category=decision.category,
        category_source=decision.category_source,
        rule=decision.rule,
        confidence=decision.confidence,
        side=decision.side,
        destination=decision.destination,
        first_destination=decision.destination,
        reason=decision.reason,
        version=decision.version,
        bucket=stored_bucket(decision.bucket),
        language=contact.language,
        received_at=contact.received_at,
        decided_at=now,
        updated_at=now,
        outcome=outcome,
        conversation_id=conversation_id,
    )


def _forwards(
    channel: Channel,
    decision: Decision,
    document: RoutingDocument,
    forward: Forward,
    now: datetime,
) -> list[NewForward]:
    """The outbox row that takes the contact to its destination, with the fallback resolved
    now; none when the destination has no address on the channel."""
    to = target(document, decision.destination, channel)
    if to is None:
        return []
    fallback_name = document.fallback_for(decision.destination)
    fallback = target(document, fallback_name, channel) if fallback_name else None
    meta = {**forward.meta, "category": decision.category.value, "reason": decision.reason.value}
    payload = forward.payload
    if forward.masked is not None and to.external:
        # SPEC §6: what goes outside is stored masked; an in-house fallback, if the partner
        # cannot be reached, gets it masked too (README, "Card numbers")
        payload = forward.masked(payload)
    return [new_forward(channel, to, payload, meta, now, fallback=fallback)]


def target(document: RoutingDocument, destination: str, channel: Channel) -> Target | None:
    """*destination*'s address on *channel*, or None when it has none."""
    address = document.address(destination, channel)
    if address is None:
        return None
    return Target(destination, address, document.is_external(destination))
