"""Contacts: where one contact goes, recorded with its forwards (and the provider's answer) in
one transaction."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from router.core.contact import Category, Channel, Contact
from router.core.decide import Decision, categorize, decide, stored_bucket
from router.core.document import RoutingDocument
from router.service.records import Reply, forward_row, reply_row
from router.service.routing import ActiveRouting
from router.store import (
    DatabaseUnavailable,
    Interaction,
    Store,
    TokenReplayed,
)

log = structlog.get_logger(__name__)


def customer_hash(secret: bytes, customer_key: str) -> str:
    """Keyed hash of a customer key; the raw number or address is never stored."""
    if not customer_key:
        return ""
    return hmac.new(secret, customer_key.encode("utf-8"), hashlib.sha256).hexdigest()


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
            earlier = await store.record_contact(interaction, reply_row(reply, now))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    return (reply.body, True) if earlier is None else (earlier, False)


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
        forward_row(
            channel, decision.destination, address, external, meta, payload, now, fallback=fallback
        )
    ]
