"""The outbox worker end to end on a real database (SQLite, and PostgreSQL where one can be
started) and a real SMTP server (aiosmtpd) on loopback: batches are sent over pooled
connections and their outcomes recorded together, and still every forward arrives once and
is recorded as what happened to it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from integrations.smtp import SmtpSender
from router.core.contact import Channel
from router.core.delivery import Schedule
from router.core.lifecycle import ForwardStatus, Outcome
from router.service import outbox
from router.service.outbox import BATCH, LEASE, OutboxWorker
from router.service.records import FailedAttempt, Target, new_forward
from router.settings import SmtpSettings
from router.store import Store, create_engine

from .background import deliver_due_at
from .conftest import NOW, migrated_store
from .smtp_sink import SmtpSink
from .test_store import an_email

PARTNER = Target("partner", "eshop@partner.example", external=True)
HOTLINE = Target("hotline", "produkty@eshop.example", external=False)
#: more than two batches: the worker claims the next one while it sends the last
FORWARDS = 2 * BATCH + 5


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
    return str(request.getfixturevalue("postgres_database_url"))


@pytest.fixture
async def outbox_store(database_url: str) -> AsyncIterator[Store]:
    async with migrated_store(database_url) as store:
        yield store


@pytest.fixture
async def smtp(relay: SmtpSink) -> AsyncIterator[SmtpSender]:
    sender = SmtpSender(
        SmtpSettings(host="127.0.0.1", port=relay.port, security="none"), pool_size=3
    )
    yield sender
    await sender.close()


def message_id(n: int) -> str:
    return f"<forward-{n}@example.cz>"


async def queue_emails(store: Store, count: int, *, to: Target = PARTNER) -> None:
    """*count* queued email forwards, each its own interaction and Message-ID."""
    for n in range(count):
        mail = EmailMessage()
        mail["From"] = f"zakaznik{n}@example.cz"
        mail["Subject"] = f"Objednávka {n}"
        mail["Message-ID"] = message_id(n)
        mail.set_content("Dobrý den, kde je moje zásilka?\n")
        meta = {"category": "admin", "reason": "target", "sender": f"zakaznik{n}@example.cz"}
        async with store.unit_of_work() as uow:
            interaction_id = await uow.add_interaction(an_email(message_id(n)))
            assert interaction_id is not None
            forward = new_forward(Channel.EMAIL, to, mail.as_bytes(), meta, NOW, fallback=HOTLINE)
            await uow.add_forward(interaction_id, forward)


def worker(store: Store, smtp: SmtpSender) -> OutboxWorker:
    return OutboxWorker(
        store, {"email": smtp}, schedule=Schedule(), clock=lambda: NOW, wake=asyncio.Event()
    )


async def drained(store: Store, smtp: SmtpSender) -> None:
    """Passes of a worker until no forward is pending (a redirect to the fallback is due
    at once, and is taken by the next pass)."""
    for _ in range(10):
        await worker(store, smtp).deliver_due()
        if not await store.outbox_rows(statuses=["pending"]):
            return
    raise AssertionError("forwards still pending after 10 passes")


def arrivals(relay: SmtpSink) -> Counter[tuple[str, str]]:
    """(Message-ID, recipient) -> how many times it arrived."""
    return Counter(
        (str(item.message["Message-ID"]), recipient)
        for item in relay.mailbox.received
        for recipient in item.rcpt_tos
    )


async def test_every_forward_of_several_batches_arrives_once_and_is_recorded(
    outbox_store: Store, smtp: SmtpSender, relay: SmtpSink
) -> None:
    await queue_emails(outbox_store, FORWARDS)
    await drained(outbox_store, smtp)

    expected = {(message_id(n), PARTNER.address): 1 for n in range(FORWARDS)}
    assert arrivals(relay) == expected
    delivered = await outbox_store.outbox_rows(statuses=["delivered", "pending", "failed"])
    assert [row.status for row in delivered] == ["delivered"] * FORWARDS
    assert all(row.payload is None and row.claimed_until is None for row in delivered)
    interactions = await outbox_store.interactions(limit=None)
    assert {row.outcome for row in interactions} == {Outcome.DELIVERED.value}
    assert len(relay.mailbox.peers) <= 3  # the pool's connections, reused
    # nothing is left to send, however late: no forward was left unrecorded
    assert await deliver_due_at(outbox_store, NOW + timedelta(days=1)) == []


async def test_refused_and_delivered_forwards_of_one_batch_are_each_recorded(
    outbox_store: Store, smtp: SmtpSender, relay: SmtpSink
) -> None:
    """The partner refuses every other message (by its envelope sender): those go to the
    hotline, the rest are delivered, all recorded from the same batches."""
    refused = {n for n in range(FORWARDS) if n % 2}
    relay.mailbox.refuse_pairs = {(f"zakaznik{n}@example.cz", PARTNER.address) for n in refused}
    await queue_emails(outbox_store, FORWARDS)
    await drained(outbox_store, smtp)

    expected = {
        (message_id(n), HOTLINE.address if n in refused else PARTNER.address): 1
        for n in range(FORWARDS)
    }
    assert arrivals(relay) == expected
    rows = await outbox_store.outbox_rows(statuses=["delivered", "pending", "failed"])
    assert Counter(row.status for row in rows) == {"delivered": FORWARDS}
    outcomes = Counter(
        (row.destination, row.outcome) for row in await outbox_store.interactions(limit=None)
    )
    assert outcomes == {
        ("hotline", Outcome.DELIVERED.value): len(refused),
        ("partner", Outcome.DELIVERED.value): FORWARDS - len(refused),
    }


async def test_two_workers_racing_over_one_outbox_send_each_forward_once(
    outbox_store: Store, database_url: str, smtp: SmtpSender, relay: SmtpSink
) -> None:
    """Two replicas (here two workers, two connections to the database) claim from the same
    outbox at the same time: leases (SKIP LOCKED on PostgreSQL) keep their batches apart."""
    other_engine = create_engine(database_url)
    other = Store(other_engine)
    try:
        await queue_emails(outbox_store, 3 * FORWARDS)

        # a pass ends when a claim comes back short: the rest is the other's, or done
        await asyncio.gather(
            worker(outbox_store, smtp).deliver_due(), worker(other, smtp).deliver_due()
        )
    finally:
        await other_engine.dispose()
    assert arrivals(relay) == {(message_id(n), PARTNER.address): 1 for n in range(3 * FORWARDS)}
    rows = await outbox_store.outbox_rows(statuses=["delivered", "pending", "failed"])
    assert Counter(row.status for row in rows) == {"delivered": 3 * FORWARDS}


async def test_a_batch_recorded_after_its_lease_ran_out_keeps_what_was_sent(
    outbox_store: Store,
) -> None:
    """Worker A's lease runs out mid-batch and worker B claims the same rows. A's record:
    the row A sent is delivered (it was sent; B's late failure cannot undo it), the row A
    failed is not touched (B holds it now)."""
    await queue_emails(outbox_store, 2)
    a_rows = await outbox_store.claim_outbox(now=NOW, lease=LEASE, limit=2, kinds=["email"])
    later = NOW + LEASE + timedelta(seconds=1)
    b_rows = await outbox_store.claim_outbox(now=later, lease=LEASE, limit=2, kinds=["email"])
    assert [row.id for row in b_rows] == [row.id for row in a_rows]
    retry = FailedAttempt(ForwardStatus.PENDING, "451 later", attempts=1, next_attempt_at=later)
    await outbox_store.outbox_settled(delivered=[a_rows[0]], failed=[(a_rows[1], retry)], now=later)
    gone = FailedAttempt(ForwardStatus.FAILED, "late", outcome=Outcome.FAILED)
    await outbox_store.outbox_settled(delivered=[], failed=[(b_rows[0], gone)], now=later)

    sent, held = await outbox_store.outbox_rows(statuses=["delivered", "pending", "failed"])
    assert (sent.status, sent.payload) == ("delivered", None)
    assert (held.status, held.attempts, held.claimed_until) == (
        "pending",
        0,
        b_rows[1].claimed_until,
    )
    outcomes = {row.id: row.outcome for row in await outbox_store.interactions(limit=None)}
    assert outcomes == {
        sent.interaction_id: Outcome.DELIVERED.value,
        held.interaction_id: Outcome.QUEUED.value,
    }


async def test_a_pass_cut_short_after_full_batches_has_recorded_all_it_claimed(
    outbox_store: Store, smtp: SmtpSender, relay: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "PASS_BATCHES", 2)
    await queue_emails(outbox_store, FORWARDS)
    assert await worker(outbox_store, smtp).deliver_due()  # there may be more
    rows = await outbox_store.outbox_rows(statuses=["delivered", "pending"])
    assert Counter(row.status for row in rows) == {
        "delivered": 2 * BATCH,
        "pending": FORWARDS - 2 * BATCH,
    }
    assert all(row.claimed_until is None for row in rows)
    assert len(relay.mailbox.received) == 2 * BATCH
    assert not await worker(outbox_store, smtp).deliver_due()  # the rest: a short claim
    assert len(arrivals(relay)) == FORWARDS
