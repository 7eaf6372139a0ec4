"""The email channel end to end: signed webhooks into the real app, forwards read back from
a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from integrations.signing import sign
from router.settings import Settings, SmtpSettings
from router.store import Store, create_engine
from router.web.appkeys import routing_key, store_key

from .background import app_outbox_passed, deliver_due_at, forwards_delivered
from .conftest import Clock, app_time, make_settings
from .smtp_sink import SmtpSink
from .stored import assert_nothing_stored, stored

Client = TestClient[Any, Any]
SECRET = "email-webhook-secret"
MAILGUN_KEY = "mailgun-signing-key"
HOTLINE = "produkty@eshop.example"
PARTNER = "eshop@partner.example"
CARD = "4111 1111 1111 1111"


def email_settings(tmp_path: Path, sink: SmtpSink, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp": SmtpSettings(host="127.0.0.1", port=sink.port, security="none"),
        "email_webhook_secret": SECRET,
        "mailgun_signing_key": MAILGUN_KEY,
        "outbox_base_delay": 0.05,
        "outbox_max_delay": 0.2,
        "outbox_max_attempts": 3,
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


def message(
    subject: str = "Kde je moje objednávka 12345?",
    body: str = "Dobrý den, objednávka stále nedorazila. Kdy mi přijde zásilka?",
    *,
    sender: str = "Jana Nováková <Jana.Novakova@example.cz>",
    reply_to: str | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    attachment: bytes | None = None,
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = "podpora@eshop.example"
    mail["Subject"] = subject
    mail["Message-ID"] = message_id or make_msgid(domain="example.cz")
    if reply_to:
        mail["Reply-To"] = reply_to
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
        mail["References"] = in_reply_to
    mail.set_content(body)
    if attachment is not None:
        mail.add_attachment(
            attachment, maintype="application", subtype="pdf", filename="faktura.pdf"
        )
    return mail.as_bytes()


async def post_mime(client: Client, raw: bytes, *, secret: str = SECRET) -> Any:
    signature = sign(secret, raw, app_time(client))
    return await client.post(
        "/webhooks/email/mime",
        data=raw,
        headers={"Content-Type": "message/rfc822", "X-Switchboard-Signature": signature},
    )


async def interactions(settings: Settings) -> list[Any]:
    engine = create_engine(settings.database_url)
    try:
        return list(await Store(engine).interactions(limit=None))
    finally:
        await engine.dispose()


# -- forwarding ---------------------------------------------------------------------------


async def test_an_admin_email_is_forwarded_with_its_headers_intact(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink
) -> None:
    settings = email_settings(tmp_path, smtp)
    client = await email_app(settings)
    raw = message(reply_to="jana@work.example", attachment=b"%PDF-1.4 fake")
    response = await post_mime(client, raw)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert (answer["category"], answer["destination"], answer["reason"]) == (
        "admin",
        "hotline",
        "baseline",
    )
    [received] = await smtp.wait_for(1)
    assert received.rcpt_tos == [HOTLINE]
    forwarded = received.message
    original = message_from_bytes(raw, policy=policy.default)
    for header in ("From", "Reply-To", "Subject", "Message-ID", "To", "Date"):
        assert forwarded[header] == original[header], header
    assert forwarded["X-Switchboard-Category"] == "admin"
    assert forwarded["X-Switchboard-Destination"] == "hotline"
    assert forwarded["X-Switchboard-Reason"] == "baseline"
    assert forwarded["X-Switchboard-Interaction"] == str(answer["interaction_id"])
    [attachment] = list(forwarded.iter_attachments())
    assert attachment.get_content() == b"%PDF-1.4 fake"
    # byte-faithful: the original is the tail of what was forwarded
    assert received.data.replace(b"\r\n", b"\n").endswith(raw.replace(b"\r\n", b"\n"))
    deadline = time.monotonic() + 5
    while (row := (await interactions(settings))[0]).outcome != "delivered":
        assert time.monotonic() < deadline, row.outcome
        await asyncio.sleep(0.02)
    assert row.conversation_id == original["Message-ID"].strip("<>")
    assert "jana" not in row.customer_hash


async def test_card_numbers_are_masked_only_toward_external_destinations(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink
) -> None:
    settings = email_settings(tmp_path, smtp)
    # admin email to the partner (full cut-over), product email to the in-house hotline
    client = await email_app(settings, cutover={"email": {"admin": 100}})
    body = f"Platba kartou {CARD} neprošla, objednávka visí."
    await post_mime(client, message(subject=f"Platba kartou {CARD} za objednávku", body=body))
    await post_mime(
        client,
        message(subject="Jak nastavit výrobek", body=f"Návod nefunguje. Karta {CARD}"),
    )
    received = await smtp.wait_for(2)
    to_partner = next(r for r in received if r.rcpt_tos == [PARTNER])
    to_hotline = next(r for r in received if r.rcpt_tos == [HOTLINE])
    assert CARD not in to_partner.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "1111" in to_partner.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert CARD in to_hotline.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # the Subject too (RFC 2047-encoded here, for its Czech letters)
    assert CARD not in str(to_partner.message["Subject"])
    assert str(to_partner.message["Subject"]).startswith("Platba kartou **** **** **** 1111")


async def test_a_reply_keeps_its_threads_category(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink
) -> None:
    settings = email_settings(tmp_path, smtp)
    client = await email_app(settings)
    first_id = make_msgid(domain="example.cz")
    first = await post_mime(client, message(message_id=first_id))
    assert (await first.json())["category"] == "admin"
    reply = message(
        subject="Re: Kde je moje objednávka",
        body="A ještě: jak se nastavuje ten výrobek? Nefunguje mi funkce.",
        in_reply_to=first_id,
    )
    second = await (await post_mime(client, reply)).json()
    assert second["category"] == "admin"
    rows = await interactions(settings)
    assert {row.category_source for row in rows} == {"text", "thread"}
    assert len({row.conversation_id for row in rows}) == 1


async def test_a_duplicate_storm_yields_one_interaction_and_one_forward(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> None:
    settings = email_settings(tmp_path, smtp)
    client = await email_app(settings)
    raw = message()
    responses = await asyncio.gather(*(post_mime(client, raw) for _ in range(50)))
    assert {response.status for response in responses} == {200}
    answers = [await response.json() for response in responses]
    assert len({answer["interaction_id"] for answer in answers}) == 1
    await smtp.wait_for(1)
    store = client.app[store_key]
    await forwards_delivered(store, 1)
    # a second forward, whenever its attempt was due, would be found by a pass a day later
    assert await deliver_due_at(store, clock() + timedelta(days=1)) == []
    assert len(smtp.mailbox.received) == 1
    assert len(await interactions(settings)) == 1


async def test_smtp_down_then_up_delivers_every_message_once(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> None:
    settings = email_settings(tmp_path, smtp, outbox_max_attempts=1000)
    client = await email_app(settings)
    smtp.stop()
    for n in range(5):
        response = await post_mime(client, message(subject=f"Objednávka {n}"))
        assert response.status == 200  # accepted and durable, though SMTP is down
    store = client.app[store_key]
    await failed_attempts(store, forwards=5, each=2)
    assert smtp.mailbox.received == []
    smtp.start()
    received = await smtp.wait_for(5)
    await forwards_delivered(store, 5)
    assert await deliver_due_at(store, clock() + timedelta(days=1)) == []
    assert len(received) == 5
    assert sorted(r.message["Subject"] for r in received) == [f"Objednávka {n}" for n in range(5)]


async def failed_attempts(store: Store, *, forwards: int, each: int, within: float = 10.0) -> None:
    """Wait until *forwards* pending forwards have each failed at least *each* times."""
    deadline = time.monotonic() + within
    while True:
        rows = await store.outbox_rows(statuses=["pending"])
        if len(rows) == forwards and all(row.attempts >= each for row in rows):
            return
        assert time.monotonic() < deadline, [(row.id, row.attempts) for row in rows]
        await asyncio.sleep(0.02)


async def test_a_permanent_failure_goes_to_the_fallback_then_visibly_fails(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink
) -> None:
    settings = email_settings(tmp_path, smtp)
    client = await email_app(settings)
    smtp.mailbox.refuse_rcpt[HOTLINE] = "550 5.1.1 mailbox unavailable"
    answer = await (await post_mime(client, message())).json()
    [received] = await smtp.wait_for(1)
    assert received.rcpt_tos == [PARTNER]  # the hotline's fallback
    assert received.message["X-Switchboard-Destination"] == "partner"
    [row] = await interactions(settings)
    assert (row.first_destination, row.destination, row.delivery_failed) == (
        "hotline",
        "partner",
        True,
    )
    assert answer["destination"] == "hotline"

    smtp.mailbox.refuse_rcpt[PARTNER] = "550 5.1.1 no such user"
    await post_mime(client, message(subject="Druhá objednávka"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = await interactions(settings)
        if rows[0].outcome == "failed":
            break
        await asyncio.sleep(0.05)
    assert rows[0].outcome == "failed"
    # what /metrics says of it: one fallback, one delivery, one failure, one failed row (the
    # worker counts an attempt just after committing it: wait for the count too)
    attempts = "switchboard_outbox_attempts_total"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        sample = await metric_reader(client)
        if sample(attempts, kind="email", destination="partner", result="failed"):
            break
        await asyncio.sleep(0.05)
    assert sample(attempts, kind="email", destination="hotline", result="fallback") == 2
    assert sample(attempts, kind="email", destination="partner", result="delivered") == 1
    assert sample(attempts, kind="email", destination="partner", result="failed") == 1
    assert sample("switchboard_outbox_forwards", status="failed") == 1
    assert sample("switchboard_outbox_forwards", status="pending") == 0


async def metric_reader(client: Client) -> Callable[..., float]:
    """A scrape of /metrics: (name, **labels) -> value (0 when absent)."""
    text = await (await client.get("/metrics")).text()
    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            values[(metric.name, frozenset(metric.labels.items()))] = metric.value
    return lambda name, **labels: values.get((name, frozenset(labels.items())), 0.0)


# -- refusals -----------------------------------------------------------------------------


async def test_bad_signatures_and_credentials_are_refused(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink
) -> None:
    settings = email_settings(tmp_path, smtp)
    client = await email_app(settings)
    raw = message()
    assert (await post_mime(client, raw, secret="wrong")).status == 403
    stale = f"t={app_time(client) - 600}," + sign(SECRET, raw, app_time(client) - 600).split(",")[1]
    response = await client.post(
        "/webhooks/email/mime", data=raw, headers={"X-Switchboard-Signature": stale}
    )
    assert response.status == 403
    assert (
        await client.post("/webhooks/email/sendgrid?key=nope", data={"email": "x"})
    ).status == 403
    basic = base64.b64encode(b"postmark:wrong").decode()
    response = await client.post(
        "/webhooks/email/postmark", json={}, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status == 403
    assert (await client.post("/webhooks/email/fax", data=b"x")).status == 404
    assert await interactions(settings) == []
    await assert_nothing_stored(client.app[store_key])


def mailgun_fields(timestamp: int, token: str, key: str = MAILGUN_KEY) -> dict[str, str]:
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": str(timestamp), "token": token, "signature": signature}


async def test_mailgun_signatures_freshness_and_replays(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink
) -> None:
    settings = email_settings(tmp_path, smtp)
    client = await email_app(settings)
    raw = message()
    fields = {
        **mailgun_fields(app_time(client), "token-1"),
        "body-mime": raw.decode(),
        "recipient": "podpora@eshop.example",
        "sender": "jana.novakova@example.cz",
    }
    assert (await client.post("/webhooks/email/mailgun.mime", data=fields)).status == 404
    ok = await client.post("/webhooks/email/mailgun", data=fields)
    assert ok.status == 200, await ok.text()
    store = client.app[store_key]
    await forwards_delivered(store, 1)  # the accepted one settles before the refusals
    before = await stored(store)
    replay = await client.post("/webhooks/email/mailgun", data=fields)
    assert replay.status == 403
    stale = {**fields, **mailgun_fields(app_time(client) - 3600, "token-2")}
    assert (await client.post("/webhooks/email/mailgun", data=stale)).status == 403
    forged = {**fields, **mailgun_fields(app_time(client), "token-3", key="other")}
    assert (await client.post("/webhooks/email/mailgun", data=forged)).status == 403
    assert len(await interactions(settings)) == 1
    await assert_nothing_stored(store, since=before)


async def test_an_oversized_email_is_refused_and_nothing_is_kept(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink
) -> None:
    settings = email_settings(tmp_path, smtp, max_email_bytes=20_000)
    client = await email_app(settings)
    raw = message(attachment=b"x" * 30_000)
    response = await post_mime(client, raw)
    assert response.status == 413
    assert await interactions(settings) == []
    await assert_nothing_stored(client.app[store_key])


async def test_a_body_without_headers_is_a_bad_request(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink
) -> None:
    settings = email_settings(tmp_path, smtp)
    client = await email_app(settings)
    response = await post_mime(client, b"\x00\x01 this is not an email")
    assert response.status == 400
    assert await interactions(settings) == []
    await assert_nothing_stored(client.app[store_key])


async def test_with_the_database_down_email_answers_503(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink
) -> None:
    from .test_voice import closed_port

    url = f"postgresql+asyncpg://switchboard@127.0.0.1:{closed_port()}/switchboard"
    settings = email_settings(tmp_path, smtp, database_url=url, db_timeout_seconds=2.0)
    client = await email_app(settings)
    response = await post_mime(client, message())
    assert response.status == 503
    assert smtp.mailbox.received == []


async def test_without_smtp_settings_forwards_wait_in_the_outbox(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> None:
    settings = email_settings(tmp_path, smtp, smtp=None)
    client = await email_app(settings)
    assert (await post_mime(client, message())).status == 200
    # long past any retry time, the app's own worker (its wiring is what is tested) has
    # looked at the forward and left it alone
    clock.advance(timedelta(minutes=1))
    await app_outbox_passed(client.app)
    [waiting] = await client.app[store_key].outbox_rows(statuses=["pending"])
    assert (waiting.kind, waiting.attempts) == ("email", 0)
    assert smtp.mailbox.received == []
    status = await (await client.get("/readyz")).json()
    assert status["status"] == "ok"
    engine = create_engine(settings.database_url)
    try:
        assert await Store(engine).outbox_depth() == {"pending": 1, "failed": 0}
    finally:
        await engine.dispose()
    sample = await metric_reader(client)
    assert sample("switchboard_outbox_forwards", status="pending") == 1
    assert sample("switchboard_outbox_oldest_pending_seconds") >= 0.5


# -- voicemail, partner feedback, the outbox command ------------------------------------------


async def test_a_voicemail_is_emailed_to_the_destination(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> None:
    from .conftest import post_twilio
    from .test_voice import dialled

    settings = email_settings(tmp_path, smtp)
    client = await email_app(settings)
    form = {"CallSid": "CA-vm", "From": "+420601234567", "Digits": "2"}
    route = await post_twilio(client, "/webhooks/twilio/voice/route", form)
    _, action = dialled(await route.text())
    for status in ("no-answer", "busy"):
        from .conftest import PUBLIC_URL

        response = await post_twilio(
            client,
            action.removeprefix(PUBLIC_URL),
            {"CallSid": "CA-vm", "From": "+420601234567", "DialCallStatus": status},
        )
        body = await response.text()
        if "<Dial" in body:
            _, action = dialled(body)
    record_action = body.split('action="')[1].split('"')[0].replace("&amp;", "&")
    recording = {
        "CallSid": "CA-vm",
        "From": "+420601234567",
        "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE9",
        "RecordingDuration": "21",
    }
    for _ in range(2):  # Twilio retries: one email
        response = await post_twilio(client, record_action.removeprefix(PUBLIC_URL), recording)
        assert response.status == 200
    [received] = await smtp.wait_for(1)
    store = client.app[store_key]
    await forwards_delivered(store, 1)
    assert await deliver_due_at(store, clock() + timedelta(days=1)) == []
    assert len(smtp.mailbox.received) == 1
    assert received.rcpt_tos == [HOTLINE]
    text = received.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert recording["RecordingUrl"] in text and "21 s" in text
    assert received.message["X-Switchboard-Call"] == "CA-vm"


async def test_partner_feedback_is_kept_with_the_interaction(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink
) -> None:
    import json as json_module

    settings = email_settings(tmp_path, smtp, chat_secret="chat-secret")
    client = await email_app(settings)
    answer = await (await post_mime(client, message())).json()

    async def report(payload: dict[str, Any], secret: str = "chat-secret") -> Any:
        body = json_module.dumps(payload).encode()
        return await client.post(
            "/webhooks/partner/feedback",
            data=body,
            headers={"X-Switchboard-Signature": sign(secret, body, app_time(client))},
        )

    feedback = {
        "interaction_id": answer["interaction_id"],
        "outcome": "resolved",
        "rating": 5,
        "comment": f"zákazník diktoval kartu {CARD}",
    }
    response = await report(feedback)
    assert response.status == 200, await response.text()
    [row] = await interactions(settings)
    assert (row.partner_outcome, row.partner_rating) == ("resolved", 5)
    assert row.partner_comment is not None and CARD not in row.partner_comment
    store = client.app[store_key]
    await forwards_delivered(store, 1)  # the email's forward settles before the refusals
    before = await stored(store)
    assert (await report({**feedback, "interaction_id": 999})).status == 404
    assert (await report({**feedback, "rating": 9})).status == 400
    assert (await report(feedback, secret="wrong")).status == 403
    # a different report, so that storing it would show
    changed = {**feedback, "outcome": "unresolved", "rating": 1}
    assert (await report(changed, secret="wrong")).status == 403
    await assert_nothing_stored(store, since=before)


async def test_the_outbox_command_lists_and_retries_failed_forwards(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> None:
    import json as json_module

    from .test_rollback import switchboard

    clock.set(datetime.now(UTC))  # the CLI's retry is stamped with the real time
    settings = email_settings(tmp_path, smtp)
    client = await email_app(settings)
    smtp.mailbox.refuse_rcpt[HOTLINE] = "550 5.1.1 gone"
    smtp.mailbox.refuse_rcpt[PARTNER] = "550 5.1.1 gone too"
    await post_mime(client, message())
    deadline = time.monotonic() + 5
    while (await interactions(settings))[0].outcome != "failed":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    listed = await switchboard(settings, "outbox", "--failed", "--format", "json")
    [failed] = json_module.loads(listed.stdout)
    assert (failed["status"], failed["stage"]) == ("failed", "fallback")
    assert "550" in failed["last_error"]
    smtp.mailbox.refuse_rcpt.clear()
    retried = await switchboard(settings, "outbox", "retry", str(failed["id"]))
    assert retried.returncode == 0, retried.stderr
    [received] = await smtp.wait_for(1)
    assert received.rcpt_tos == [failed["address"]]
    status = await switchboard(settings, "status", "--format", "json")
    assert json_module.loads(status.stdout)["outbox"] == {"pending": 0, "failed": 0}


async def test_the_guard_rolls_back_email_when_the_partners_mailbox_refuses(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink
) -> None:
    settings = email_settings(tmp_path, smtp)
    client = await email_app(settings, cutover={"email": {"admin": 100}})
    smtp.mailbox.refuse_rcpt[PARTNER] = "550 5.7.1 partner mailbox disabled"
    for n in range(20):
        response = await post_mime(client, message(subject=f"Objednávka {n} nedorazila"))
        assert (await response.json())["destination"] == "partner"
    await smtp.wait_for(20)  # every one reached the hotline, the partner's fallback
    engine = create_engine(settings.database_url)
    try:
        store = Store(engine)
        deadline = time.monotonic() + 5
        while (current := await store.current_version()) is None or current.kind != "rollback":
            assert time.monotonic() < deadline, "the guard did not roll email back"
            await asyncio.sleep(0.05)
        assert (current.actor, current.channel) == ("guard", "email")
        # the service follows the new version (SPEC §4: within a second)
        await asyncio.wait_for(client.app[routing_key].wait_for(current.version), 1.0)
        answer = await (await post_mime(client, message(subject="Objednávka 21"))).json()
        assert answer["destination"] == "hotline"
    finally:
        await engine.dispose()
