"""Calls after routing: dial outcomes, voicemail, the final status (or an IVR hang-up)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from router.core.contact import Category, CategorySource, Channel, Reason, Side
from router.core.decide import bucket, stored_bucket
from router.core.document import RoutingDocument
from router.service.records import Reply, forward_row, reply_row
from router.store import (
    DatabaseUnavailable,
    Store,
)

log = structlog.get_logger(__name__)


async def stored_reply(store: Store, provider_id: str, step: str) -> str | None:
    """The answer given before to this very request, if any; None also when the database
    cannot be read (the caller must get an answer anyway)."""
    try:
        async with asyncio.timeout(store.timeout_seconds):
            return await store.stored_reply(provider_id, step)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("reply.lookup_failed", provider_id=provider_id, step=step, error=str(exc))
        return None


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
                reply=None if reply is None else reply_row(reply, now),
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
            earlier = await store.record_contact({**abandoned, **update}, reply_row(reply, now))
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
        forward_row(
            Channel.EMAIL,
            destination,
            address,
            document.is_external(destination),
            meta,
            message,
            now,
        )
    ]
