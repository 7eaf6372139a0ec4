"""HTTP endpoints of the email channel: ``POST /webhooks/email/{provider}``.

Each request is: check its size; verify the provider's credentials (``verify_*`` in
``integrations/email_inbound.py``, on values read here, freshness against the app's clock);
parse the provider's format into one neutral InboundEmail and its
:class:`~router.core.contact.Contact`; hand it to ``route_contact`` (through
``router/web/forwarded.py``), which records the interaction with its forward in the outbox
(one transaction) before the webhook answers 200. An outage answers 503 so the provider
retries; a retry or duplicate gets the first answer and creates nothing new.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import BasicAuth, web

from integrations import email_inbound as inbound
from integrations import email_message, signing
from router.core.jsondata import parse_json
from router.service.ports import TokenReplayed
from router.web.appkeys import clock_key, metrics_key, settings_key
from router.web.bodies import MULTIPART_TYPE, body_bytes, form_pairs, multipart_form
from router.web.forwarded import route_forwarded

log = structlog.get_logger(__name__)

PROVIDERS = ("sendgrid", "mailgun", "postmark", "mime")

#: A provider's way in: the parsed email, and the provider token to record as seen.
Parsed = tuple[inbound.InboundEmail, tuple[str, str] | None]
#: Verifies and parses one provider's request; *now* (unix seconds, the app's clock) is
#: what signature freshness is measured against.
Handler = Callable[[web.Request, float], Awaitable[Parsed]]


def _refuse(request: web.Request, provider: str, why: str) -> web.HTTPForbidden:
    request.app[metrics_key].signatures_rejected.labels(provider).inc()
    log.warning("email.refused", provider=provider, reason=why)
    return web.HTTPForbidden(text=f"{why}\n")


def _require(request: web.Request, provider: str, why: str | None) -> None:
    """403 (logged, counted) when a verify_* gave a reason."""
    if why is not None:
        raise _refuse(request, provider, why)


def _basic_password(request: web.Request) -> str | None:
    """The basic-auth password, or None without a well-formed basic Authorization header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    try:
        credentials = BasicAuth.decode(header, encoding="utf-8")
    except ValueError:  # another scheme, bad base64, no colon, not UTF-8
        return None
    password: str = credentials.password  # a namedtuple field: typed Any by aiohttp
    return password


def _secret(request: web.Request, provider: str) -> str:
    secret = request.app[settings_key].email_webhook_secret
    if secret is None:
        raise _refuse(request, provider, "SWITCHBOARD_EMAIL_WEBHOOK_SECRET is not set")
    return secret


async def _form(request: web.Request) -> dict[str, str | bytes | inbound.FormFile]:
    """The form's fields with their exact bytes: providers post text in the message's own
    charset (iso-8859-2, windows-1250, …), which a form parser would force through UTF-8.
    Uploads become FormFiles. Read within the route's limit and deadline
    (``router/web/bodies.py``); a form that cannot be read is a 400 there."""
    fields: dict[str, str | bytes | inbound.FormFile] = {}
    if request.content_type != MULTIPART_TYPE:
        body = await body_bytes(request)
        for name, value in form_pairs(body):
            fields[name.decode("utf-8", "replace")] = value
        return fields
    for part in await multipart_form(request):
        if part.filename:
            fields[part.name] = inbound.FormFile(
                filename=part.filename,
                content_type=part.content_type or "application/octet-stream",
                data=part.data,
            )
        else:
            fields[part.name] = part.data
    return fields


async def _sendgrid(request: web.Request, now: float) -> Parsed:
    secret = _secret(request, "sendgrid")
    why = inbound.verify_sendgrid(
        secret, key=request.query.get("key"), password=_basic_password(request)
    )
    _require(request, "sendgrid", why)
    return inbound.parse_sendgrid(await _form(request)), None


async def _postmark(request: web.Request, now: float) -> Parsed:
    secret = _secret(request, "postmark")
    why = inbound.verify_postmark(secret, password=_basic_password(request))
    _require(request, "postmark", why)
    try:
        payload = parse_json(await body_bytes(request))
    except ValueError as exc:  # also not UTF-8, nested too deep
        raise inbound.EmailFormatError(f"not JSON: {exc}") from exc
    return inbound.parse_postmark(payload), None


async def _mime(request: web.Request, now: float) -> Parsed:
    secret = _secret(request, "mime")
    raw = await body_bytes(request)
    signature = request.headers.get(signing.HEADER, "")
    _require(request, "mime", inbound.verify_mime(secret, raw, signature, now))
    return inbound.parse_mime(raw), None


async def _mailgun(request: web.Request, now: float) -> Parsed:
    key = request.app[settings_key].mailgun_signing_key
    if key is None:
        raise _refuse(request, "mailgun", "SWITCHBOARD_MAILGUN_SIGNING_KEY is not set")
    form = await _form(request)
    signed = inbound.mailgun_signature(form)
    _require(request, "mailgun", inbound.verify_mailgun(key, signed, now))
    # the token is marked seen in the unit of work that records the email, so a replay is
    # refused only once the first post is stored (TokenReplayed, in email_webhook)
    return inbound.parse_mailgun(form), ("mailgun", signed.token)


VERIFIED_EMAIL: dict[str, Handler] = {
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "postmark": _postmark,
    "mime": _mime,
}


async def email_webhook(request: web.Request) -> web.Response:
    provider = request.match_info["provider"]
    verified_email = VERIFIED_EMAIL.get(provider)
    if verified_email is None:
        raise web.HTTPNotFound(text=f"unknown email provider {provider!r}; use {PROVIDERS}\n")
    app = request.app
    # over SWITCHBOARD_MAX_EMAIL_BYTES: 413 from router/web/bodies.py, nothing read or kept
    now = app[clock_key]()
    try:
        email, seen_token = await verified_email(request, now.timestamp())
    except inbound.EmailFormatError as exc:
        log.warning("email.bad_request", provider=provider, error=str(exc))
        raise web.HTTPBadRequest(text=f"not a {provider} inbound email: {exc}\n") from exc
    meta = {"sender": email.sender, "provider": provider}
    try:
        routed = await route_forwarded(
            request,
            email.contact(received_at=now),
            email.raw,
            meta,
            source=provider,
            seen_token=seen_token,
            masked=email_message.masked_original,
        )
    except TokenReplayed as exc:
        raise _refuse(request, provider, "token seen before (replay)") from exc
    return web.json_response(routed.as_json())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/email/{provider}", email_webhook)
