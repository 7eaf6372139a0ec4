"""HTTP endpoints of the email channel: ``POST /webhooks/email/{provider}``.

Each request is: check its size and credentials, parse the provider's format into one
neutral InboundEmail and its :class:`~router.core.contact.Contact`, and hand it to
``route_contact``, which records the interaction with its forward in the outbox (one
transaction) before the webhook answers 200. An outage answers 503 so the provider retries;
a retry or duplicate gets the first answer and creates nothing new.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import BodyPartReader, web

from integrations import email_inbound as inbound
from integrations import signing
from router.service.contacts import Forward, route_contact
from router.service.ports import DatabaseUnavailable, TokenReplayed
from router.web.appkeys import (
    clock_key,
    customer_secret_key,
    metrics_key,
    outbox_wake_key,
    routing_key,
    settings_key,
    store_key,
)

log = structlog.get_logger(__name__)

PROVIDERS = ("sendgrid", "mailgun", "postmark", "mime")
_MAILGUN_TOLERANCE_SECONDS = 300

#: A provider's way in: the parsed email, and the provider token to record as seen.
Parsed = tuple[inbound.InboundEmail, tuple[str, str] | None]
Handler = Callable[[web.Request], Awaitable[Parsed]]


def _refuse(request: web.Request, provider: str, why: str) -> web.HTTPForbidden:
    request.app[metrics_key].signatures_rejected.labels(provider).inc()
    log.warning("email.refused", provider=provider, reason=why)
    return web.HTTPForbidden(text=f"{why}\n")


def _basic_password(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2]


def _secret(request: web.Request, provider: str) -> str:
    secret = request.app[settings_key].email_webhook_secret
    if secret is None:
        raise _refuse(request, provider, "SWITCHBOARD_EMAIL_WEBHOOK_SECRET is not set")
    return secret


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def _form(request: web.Request) -> dict[str, str | bytes | inbound.FormFile]:
    """The form's fields with their exact bytes: providers post text in the message's own
    charset (iso-8859-2, windows-1250, …), which aiohttp's request.post() would force
    through UTF-8. Uploads become FormFiles. Bounded by the request size limit."""
    if request.content_type != "multipart/form-data":
        return {name: str(value) for name, value in (await request.post()).items()}
    fields: dict[str, str | bytes | inbound.FormFile] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        data = await part.read(decode=True)
        if part.filename:
            fields[part.name] = inbound.FormFile(
                filename=part.filename,
                content_type=part.headers.get("Content-Type", "application/octet-stream"),
                data=bytes(data),
            )
        else:
            fields[part.name] = bytes(data)
    return fields


async def _sendgrid(request: web.Request) -> Parsed:
    secret = _secret(request, "sendgrid")
    if not (_same(request.query.get("key"), secret) or _same(_basic_password(request), secret)):
        raise _refuse(request, "sendgrid", "bad or missing key")
    return inbound.parse_sendgrid(await _form(request)), None


async def _postmark(request: web.Request) -> Parsed:
    secret = _secret(request, "postmark")
    if not _same(_basic_password(request), secret):
        raise _refuse(request, "postmark", "bad or missing basic-auth password")
    try:
        payload = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise inbound.EmailFormatError(f"not JSON: {exc}") from exc
    return inbound.parse_postmark(payload), None


async def _mime(request: web.Request) -> Parsed:
    secret = _secret(request, "mime")
    raw = await request.read()
    why = signing.verify(secret, raw, request.headers.get(signing.HEADER, ""), time.time())
    if why is not None:
        raise _refuse(request, "mime", why)
    return inbound.parse_mime(raw), None


async def _mailgun(request: web.Request) -> Parsed:
    key = request.app[settings_key].mailgun_signing_key
    if key is None:
        raise _refuse(request, "mailgun", "SWITCHBOARD_MAILGUN_SIGNING_KEY is not set")
    form = await _form(request)
    timestamp, token, signature = (_text(form.get(name)) for name in FIELDS_SIGNED)
    if not inbound.mailgun_signature_valid(key, timestamp, token, signature):
        raise _refuse(request, "mailgun", "bad signature")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > _MAILGUN_TOLERANCE_SECONDS:
        raise _refuse(request, "mailgun", "timestamp more than 5 minutes off")
    return inbound.parse_mailgun(form), ("mailgun", token)


FIELDS_SIGNED = ("timestamp", "token", "signature")


def _text(value: str | bytes | inbound.FormFile | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


PARSERS: dict[str, Handler] = {
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "postmark": _postmark,
    "mime": _mime,
}


async def email_webhook(request: web.Request) -> web.Response:
    provider = request.match_info["provider"]
    parse = PARSERS.get(provider)
    if parse is None:
        raise web.HTTPNotFound(text=f"unknown email provider {provider!r}; use {PROVIDERS}\n")
    app = request.app
    limit = app[settings_key].max_email_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    try:
        email, seen_token = await parse(request)
    except inbound.EmailFormatError as exc:
        log.warning("email.bad_request", provider=provider, error=str(exc))
        raise web.HTTPBadRequest(text=f"not a {provider} inbound email: {exc}\n") from exc

    now = app[clock_key]()
    try:
        routed = await route_contact(
            email.contact(received_at=now),
            app[store_key].unit_of_work(),
            app[routing_key].active,
            now,
            secret=app[customer_secret_key],
            metrics=app[metrics_key],
            forward=Forward(email.raw, {"sender": email.sender, "provider": provider}),
            seen_token=seen_token,
            source=provider,
        )
    except TokenReplayed as exc:
        raise _refuse(request, provider, "token seen before (replay)") from exc
    except DatabaseUnavailable as exc:
        raise web.HTTPServiceUnavailable(
            text="database unavailable; retry later\n", headers={"Retry-After": "30"}
        ) from exc
    if routed.fresh:
        app[outbox_wake_key].set()
    return web.json_response(routed.as_json())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/email/{provider}", email_webhook)
