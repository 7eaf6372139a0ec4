"""The service layer: what happens to routing versions and contacts, vendor-free.

Handlers (HTTP, CLI) call these functions; they combine the pure core (``decide``,
``document``) with the store. Provider answers are passed in as opaque text so that a
retried webhook can be answered byte-for-byte the same (SPEC §3).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from router.contact import Contact
from router.decide import Decision
from router.document import RoutingDocument, document_json, shipped_document, validate_document
from router.store import (
    DatabaseUnavailable,
    Interaction,
    RoutingVersion,
    StaleVersion,
    Store,
    WebhookReply,
    find_interaction,
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
) -> str:
    """Store the interaction and our answer together; returns the answer to send.

    A concurrent duplicate (same provider id) loses on the unique key and gets the answer
    the winner stored. Raises :class:`DatabaseUnavailable` when nothing could be written.
    """
    row = Interaction(
        channel=contact.channel.value,
        provider_id=contact.provider_id,
        customer_hash=customer_hash,
        category=decision.category.value,
        category_source=decision.category_source.value,
        rule=decision.rule,
        confidence=decision.confidence,
        side=decision.side.value,
        destination=decision.destination,
        first_destination=decision.destination,
        reason=decision.reason.value,
        version=decision.version,
        bucket=decision.bucket,
        language=contact.language,
        received_at=contact.received_at,
        decided_at=now,
        updated_at=now,
        outcome="routed",
    )
    try:
        async with asyncio.timeout(store.timeout_seconds):
            try:
                async with store.writing() as session:
                    session.add(row)
                    session.add(_reply_row(reply, now))
                return reply.body
            except IntegrityError:
                earlier = await store.stored_reply(reply.provider_id, reply.step)
                return earlier if earlier is not None else reply.body
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(str(exc)) from exc


async def record_call_progress(
    store: Store,
    *,
    channel: str,
    provider_id: str,
    changes: Mapping[str, Any],
    reply: Reply | None,
    now: datetime,
) -> str | None:
    """Apply *changes* to the call's interaction and store *reply*, in one transaction.

    Returns the answer to send (the earlier one for a repeated request), or None when there
    is no reply to give. Raises :class:`DatabaseUnavailable` when nothing could be written.
    """
    try:
        async with asyncio.timeout(store.timeout_seconds):
            try:
                async with store.writing() as session:
                    if reply is not None:
                        earlier = await session.get(WebhookReply, (reply.provider_id, reply.step))
                        if earlier is not None:
                            return earlier.body
                    interaction = await find_interaction(session, channel, provider_id)
                    if interaction is not None:
                        for field, value in changes.items():
                            setattr(interaction, field, value)
                        interaction.updated_at = now
                        session.add(interaction)
                    else:
                        log.warning(
                            "call.unknown", provider_id=provider_id, step=reply and reply.step
                        )
                    if reply is not None:
                        session.add(_reply_row(reply, now))
                return None if reply is None else reply.body
            except IntegrityError:
                if reply is None:
                    return None
                earlier_body = await store.stored_reply(reply.provider_id, reply.step)
                return earlier_body if earlier_body is not None else reply.body
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(str(exc)) from exc


def _reply_row(reply: Reply, now: datetime) -> WebhookReply:
    return WebhookReply(
        provider_id=reply.provider_id, step=reply.step, body=reply.body, created_at=now
    )
