"""What the webhooks of forwarded contacts (email, chat, Twilio Messaging) share once a
request is verified and parsed: routing its :class:`~router.core.contact.Contact`, waking the
outbox for the new forward, and the one answer to a database outage.

Handlers import this module, never each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from router.core.contact import Contact
from router.service.contacts import Forward, Routed, route_contact
from router.service.ports import DatabaseUnavailable
from router.web.appkeys import (
    customer_secret_key,
    metrics_key,
    outbox_wake_key,
    outbox_worker_key,
    routing_key,
    store_key,
)

#: One value for every webhook that answers an outage with 503. The store has already
#: waited out its own timeout (seconds) before giving up, so this is an outage — a server
#: down, a locked file, a full disk (SPEC §7) — not a blip: retrying sooner only adds load
#: to a database that is coming back. Email providers keep their own retry schedules; the
#: clients that honour the header (the chat widget) lose nothing by waiting, because an
#: unacknowledged message is theirs to resend.
RETRY_AFTER_SECONDS = 30


def database_unavailable() -> web.HTTPServiceUnavailable:
    """The 503 that tells a provider to retry (SPEC §7: nothing was acknowledged)."""
    return web.HTTPServiceUnavailable(
        text="database unavailable; retry later\n",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def route_forwarded(
    request: web.Request,
    contact: Contact,
    payload: bytes,
    meta: Mapping[str, Any],
    *,
    source: str,
    seen_token: tuple[str, str] | None = None,
    key_hash: str | None = None,
    masked: Callable[[bytes], bytes] | None = None,
) -> Routed:
    """Route *contact* with its forward (*payload* and the sender's *meta*) and wake the
    outbox when it is new; 503 when the database cannot record it. *masked* masks card
    numbers in *payload*: what is stored for an external destination. A replayed
    *seen_token* raises :class:`~router.service.ports.TokenReplayed` for the caller."""
    app = request.app
    try:
        routed = await route_contact(
            contact,
            app[store_key].unit_of_work(),
            app[routing_key].active,
            contact.received_at,
            secret=app[customer_secret_key],
            metrics=app[metrics_key],
            forward=Forward(payload, meta, masked),
            seen_token=seen_token,
            source=source,
            key_hash=key_hash,
        )
    except DatabaseUnavailable as exc:
        raise database_unavailable() from exc
    if routed.fresh:
        wake_outbox(app, contact.channel.value)
    return routed


def wake_outbox(app: web.Application, kind: str) -> None:
    """Tell the outbox worker a forward of *kind* was written, unless nothing sends that
    kind: with SMTP unset email forwards wait in the outbox (SPEC §5), and a stream of them
    must not make the worker claim, for nothing, once per message."""
    worker = app.get(outbox_worker_key)
    if worker is not None and kind not in worker.senders:
        return
    app[outbox_wake_key].set()
