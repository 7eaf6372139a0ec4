"""Duplicate storms and callbacks out of order (issue #15, SPEC §7: "Providers' retries and
duplicates produce one interaction and one forward"): the real app on a real SQLite file,
signed requests fired together, the forwards read back from a real SMTP server.

Every duplicate gets the first delivery's answer, none gets a 5xx, and each contact is one
interaction with at most one forward."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from integrations.signing import HEADER, sign
from router.store import Store
from router.web.appkeys import store_key

from .background import deliver_due_at, forwards_delivered
from .conftest import Clock, app_time, post_twilio, shipped_data, store_document
from .smtp_sink import SmtpSink
from .test_email import MAILGUN_KEY, SECRET, email_settings, interactions, message
from .test_voice import CALLER, DIAL_STATUS, ROUTE, closed_port, dialled, route

Client = TestClient[Any, Any]
STATUS = "/webhooks/twilio/voice/status"


def no_server_errors(responses: list[ClientResponse]) -> None:
    assert [r.status for r in responses if r.status >= 500] == []


async def bodies(responses: list[ClientResponse]) -> list[str]:
    return [await response.text() for response in responses]


# -- calls ------------------------------------------------------------------------------------


async def test_fifty_identical_route_requests_get_one_answer_and_one_interaction(
    client: Client, store: Store
) -> None:
    form = {"CallSid": "CA-storm", "From": CALLER, "To": "+420555000111", "Digits": "1"}
    responses = await asyncio.gather(*(post_twilio(client, ROUTE, form) for _ in range(50)))
    assert {r.status for r in responses} == {200}
    assert len(set(await bodies(responses))) == 1
    [row] = await store.interactions(limit=None)
    assert row.provider_id == "CA-storm"


async def test_a_status_callback_before_the_route_makes_one_interaction(
    client: Client, store: Store
) -> None:
    """The call ended (hung up) before its /route was recorded: the status callback records
    it as abandoned, and the late /route and its retries find that one row."""
    ended = {"CallSid": "CA-late", "From": CALLER, "CallStatus": "completed", "CallDuration": "4"}
    assert (await post_twilio(client, STATUS, ended)).status == 200
    late = await asyncio.gather(*(route(client, "CA-late", Digits="1") for _ in range(5)))
    assert len(set(late)) == 1
    [row] = await store.interactions(limit=None)
    assert (row.provider_id, row.outcome, row.call_status) == ("CA-late", "abandoned", "completed")


async def test_status_callbacks_of_an_unrouted_call_racing_make_one_interaction(
    client: Client, store: Store
) -> None:
    ended = {"CallSid": "CA-gone", "From": CALLER, "CallStatus": "no-answer", "CallDuration": "0"}
    responses = await asyncio.gather(*(post_twilio(client, STATUS, ended) for _ in range(20)))
    assert {r.status for r in responses} == {200}
    assert len(set(await bodies(responses))) == 1
    [row] = await store.interactions(limit=None)
    assert (row.outcome, row.call_status) == ("abandoned", "no-answer")


async def test_a_dial_status_before_the_route_is_answered_and_breaks_nothing(
    client: Client, store: Store
) -> None:
    """A dial outcome for a call not (yet) recorded — its /route answered while the
    database was away — still gets its TwiML; the call is then routed once."""
    path = f"{DIAL_STATUS}?attempt=1&destination=partner"
    form = {"CallSid": "CA-early", "From": CALLER, "DialCallStatus": "busy"}
    early = await asyncio.gather(*(post_twilio(client, path, form) for _ in range(5)))
    assert {r.status for r in early} == {200}
    assert len(set(await bodies(early))) == 1
    assert ET.fromstring((await bodies(early))[0]).find("Dial") is not None  # the fallback
    await route(client, "CA-early", Digits="1")
    [row] = await store.interactions(limit=None)
    assert (row.provider_id, row.outcome) == ("CA-early", "routed")


async def test_repeated_dial_status_with_different_outcomes_gets_the_first_answer(
    client: Client, store: Store
) -> None:
    """Twilio's retry of the same action URL must not dial twice, whatever status it
    carries: the first recorded answer stands for every repeat of that step."""
    _, action = dialled(await route(client, "CA-dial", Digits="2"))
    path = action.removeprefix("https://switchboard.example/sb")
    forms = [
        {"CallSid": "CA-dial", "From": CALLER, "DialCallStatus": status}
        for status in ("no-answer", "completed", "busy", "failed") * 5
    ]
    responses = await asyncio.gather(*(post_twilio(client, path, form) for form in forms))
    assert {r.status for r in responses} == {200}
    answers = set(await bodies(responses))
    assert len(answers) == 1
    [row] = await store.interactions(limit=None)
    first = ET.fromstring(answers.pop())
    # the stored answer and the outcome agree: hung up when answered, else the fallback
    assert (row.outcome == "answered") == (first.find("Hangup") is not None)
    assert (row.outcome == "fallback") == (first.find("Dial") is not None)


async def test_status_then_dial_status_then_route_out_of_order_no_server_error(
    client: Client, store: Store
) -> None:
    sid = "CA-shuffled"
    callbacks = [
        post_twilio(client, STATUS, {"CallSid": sid, "From": CALLER, "CallStatus": "completed"}),
        post_twilio(
            client,
            f"{DIAL_STATUS}?attempt=2&destination=hotline",
            {"CallSid": sid, "From": CALLER, "DialCallStatus": "no-answer"},
        ),
        post_twilio(client, ROUTE, {"CallSid": sid, "From": CALLER, "Digits": "1"}),
    ]
    responses = [await callback for callback in callbacks]
    no_server_errors(responses)
    assert len(await store.interactions(limit=None)) == 1


# -- email: the same Message-ID through every provider at once ------------------------------


def mailgun_form(raw: bytes, signed_at: int, token: str) -> dict[str, str]:
    signature = hmac.new(
        MAILGUN_KEY.encode(), f"{signed_at}{token}".encode(), hashlib.sha256
    ).hexdigest()
    return {
        "timestamp": str(signed_at),
        "token": token,
        "signature": signature,
        "body-mime": raw.decode(),
        "recipient": "podpora@eshop.example",
    }


def deliveries(client: Client, raw: bytes, copies: int) -> list[Any]:
    """*copies* deliveries of *raw* by each provider; Mailgun's each with a token of its
    own, as Mailgun signs every post anew."""
    now = app_time(client)
    basic = base64.b64encode(f"postmark:{SECRET}".encode()).decode()
    made: list[Any] = []
    for n in range(copies):
        made += [
            client.post(f"/webhooks/email/sendgrid?key={SECRET}", data={"email": raw.decode()}),
            client.post(
                "/webhooks/email/mailgun", data=mailgun_form(raw, now, f"token-{n}-{time.time()}")
            ),
            client.post(
                "/webhooks/email/postmark",
                json={"RawEmail": raw.decode(), "OriginalRecipient": "podpora@eshop.example"},
                headers={"Authorization": f"Basic {basic}"},
            ),
            client.post(
                "/webhooks/email/mime",
                data=raw,
                headers={"Content-Type": "message/rfc822", HEADER: sign(SECRET, raw, now)},
            ),
        ]
    return made


async def test_one_email_delivered_twenty_times_by_four_providers_is_one_forward(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> None:
    settings = email_settings(tmp_path, smtp)
    client = await email_app(settings)
    raw = message(message_id="<storm-1@example.cz>")
    responses = await asyncio.gather(*deliveries(client, raw, copies=5))
    assert {r.status for r in responses} == {200}, await bodies(responses)
    answers = [await r.json() for r in responses]
    assert len({answer["interaction_id"] for answer in answers}) == 1
    assert len({tuple(sorted(answer.items())) for answer in answers}) == 1  # the same answer
    store = client.app[store_key]
    await forwards_delivered(store, 1)
    assert await deliver_due_at(store, clock() + timedelta(days=1)) == []
    assert len(await smtp.wait_for(1)) == 1
    assert [row.provider_id for row in await interactions(settings)] == ["storm-1@example.cz"]


# -- SMS: the same MessageSid at once -------------------------------------------------------


async def test_one_sms_delivered_twenty_times_at_once_is_one_interaction(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> None:
    settings = email_settings(tmp_path, smtp)
    data = shipped_data()
    for destination in data["destinations"].values():  # hand-offs stay on loopback, refused
        destination["chat"] = f"http://127.0.0.1:{closed_port()}/chat"
    await store_document(settings, data, clock())
    client = await email_app(settings)
    form = {"MessageSid": "SM-storm", "From": CALLER, "Body": "Kde je moje objednávka?"}
    responses = await asyncio.gather(
        *(post_twilio(client, "/webhooks/twilio/messaging", form) for _ in range(20))
    )
    assert {r.status for r in responses} == {200}
    assert len(set(await bodies(responses))) == 1
    store = client.app[store_key]
    rows = await interactions(settings)
    assert [row.provider_id for row in rows] == ["SM-storm"]
    assert len(await store.outbox_rows(statuses=["pending", "delivered", "failed"])) == 1
