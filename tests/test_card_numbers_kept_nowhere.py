"""SPEC §6 end to end: a card number a customer writes, in any spelling (HTML references,
separators, markup between the groups, expiry date and security code after it), is in
nothing stored, logged or sent to the partner — on every channel: the chat widget, Twilio
Messaging, a call's speech, every email provider and the partner's feedback.

The real app on a real SQLite file, a real SMTP server and a real chat endpoint on
loopback; afterwards the database file and its WAL are read byte by byte, with the log
output and everything the partner received. The one stated exception (README, "Card
numbers"): an email for an in-house destination is kept as it came until it is delivered."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from integrations.signing import HEADER, sign
from integrations.twilio_messaging import MESSAGING_PATH
from router.service.archive import find_interactions
from router.service.records import InteractionSearch
from router.web.appkeys import customer_secret_key, store_key

from .background import forwards_delivered
from .conftest import Clock, app_time, post_twilio, shipped_data, store_document
from .smtp_sink import SmtpSink
from .test_chat import CHAT_SECRET, Receiver, chat, post_chat
from .test_email import HOTLINE, PARTNER, SECRET, email_settings, mailgun_fields, post_mime

Client = TestClient[Any, Any]

#: three test card numbers, their first twelve digits never to be seen again
CARDS = ("4111111111111111", "5555555555554444", "4012888888881881")
PLAIN = (
    "Dobrý den, platba za objednávku neprošla. Karta 4111 1111 1111 1111 12/28 123, "
    "druhá 5555-5555-5555-4444 exp 01/29 cvv 987, třetí 4012\u00a08888\u200b8888 1881."
)
HTML = (
    "<html><body><p>Dobrý den, platba za objednávku neprošla.</p>"
    "<p>Karta 4111&nbsp;1111&nbsp;1111&nbsp;1111 exp&nbsp;12/28 cvv&nbsp;123</p>"
    "<p>druhá 5555&#160;5555&#xA0;5555&#32;4444 01/29 987, "
    "třetí 4012 <b>8888</b> 8888&shy;1881</p></body></html>"
)
#: what a chat widget, an SMS or a call's speech may carry: the forms of both
CHAT_TEXT = f"{PLAIN} {HTML}"
SUBJECT = "Platba kartou 4111 1111 1111 1111 za objednávku neprošla"


def _spelled(digits: str) -> re.Pattern[bytes]:
    # the digits in order, anything but a digit or a mask between them: spaces, dashes,
    # references, tags, invisible characters, quoted-printable soft line breaks
    return re.compile(b"[^0-9*]{0,16}".join(re.escape(d.encode()) for d in digits))


LEAKS = [
    *(_spelled(card[:12]) for card in CARDS),
    re.compile(rb"12\s*/\s*28|01\s*/\s*29"),  # the expiry dates
    re.compile(rb"(?i)cv[vc][^0-9*]{0,12}(?:123|987)|\b987\b"),  # the security codes
]


def leaks(where: str, data: bytes) -> list[str]:
    """What of the card numbers, expiry dates and codes *data* shows: as its bytes are, and
    read as HTML (a numeric reference such as ``&#160;`` has digits of its own)."""
    return [
        f"{where}: {match.group()!r}"
        for pattern in LEAKS
        for text in _as_read(data)
        if (match := pattern.search(text))
    ]


def _as_read(data: bytes) -> tuple[bytes, bytes]:
    return data, html.unescape(data.decode("utf-8", "replace")).encode("utf-8")


def test_the_search_sees_every_card_in_every_spelling_used() -> None:
    for text in (PLAIN, HTML):
        for pattern in LEAKS:
            assert any(pattern.search(read) for read in _as_read(text.encode())), pattern


def readable(data: bytes) -> bytes:
    """*data* and, as far as it is a MIME message, its text parts decoded: a base64 or
    quoted-printable body hides nothing from the search."""
    if not data.lstrip()[:200].count(b":"):
        return data
    decoded = [data]
    for part in message_from_bytes(data).walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            charset = part.get_content_charset() or "utf-8"
            decoded.append(payload.decode(charset, "replace").encode("utf-8"))
    return b"\n".join(decoded)


def database_bytes(database: Path) -> dict[str, bytes]:
    """The database file and its WAL as they are on disk, and the outbox payloads decoded
    (an email's parts may be base64)."""
    files = {
        path.name: path.read_bytes()
        for path in (database, database.with_name(database.name + "-wal"))
        if path.exists()
    }
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT id, payload FROM outbox").fetchall()
    connection.close()
    for forward_id, payload in rows:
        if payload is not None:
            files[f"outbox payload {forward_id}"] = readable(payload)
    return files


@pytest.fixture
async def partner_chat() -> AsyncIterator[tuple[Receiver, str]]:
    """The destinations' chat endpoints (test_chat's Receiver) on loopback."""
    state = Receiver()
    app = web.Application()
    app.router.add_post("/chat/{name}", state.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield state, str(server.make_url("/chat")).rstrip("/")


async def start_app(
    tmp_path: Path,
    smtp: SmtpSink,
    clock: Clock,
    chat_base: str,
    started_apps: Callable[..., Any],
    cutover: int,
) -> tuple[Client, Path]:
    settings = email_settings(tmp_path, smtp, chat_secret=CHAT_SECRET)
    data = shipped_data()
    data["destinations"]["partner"]["chat"] = f"{chat_base}/partner"
    data["destinations"]["hotline"]["chat"] = f"{chat_base}/hotline"
    shares = {"admin": cutover, "product": cutover, "unknown": cutover}
    data["cutover"] = {"phone": shares, "email": shares, "chat": shares}
    await store_document(settings, data, clock())
    client: Client = await started_apps(settings)
    return client, tmp_path / "switchboard.db"


def mime_email(message_id: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Jana Nováková <jana.novakova@example.cz>"
    mail["To"] = "podpora@eshop.example"
    mail["Subject"] = SUBJECT
    mail["Message-ID"] = message_id
    mail.set_content(PLAIN, cte="8bit")
    mail.add_alternative(HTML, subtype="html", cte="quoted-printable")
    return mail.as_bytes()


async def post_every_email_provider(client: Client) -> list[int]:
    """The same message through SendGrid, Mailgun, Postmark and a raw MIME post; the
    interaction ids."""
    sender = "Jana Nováková <jana.novakova@example.cz>"
    answers = [
        await client.post(
            f"/webhooks/email/sendgrid?key={SECRET}",
            data={"from": sender, "to": "podpora@eshop.example", "subject": SUBJECT}
            | {"text": PLAIN, "html": HTML},
        ),
        await client.post(
            "/webhooks/email/mailgun",
            data=mailgun_fields(app_time(client), "mailgun-card-token")
            | {"from": sender, "subject": SUBJECT, "body-plain": PLAIN, "body-html": HTML}
            | {"Message-Id": "<mailgun-card@example.cz>"},
        ),
        await client.post(
            "/webhooks/email/postmark",
            json={
                "From": "jana.novakova@example.cz",
                "FromName": "Jana Nováková",
                "To": "podpora@eshop.example",
                "Subject": SUBJECT,
                "MessageID": "postmark-card-1",
                "TextBody": PLAIN,
                "HtmlBody": HTML,
            },
            headers={
                "Authorization": "Basic " + base64.b64encode(f"pm:{SECRET}".encode()).decode()
            },
        ),
        await post_mime(client, mime_email("<mime-card@example.cz>")),
    ]
    ids = []
    for response in answers:
        assert response.status == 200, await response.text()
        ids.append((await response.json())["interaction_id"])
    return ids


async def post_feedback(client: Client, interaction_id: int) -> None:
    body = json.dumps(
        {"interaction_id": interaction_id, "outcome": "resolved", "comment": CHAT_TEXT[:3900]}
    ).encode()
    response = await client.post(
        "/webhooks/partner/feedback",
        data=body,
        headers={HEADER: sign(CHAT_SECRET, body, app_time(client))},
    )
    assert response.status == 200, await response.text()


def everything_the_partner_got(
    smtp: SmtpSink, chat_state: Receiver, address: str = PARTNER
) -> Iterable[tuple[str, bytes]]:
    for index, received in enumerate(smtp.mailbox.received):
        if received.rcpt_tos == [address]:
            yield f"email {index}", readable(received.data)
    for index, handoff in enumerate(chat_state.received.get("partner", [])):
        yield f"chat hand-off {index}", json.dumps(handoff, ensure_ascii=False).encode()


def leaked_anywhere(
    database: Path, logs: io.StringIO, smtp: SmtpSink, chat_state: Receiver
) -> list[str]:
    """What of the card numbers the database file, its WAL, the log and everything the
    partner received show."""
    found = []
    for name, data in database_bytes(database).items():
        found += leaks(name, data)
    found += leaks("log", logs.getvalue().encode())
    for name, data in everything_the_partner_got(smtp, chat_state):
        found += leaks(name, data)
    return found


@pytest.mark.parametrize("log_format", ["json", "console"])
async def test_no_card_number_is_stored_logged_or_sent_to_the_partner_on_any_channel(
    tmp_path: Path,
    smtp: SmtpSink,
    clock: Clock,
    partner_chat: tuple[Receiver, str],
    started_apps: Callable[..., Any],
    log_output: Callable[[str], io.StringIO],
    log_format: str,
) -> None:
    logs = log_output(log_format)
    chat_state, chat_base = partner_chat
    client, database = await start_app(tmp_path, smtp, clock, chat_base, started_apps, 100)

    chatted = await post_chat(client, chat(CHAT_TEXT, message_id="chat-card-1", language="cs"))
    assert chatted.status == 200, await chatted.text()
    assert (await chatted.json())["destination"] == "partner"
    sms = {"MessageSid": "SM-card-1", "From": "+420601234567", "To": "+420555000111"}
    texted = await post_twilio(client, MESSAGING_PATH, sms | {"Body": CHAT_TEXT})
    assert texted.status == 200, await texted.text()
    call = {"CallSid": "CA-card-1", "From": "+420601234568", "To": "+420555000111"}
    called = await post_twilio(
        client, "/webhooks/twilio/voice/route", call | {"SpeechResult": CHAT_TEXT}
    )
    assert called.status == 200, await called.text()
    emailed = await post_every_email_provider(client)
    await post_feedback(client, emailed[0])

    await smtp.wait_for(4)
    await chat_state.wait_for("partner", 2)
    await forwards_delivered(client.app[store_key], 6)
    assert {tuple(r.rcpt_tos) for r in smtp.mailbox.received} == {(PARTNER,)}

    assert leaked_anywhere(database, logs, smtp, chat_state) == []
    # and the masks are there: nothing was simply dropped
    [handoff, *_] = chat_state.received["partner"]
    assert "**** **** **** 1111 **/** ***" in handoff["text"]
    assert "****&nbsp;****&nbsp;****&nbsp;1111" in handoff["text"]
    partner_mail = smtp.mailbox.received[0].message
    assert str(partner_mail["Subject"]).startswith("Platba kartou **** **** **** 1111")


async def test_an_email_for_the_hotline_is_kept_as_it_came_only_until_it_is_delivered(
    tmp_path: Path,
    smtp: SmtpSink,
    clock: Clock,
    partner_chat: tuple[Receiver, str],
    started_apps: Callable[..., Any],
) -> None:
    """The stated exception: the in-house hotline gets the original message, so the outbox
    holds it as it came; once delivered the body is gone from the row."""
    _, chat_base = partner_chat
    client, database = await start_app(tmp_path, smtp, clock, chat_base, started_apps, 0)
    response = await post_mime(client, mime_email("<mime-hotline@example.cz>"))
    assert (await response.json())["destination"] == "hotline"
    [received] = await smtp.wait_for(1)
    assert received.rcpt_tos == [HOTLINE]
    assert leaks("hotline", readable(received.data))  # the original, card numbers and all
    await forwards_delivered(client.app[store_key], 1)
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        assert connection.execute("SELECT payload FROM outbox").fetchall() == [(None,)]
    connection.close()


async def test_ids_the_sender_chose_keep_no_card_number_and_still_name_their_message(
    tmp_path: Path,
    smtp: SmtpSink,
    clock: Clock,
    partner_chat: tuple[Receiver, str],
    started_apps: Callable[..., Any],
    log_output: Callable[[str], io.StringIO],
) -> None:
    """A chat message id, a conversation id and an email's Message-ID are chosen by the
    customer's side; one holding a card number is stored as its keyed hash, so it is in
    nothing stored, logged or handed off, while a redelivery is still recognised by it and a
    reply still finds its thread."""
    logs = log_output("json")
    chat_state, chat_base = partner_chat
    client, database = await start_app(tmp_path, smtp, clock, chat_base, started_apps, 100)
    first = chat("Kde je moje objednávka?", conversation=CARDS[1], message_id=CARDS[0])
    answers = [await post_chat(client, first) for _ in range(2)]
    second = chat("Ještě jednou", conversation=CARDS[1], message_id="plain-2")
    answers.append(await post_chat(client, second))
    mail = EmailMessage()
    mail["From"] = "jana.novakova@example.cz"
    mail["Subject"] = "Kde je moje objednávka?"
    mail["Message-ID"] = "<x-4012888888881881-x@example.cz>"
    mail.set_content("Objednávka 123 nedorazila.")
    reply = EmailMessage()
    reply["From"] = "jana.novakova@example.cz"
    reply["Subject"] = "Re: Kde je moje objednávka?"
    reply["Message-ID"] = "<reply-1@example.cz>"
    reply["In-Reply-To"] = "<x-4012888888881881-x@example.cz>"
    reply.set_content("Jak jsem psala.")
    answers += [await post_mime(client, mail.as_bytes()), await post_mime(client, reply.as_bytes())]
    for response in answers:
        assert response.status == 200, await response.text()
    ids = [(await response.json())["interaction_id"] for response in answers]
    assert ids[0] == ids[1] and len(set(ids)) == 4  # the redelivered chat is the same one

    store = client.app[store_key]
    await forwards_delivered(store, 4)
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT provider_id, conversation_id, category_source FROM interactions ORDER BY id"
        ).fetchall()
    connection.close()
    [(chat_id, conversation, _), (_, conversation_2, chat_source), *emails] = rows
    assert chat_id.startswith("masked-") and conversation.startswith("masked-")
    assert conversation_2 == conversation and chat_source == "thread"
    [(email_id, _, _), (_, _, reply_source)] = emails
    assert email_id.startswith("masked-") and reply_source == "thread"
    handed_off = {handoff["conversation_id"] for handoff in chat_state.received["partner"]}
    assert handed_off == {conversation}

    assert leaked_anywhere(database, logs, smtp, chat_state) == []
    # the partner's copy names the message by its masked id, the reply its thread the same way
    [original, answer] = [received.message for received in smtp.mailbox.received]
    assert original["Message-ID"] == "<x-************1881-x@example.cz>"
    assert answer["In-Reply-To"] == original["Message-ID"]
    # and the operator finds the chat by the id as the customer's side sent it
    secret = client.app[customer_secret_key]
    search = InteractionSearch(provider_id=CARDS[0])
    matches = await find_interactions(store, search, customer_key=None, secret=secret)
    assert [row["id"] for row in matches] == [ids[0]]
