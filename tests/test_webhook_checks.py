"""What the inbound webhooks check before anything is stored, and how they answer an outage.

Signature freshness is judged by the app's clock (SPEC §5: a timestamp more than 5 minutes
off is refused like a bad signature): X-Switchboard-Signature on chat and mime, and Mailgun's
signed timestamp. The tests move the app's clock a year away from the machine's, so only a
signature stamped by the app's clock can pass."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from integrations.signing import HEADER, sign
from router.web.appkeys import settings_key
from router.web.forwarded import RETRY_AFTER_SECONDS

from .conftest import Clock, app_time, post_twilio, shipped_data, store_document
from .smtp_sink import SmtpSink
from .test_chat import CHAT_SECRET, chat
from .test_email import MAILGUN_KEY, SECRET, email_settings, interactions, message

Client = TestClient[Any, Any]
Post = Callable[[Client, int], Awaitable[ClientResponse]]

SIX_MINUTES = timedelta(minutes=6)
#: One message per webhook, the same bytes at every attempt: a refused post leaves nothing
#: behind, so the same message signed in time is then accepted as new.
EMAIL = message(message_id="<fresh-1@example.cz>")
CHAT_BODY = json.dumps(chat("Kde je moje objednávka?", message_id="m-fresh-1")).encode()


async def post_chat_signed_at(client: Client, signed_at: int) -> ClientResponse:
    headers = {"Content-Type": "application/json", HEADER: sign(CHAT_SECRET, CHAT_BODY, signed_at)}
    return await client.post("/webhooks/chat", data=CHAT_BODY, headers=headers)


async def post_mime_signed_at(client: Client, signed_at: int) -> ClientResponse:
    headers = {"Content-Type": "message/rfc822", HEADER: sign(SECRET, EMAIL, signed_at)}
    return await client.post("/webhooks/email/mime", data=EMAIL, headers=headers)


async def post_mailgun_signed_at(client: Client, signed_at: int) -> ClientResponse:
    token = "mailgun-token-1"
    signature = hmac.new(
        MAILGUN_KEY.encode(), f"{signed_at}{token}".encode(), hashlib.sha256
    ).hexdigest()
    form = {
        "timestamp": str(signed_at),
        "token": token,
        "signature": signature,
        "body-mime": EMAIL.decode(),
        "recipient": "podpora@eshop.example",
        "sender": "jana.novakova@example.cz",
    }
    return await client.post("/webhooks/email/mailgun", data=form)


WEBHOOKS: dict[str, Post] = {
    "chat": post_chat_signed_at,
    "mime": post_mime_signed_at,
    "mailgun": post_mailgun_signed_at,
}


@pytest.fixture
async def moved_app(
    tmp_path: Path, smtp: SmtpSink, clock: Clock, started_apps: Callable[..., Any]
) -> Client:
    """An app on every webhook's secret, its clock a year ahead of the machine's."""
    settings = email_settings(tmp_path, smtp, chat_secret=CHAT_SECRET)
    data = shipped_data()
    for destination in data["destinations"].values():  # loopback, refused: nothing leaves
        destination["chat"] = "http://127.0.0.1:9/chat"
    await store_document(settings, data, clock())
    client: Client = await started_apps(settings)
    clock.set(datetime.now(UTC) + timedelta(days=365))
    return client


async def stored(client: Client) -> int:
    return len(await interactions(client.app[settings_key]))


@pytest.mark.parametrize("webhook", WEBHOOKS)
async def test_a_signature_six_minutes_older_than_the_app_clock_is_refused_and_stores_nothing(
    moved_app: Client, clock: Clock, webhook: str
) -> None:
    post = WEBHOOKS[webhook]
    signed_at = app_time(moved_app)
    clock.advance(SIX_MINUTES)
    response = await post(moved_app, signed_at)
    assert response.status == 403, await response.text()
    assert await stored(moved_app) == 0
    accepted = await post(moved_app, app_time(moved_app))  # the same message, signed in time
    assert accepted.status == 200, await accepted.text()
    assert await stored(moved_app) == 1


@pytest.mark.parametrize("webhook", WEBHOOKS)
async def test_a_signature_made_at_the_app_clocks_time_is_accepted(
    moved_app: Client, webhook: str
) -> None:
    response = await WEBHOOKS[webhook](moved_app, app_time(moved_app))
    assert response.status == 200, await response.text()
    assert set(await response.json()) == {"interaction_id", "category", "destination", "reason"}
    assert await stored(moved_app) == 1


@pytest.mark.parametrize("webhook", WEBHOOKS)
async def test_a_signature_by_the_machines_clock_is_refused_when_the_app_clock_differs(
    moved_app: Client, webhook: str
) -> None:
    response = await WEBHOOKS[webhook](moved_app, int(time.time()))
    assert response.status == 403, await response.text()
    assert await stored(moved_app) == 0


@pytest.mark.parametrize("webhook", WEBHOOKS)
async def test_the_window_is_five_minutes_either_way_of_the_app_clock(
    moved_app: Client, webhook: str
) -> None:
    ahead = await WEBHOOKS[webhook](moved_app, app_time(moved_app) + 360)
    assert ahead.status == 403, await ahead.text()
    assert await stored(moved_app) == 0
    within = await WEBHOOKS[webhook](moved_app, app_time(moved_app) - 240)
    assert within.status == 200, await within.text()
    assert await stored(moved_app) == 1


# -- basic-auth credentials, read with aiohttp.BasicAuth.decode -----------------------------


def basic(credentials: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


async def test_sendgrid_accepts_the_secret_as_the_basic_auth_password(
    moved_app: Client,
) -> None:
    form = {"email": EMAIL.decode()}
    response = await moved_app.post(
        "/webhooks/email/sendgrid", data=form, headers=basic(f"sendgrid:{SECRET}".encode())
    )
    assert response.status == 200, await response.text()
    assert await stored(moved_app) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic"},
        {"Authorization": f"Bearer {SECRET}"},
        basic(SECRET.encode()),  # no colon: no password at all
        basic(b"postmark:\xff" + SECRET.encode()),  # not UTF-8
        basic(b"postmark:wrong"),
        {},
    ],
    ids=["bad-base64", "no-credentials", "bearer", "no-colon", "not-utf8", "wrong", "none"],
)
async def test_postmark_refuses_anything_but_the_secret_as_password(
    moved_app: Client, headers: dict[str, str]
) -> None:
    response = await moved_app.post("/webhooks/email/postmark", json={}, headers=headers)
    assert response.status == 403, await response.text()
    assert await stored(moved_app) == 0


# -- an outage: every forwarded contact's webhook answers 503 the same way ------------------


async def test_with_the_database_down_every_webhook_asks_for_the_same_retry(
    tmp_path: Path, smtp: SmtpSink, started_apps: Callable[..., Any]
) -> None:
    from .test_voice import closed_port

    url = f"postgresql+asyncpg://switchboard@127.0.0.1:{closed_port()}/switchboard"
    settings = email_settings(
        tmp_path, smtp, chat_secret=CHAT_SECRET, database_url=url, db_timeout_seconds=1.0
    )
    client: Client = await started_apps(settings)
    feedback = json.dumps({"interaction_id": 1, "outcome": "resolved"}).encode()
    sms = {"MessageSid": "SM-down", "From": "+420777000111", "Body": "Kde je objednávka?"}
    answers = {
        "mime": await post_mime_signed_at(client, app_time(client)),
        "chat": await post_chat_signed_at(client, app_time(client)),
        "sms": await post_twilio(client, "/webhooks/twilio/messaging", sms),
        "feedback": await client.post(
            "/webhooks/partner/feedback",
            data=feedback,
            headers={HEADER: sign(CHAT_SECRET, feedback, app_time(client))},
        ),
    }
    assert {name: r.status for name, r in answers.items()} == dict.fromkeys(answers, 503)
    assert {r.headers.get("Retry-After") for r in answers.values()} == {str(RETRY_AFTER_SECONDS)}
    assert smtp.mailbox.received == []
