"""What the tests of hostile input share (test_bad_input, test_fuzz_http): one real app
holding every webhook's secret, forwarding to a real SMTP server; each webhook's way to
send a body signed as its provider signs it; and what the database holds, to show that a
refused request stored nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from integrations.signing import HEADER, sign
from router.core.lifecycle import ForwardStatus
from router.service.tokens import Role, create_token
from router.settings import Settings, SmtpSettings
from router.store import Store

from .conftest import PUBLIC_URL, app_time, make_settings, twilio_signature
from .smtp_sink import SmtpSink
from .test_chat import CHAT_SECRET
from .test_email import MAILGUN_KEY, SECRET

Client = TestClient[Any, Any]

#: Every inbound webhook, by the name the tests use.
WEBHOOKS = {
    "voice": "/webhooks/twilio/voice",
    "voice-route": "/webhooks/twilio/voice/route",
    "voice-dial-status": "/webhooks/twilio/voice/dial-status?attempt=1&destination=hotline",
    "voice-recorded": "/webhooks/twilio/voice/recorded?destination=hotline",
    "voice-status": "/webhooks/twilio/voice/status",
    "messaging": "/webhooks/twilio/messaging",
    "sendgrid": f"/webhooks/email/sendgrid?key={SECRET}",
    "mailgun": "/webhooks/email/mailgun",
    "postmark": "/webhooks/email/postmark",
    "mime": "/webhooks/email/mime",
    "chat": "/webhooks/chat",
    "partner": "/webhooks/partner/feedback",
}
TWILIO = [name for name in WEBHOOKS if name.startswith(("voice", "messaging"))]


def hostile_settings(tmp_path: Path, relay: SmtpSink, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp": SmtpSettings(host="127.0.0.1", port=relay.port, security="none"),
        "email_webhook_secret": SECRET,
        "mailgun_signing_key": MAILGUN_KEY,
        "chat_secret": CHAT_SECRET,
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


@dataclass(frozen=True, slots=True)
class Stored:
    """What the database holds that a webhook or a change could have added (forwards of
    every status: one delivered meanwhile is still counted)."""

    interactions: int
    forwards: int
    version: int


async def stored(store: Store) -> Stored:
    forwards = await store.outbox_rows(statuses=[status.value for status in ForwardStatus])
    return Stored(
        interactions=len(await store.interactions(limit=None)),
        forwards=len(forwards),
        version=await store.latest_version_number(),
    )


async def admin_token(store: Store, now: Any) -> str:
    return await create_token(store, "fuzz-admin", Role.ADMIN, now)


def mailgun_signed(client: Client, token: str) -> dict[str, str]:
    """Mailgun's three signature fields, stamped by the app's clock."""
    timestamp = app_time(client)
    digest = hmac.new(MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return {"timestamp": str(timestamp), "token": token, "signature": digest.hexdigest()}


def basic_auth(password: str) -> str:
    return "Basic " + base64.b64encode(f"postmark:{password}".encode()).decode()


async def post_signed(
    client: Client,
    webhook: str,
    body: bytes,
    content_type: str,
    *,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ClientResponse:
    """POST *body* to *webhook* with the credentials its provider would send: a Twilio
    signature over *form* (what the body is meant to hold; {} for junk), our HMAC over the
    raw body, the SendGrid key, Postmark's basic auth. Mailgun signs fields inside the body,
    so a junk body reaches it unsigned."""
    path = WEBHOOKS[webhook]
    sent = {"Content-Type": content_type, **(headers or {})}
    if webhook in TWILIO:
        sent.setdefault("X-Twilio-Signature", twilio_signature(PUBLIC_URL + path, form or {}))
    elif webhook in ("mime", "chat", "partner"):
        secret = SECRET if webhook == "mime" else CHAT_SECRET
        sent.setdefault(HEADER, sign(secret, body, app_time(client)))
    elif webhook == "postmark":
        sent.setdefault("Authorization", basic_auth(SECRET))
    # aiohttp warns (an error here) about large raw bytes blocking the loop: stream them
    data = io.BytesIO(body) if len(body) > 1_000_000 else body
    return await client.post(path, data=data, headers=sent)


async def error_of(response: ClientResponse) -> str:
    """The message of a 4xx answer: the JSON ``error`` (and problems), or the text line."""
    text = await response.text()
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        problems = body.get("problems") or []
        return " ".join([body["error"], *(str(p.get("message", "")) for p in problems)])
    return text.strip()
