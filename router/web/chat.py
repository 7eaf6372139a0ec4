"""HTTP endpoints of the chat channel: the chat widget's ``POST /webhooks/chat`` and Twilio
Messaging's ``POST /webhooks/twilio/messaging`` (SMS and WhatsApp count as chat).

Both parse the message into a :class:`~router.core.contact.Contact` and hand it to
``route_contact``, which records the interaction with its hand-off in the outbox (one
transaction) before the webhook answers; a conversation keeps the category of its first
message; an outage answers 503 so the sender retries.
"""

from __future__ import annotations

from dataclasses import replace

import structlog
from aiohttp import web

from integrations import chat as chat_format
from integrations import twilio_messaging as messaging
from router.core.contact import Contact
from router.core.masking import mask_cards
from router.service.contacts import Routed, customer_hash, stored_identifiers
from router.web.appkeys import clock_key, customer_secret_key, routing_key
from router.web.forwarded import route_forwarded
from router.web.signed import chat_signed_body
from router.web.twilio import twiml, verified_form

log = structlog.get_logger(__name__)


async def _route_chat(
    request: web.Request, contact: Contact, *, source: str, key_hash: str | None = None
) -> Routed:
    """Route *contact* with its hand-off: the text, and what the destination is told."""
    # The hand-off waits in the outbox with the text, and SPEC §6 keeps no card number in
    # anything stored: masked now, for every destination, the in-house one too (README,
    # "Card numbers"); the customer's own words are not kept anywhere else.
    contact = stored_identifiers(
        replace(contact, text=mask_cards(contact.text)), request.app[customer_secret_key]
    )
    meta = {
        "customer_id": contact.customer_key,
        "language": contact.language,
        "conversation_id": contact.conversation_id,
    }
    payload = contact.text.encode("utf-8")
    return await route_forwarded(request, contact, payload, meta, source=source, key_hash=key_hash)


async def chat_webhook(request: web.Request) -> web.Response:
    body = await chat_signed_body(request, "chat")
    try:
        message = chat_format.parse_chat(body)
    except chat_format.ChatFormatError as exc:
        return web.json_response(
            {"error": "not a chat message", "problems": exc.problems}, status=400
        )
    contact = message.contact(received_at=request.app[clock_key]())
    routed = await _route_chat(request, contact, source="widget")
    return web.json_response(routed.as_json())


async def messaging_webhook(request: web.Request) -> web.Response:
    """An SMS or WhatsApp message: routed as chat, acknowledged in the customer's language."""
    form = await verified_form(request)
    try:
        inbound = messaging.parse_message(form)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from exc
    app = request.app
    document = app[routing_key].active.document
    language = document.ivr_language(inbound.customer_key)
    # hashed once: the keyed hash names the conversation and is what is stored of the customer
    key_hash = customer_hash(app[customer_secret_key], inbound.customer_key)
    contact = inbound.contact(
        received_at=app[clock_key](),
        language=language,
        customer_hash=key_hash,
    )
    await _route_chat(request, contact, source="twilio", key_hash=key_hash)
    return twiml(messaging.render_acknowledgement(document.acknowledgement(language)))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/chat", chat_webhook)
    app.router.add_post(messaging.MESSAGING_PATH, messaging_webhook)
