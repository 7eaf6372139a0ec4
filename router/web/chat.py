"""HTTP endpoints of the chat channel: the chat widget's ``POST /webhooks/chat`` and Twilio
Messaging's ``POST /webhooks/twilio/messaging`` (SMS and WhatsApp count as chat).

Both record the interaction with its hand-off in the outbox (one transaction) before
answering; a conversation keeps the category of its first message; an outage answers 503
so the sender retries.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web

from integrations import chat as chat_format
from integrations import twilio_messaging as messaging
from router.core.contact import Channel, Contact
from router.service.contacts import Routed, customer_hash, route_forwarded
from router.store import DatabaseUnavailable
from router.web.appkeys import (
    clock_key,
    customer_secret_key,
    outbox_wake_key,
    routing_key,
    store_key,
)
from router.web.email import log_routed
from router.web.signed import chat_signed_body
from router.web.voice import verified_form

log = structlog.get_logger(__name__)


async def _route_chat(
    request: web.Request,
    contact: Contact,
    *,
    conversation_id: str,
    meta: dict[str, str | None],
    started: float,
    source: str,
) -> Routed:
    app = request.app
    try:
        answer, decision = await route_forwarded(
            app[store_key],
            app[routing_key].active,
            contact,
            payload=contact.text.encode("utf-8"),
            meta={**meta, "conversation_id": conversation_id},
            customer_hash=customer_hash(app[customer_secret_key], contact.customer_key),
            now=contact.received_at,
            conversation_id=conversation_id,
        )
    except DatabaseUnavailable as exc:
        log.error(
            "chat.unavailable", source=source, provider_id=contact.provider_id, error=str(exc)
        )
        raise web.HTTPServiceUnavailable(
            text="database unavailable; retry later\n", headers={"Retry-After": "10"}
        ) from exc
    if decision is not None:
        app[outbox_wake_key].set()
        log_routed(app, "chat", answer.interaction_id, decision, started, source=source)
    return answer


async def chat_webhook(request: web.Request) -> web.Response:
    started = time.perf_counter()
    app = request.app
    body = await chat_signed_body(request, "chat")
    try:
        message = chat_format.parse_chat(body)
    except chat_format.ChatFormatError as exc:
        return web.json_response(
            {"error": "not a chat message", "problems": exc.problems}, status=400
        )
    contact = Contact(
        channel=Channel.CHAT,
        provider_id=message.provider_id,
        customer_key=message.customer_id,
        received_at=app[clock_key](),
        text=message.text,
        language=message.language,
    )
    answer = await _route_chat(
        request,
        contact,
        conversation_id=message.conversation_id,
        meta={"customer_id": message.customer_id, "language": message.language},
        started=started,
        source="widget",
    )
    return web.json_response(answer.as_json())


async def messaging_webhook(request: web.Request) -> web.Response:
    """An SMS or WhatsApp message: routed as chat, acknowledged in the customer's language."""
    started = time.perf_counter()
    form = await verified_form(request)
    try:
        inbound = messaging.parse_message(form)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from exc
    app = request.app
    document = app[routing_key].active.document
    language = document.ivr_language(inbound.customer_key)
    contact = Contact(
        channel=Channel.CHAT,
        provider_id=inbound.message_sid,
        customer_key=inbound.customer_key,
        received_at=app[clock_key](),
        text=inbound.text,
        language=language,
    )
    # the conversation is named by the keyed hash: the raw number is never stored
    secret_hash = customer_hash(app[customer_secret_key], contact.customer_key)
    await _route_chat(
        request,
        contact,
        conversation_id=f"{inbound.medium}:{secret_hash[:32]}",
        meta={"customer_id": inbound.customer_key, "language": language},
        started=started,
        source="twilio",
    )
    body = messaging.render_acknowledgement(document.acknowledgement(language))
    return web.Response(text=body, content_type="text/xml", charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/chat", chat_webhook)
    app.router.add_post(messaging.MESSAGING_PATH, messaging_webhook)
