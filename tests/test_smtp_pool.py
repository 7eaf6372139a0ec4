"""The SMTP sender's connections (integrations/smtp.py), observed at a real SMTP server
(aiosmtpd) on loopback: messages share a few connections, a connection the relay ended is
replaced without losing or repeating a message, and a refusal on a reused connection is
classified exactly as on a new one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib
import pytest

from integrations.smtp import SmtpSender, wire_size
from router.service.ports import Delivery, DeliveryError
from router.settings import SmtpSettings

from .smtp_sink import SmtpSink

TO = "produkty@eshop.example"


@pytest.fixture
async def sender(relay: SmtpSink) -> AsyncIterator[SmtpSender]:
    smtp = SmtpSender(SmtpSettings(host="127.0.0.1", port=relay.port, security="none"), pool_size=2)
    yield smtp
    await smtp.close()


def delivery(n: int, *, to: str = TO) -> Delivery:
    mail = EmailMessage()
    mail["From"] = f"zakaznik{n}@example.cz"
    mail["To"] = "podpora@eshop.example"
    mail["Subject"] = f"Objednávka {n}"
    mail["Message-ID"] = make_msgid(idstring=str(n), domain="example.cz")
    mail.set_content(f"Zpráva číslo {n}.\n")
    return Delivery(
        outbox_id=n,
        interaction_id=n,
        kind="email",
        destination="hotline",
        address=to,
        external=False,
        payload=mail.as_bytes(),
        meta={"category": "admin", "reason": "target", "sender": f"zakaznik{n}@example.cz"},
    )


def subjects(relay: SmtpSink) -> list[str]:
    return sorted(str(item.message["Subject"]) for item in relay.mailbox.received)


async def test_successive_messages_reuse_one_connection(
    relay: SmtpSink, sender: SmtpSender
) -> None:
    for n in range(10):
        await sender.send(delivery(n))
    assert len(relay.mailbox.received) == 10
    # one session: one connection, one EHLO, ten mail transactions
    assert (len(relay.mailbox.peers), relay.mailbox.ehlos, relay.mailbox.mails) == (1, 1, 10)


async def test_concurrent_messages_share_at_most_the_pools_connections(
    relay: SmtpSink, sender: SmtpSender
) -> None:
    await asyncio.gather(*(sender.send(delivery(n)) for n in range(30)))
    assert subjects(relay) == sorted(f"Objednávka {n}" for n in range(30))
    assert len(relay.mailbox.peers) <= 2  # pool_size=2
    assert relay.mailbox.ehlos == len(relay.mailbox.peers)


@pytest.mark.parametrize("end_reply", ["421 4.4.2 session ended", None])
async def test_a_relay_that_ends_sessions_loses_and_repeats_nothing(
    relay: SmtpSink, sender: SmtpSender, end_reply: str | None
) -> None:
    """A relay that takes two messages per connection, then answers the next MAIL with 421
    and hangs up (or hangs up right after the second message): every message still arrives
    once, and the sender reports no failure."""
    relay.mailbox.messages_per_connection = 2
    relay.mailbox.end_reply = end_reply
    for n in range(7):
        await sender.send(delivery(n))
    await asyncio.gather(*(sender.send(delivery(n)) for n in range(7, 20)))
    assert subjects(relay) == sorted(f"Objednávka {n}" for n in range(20))
    assert len(relay.mailbox.peers) >= 10  # two messages per connection


async def test_an_ended_session_is_retried_once_then_counts_as_a_failed_attempt(
    relay: SmtpSink, sender: SmtpSender
) -> None:
    await sender.send(delivery(0))  # a connection to reuse
    relay.mailbox.refuse_mail = "421 4.3.2 shutting down"
    before = relay.mailbox.mails
    with pytest.raises(DeliveryError) as failure:
        await sender.send(delivery(1))
    assert not failure.value.permanent
    assert str(failure.value).startswith("SMTP 421")
    # the reused connection, then one new one: not a loop
    assert relay.mailbox.mails - before == 2
    # a new connection's 421 is a failed attempt at once
    before = relay.mailbox.mails
    with pytest.raises(DeliveryError):
        await sender.send(delivery(2))
    assert relay.mailbox.mails - before == 1


async def test_a_hang_up_at_mail_is_retried_once_on_a_new_connection_only(
    relay: SmtpSink, sender: SmtpSender
) -> None:
    relay.mailbox.hang_up_at_mail = True
    with pytest.raises(DeliveryError) as failure:
        await sender.send(delivery(0))  # a new connection: a failed attempt at once
    assert not failure.value.permanent
    assert relay.mailbox.mails == 1
    relay.mailbox.hang_up_at_mail = False
    await sender.send(delivery(1))
    relay.mailbox.hang_up_at_mail = True
    before = relay.mailbox.mails
    with pytest.raises(DeliveryError) as failure:
        await sender.send(delivery(2))  # the reused connection, then one new one
    assert not failure.value.permanent
    assert relay.mailbox.mails - before == 2
    assert subjects(relay) == ["Objednávka 1"]


@pytest.mark.parametrize(
    ("refusal", "permanent"),
    [("550 5.1.1 no such mailbox", True), ("451 4.3.0 try again later", False)],
)
async def test_a_recipient_refused_on_a_reused_connection_is_classified_as_before(
    relay: SmtpSink, sender: SmtpSender, refusal: str, permanent: bool
) -> None:
    await sender.send(delivery(0))
    relay.mailbox.refuse_rcpt["gone@eshop.example"] = refusal
    with pytest.raises(DeliveryError) as failure:
        await sender.send(delivery(1, to="gone@eshop.example"))
    assert failure.value.permanent is permanent
    assert str(failure.value).startswith("recipient refused:")
    assert refusal.split()[0] in str(failure.value)
    assert len(relay.mailbox.peers) == 1  # it was refused on the reused connection
    # the connection is dropped after an error; the next message gets a new one
    await sender.send(delivery(2))
    assert subjects(relay) == ["Objednávka 0", "Objednávka 2"]
    assert len(relay.mailbox.peers) == 2


@pytest.mark.parametrize(
    ("refusal", "permanent"),
    [("554 5.6.0 message refused", True), ("452 4.3.1 insufficient storage", False)],
)
async def test_a_message_refused_on_a_reused_connection_is_classified_as_before(
    relay: SmtpSink, sender: SmtpSender, refusal: str, permanent: bool
) -> None:
    await sender.send(delivery(0))
    relay.mailbox.refuse_data = refusal
    with pytest.raises(DeliveryError) as failure:
        await sender.send(delivery(1))
    assert failure.value.permanent is permanent
    assert str(failure.value).startswith(f"SMTP {refusal.split()[0]}:")
    assert len(relay.mailbox.peers) == 1
    assert len(relay.mailbox.received) == 1


async def test_a_stopped_relay_is_a_failed_attempt(relay: SmtpSink, sender: SmtpSender) -> None:
    await sender.send(delivery(0))
    relay.stop()
    with pytest.raises(DeliveryError) as failure:
        await sender.send(delivery(1))
    assert not failure.value.permanent
    relay.start()
    await sender.send(delivery(2))
    assert subjects(relay) == ["Objednávka 0", "Objednávka 2"]


async def test_idle_connections_are_closed_and_replaced(relay: SmtpSink) -> None:
    smtp = SmtpSender(
        SmtpSettings(host="127.0.0.1", port=relay.port, security="none"), idle_seconds=0.2
    )
    try:
        await smtp.send(delivery(0))
        await smtp.send(delivery(1))
        assert len(relay.mailbox.peers) == 1
        await wait_until(lambda: not smtp.pool.idle_connections, within=3.0)
        await smtp.send(delivery(2))
        assert len(relay.mailbox.peers) == 2
    finally:
        await smtp.close()
    assert len(relay.mailbox.received) == 3


async def test_closing_the_sender_closes_its_connections(relay: SmtpSink) -> None:
    smtp = SmtpSender(SmtpSettings(host="127.0.0.1", port=relay.port, security="none"))
    await asyncio.gather(*(smtp.send(delivery(n)) for n in range(8)))
    assert smtp.pool.idle_connections
    await smtp.close()
    assert not smtp.pool.idle_connections
    with pytest.raises(DeliveryError):
        await smtp.send(delivery(9))
    assert len(relay.mailbox.received) == 8


@pytest.mark.parametrize(
    "message",
    [b"a\r\nb\r\n", b"a\nb\n", b"a\rb", b"a\r\n\rb\n\r\n", b"", b"\r", b"x\r\n.\r\n"],
)
def test_the_declared_size_is_what_data_transmits(message: bytes) -> None:
    assert wire_size(message) == len(aiosmtplib.protocol.normalize_message_line_endings(message))


async def wait_until(condition: Any, *, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
