"""The store's side of the ports: it hands out frozen records, never its table objects, and
applies the typed changes the service gives it (a failed delivery, a partner's report)
only where the lifecycle allows them. A real SQLite file, migrated as in production."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from router.core.contact import Category, CategorySource, Channel, Reason, Side
from router.core.delivery import Stage
from router.core.document import shipped_document
from router.core.lifecycle import ForwardStatus, Outcome
from router.core.migration import PlanStep
from router.service.records import (
    FailedAttempt,
    ForwardRecord,
    InteractionRecord,
    NewInteraction,
    PartnerFeedback,
    PlanStepRecord,
    Target,
    TokenRecord,
    VersionRecord,
    new_forward,
)
from router.service.scheduler import schedule_plan
from router.service.tokens import Role, authenticate, create_token
from router.service.versions import apply_document
from router.store import Store

from .conftest import NOW

LEASE = timedelta(seconds=120)
PARTNER = Target("partner", "eshop@partner.example", external=True)
HOTLINE = Target("hotline", "produkty@eshop.example", external=False)


def an_email(provider_id: str = "<m1@shop.example>") -> NewInteraction:
    return NewInteraction(
        channel=Channel.EMAIL,
        provider_id=provider_id,
        customer_hash="h",
        category=Category.ADMIN,
        category_source=CategorySource.TEXT,
        rule="order",
        confidence=0.9,
        side=Side.TARGET,
        destination=PARTNER.destination,
        first_destination=PARTNER.destination,
        reason=Reason.TARGET,
        version=1,
        bucket=12.5,
        language="cs",
        received_at=NOW,
        decided_at=NOW,
        updated_at=NOW,
        outcome=Outcome.QUEUED,
    )


async def queued_email(store: Store) -> int:
    """An email forwarded to the partner, with the hotline as its fallback."""
    async with store.unit_of_work() as uow:
        interaction_id = await uow.add_interaction(an_email())
        assert interaction_id is not None
        forward = new_forward(Channel.EMAIL, PARTNER, b"body", {}, NOW, fallback=HOTLINE)
        await uow.add_forward(interaction_id, forward)
    return interaction_id


def assert_frozen(record: object) -> None:
    assert dataclasses.is_dataclass(record)
    field = dataclasses.fields(record)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, None)


async def test_versions_steps_and_tokens_come_back_as_frozen_records(migrated: Store) -> None:
    await apply_document(migrated, shipped_document(), actor="ops", reason="first", now=NOW)
    step = PlanStep(NOW + timedelta(hours=1), "step", {Channel.EMAIL: {Category.ADMIN: 10.0}})
    [scheduled] = await schedule_plan(migrated, [step], actor="ops", now=NOW)
    token = await create_token(migrated, "ops", Role.OPERATOR, NOW)

    current = await migrated.current_version()
    assert isinstance(current, VersionRecord)
    assert (current.version, current.kind, current.actor) == (1, "apply", "ops")
    assert await migrated.version(1) == current
    assert await migrated.history() == [current]
    assert isinstance(scheduled, PlanStepRecord)
    assert scheduled.id is not None and scheduled.status == "pending"
    assert await migrated.plan_steps() == [scheduled]
    [listed] = await migrated.tokens()
    assert isinstance(listed, TokenRecord)
    assert await authenticate(migrated, token) == listed
    for record in (current, scheduled, listed):
        assert_frozen(record)


async def test_interactions_and_forwards_come_back_as_frozen_records(migrated: Store) -> None:
    interaction_id = await queued_email(migrated)

    [interaction] = await migrated.interactions()
    assert isinstance(interaction, InteractionRecord)
    assert (interaction.id, interaction.outcome) == (interaction_id, Outcome.QUEUED.value)
    [claimed] = await migrated.claim_outbox(
        now=NOW, lease=LEASE, limit=5, kinds=[Channel.EMAIL.value]
    )
    assert isinstance(claimed, ForwardRecord)
    assert claimed.claimed_until == NOW + LEASE  # the lease the worker's update must find
    assert (await migrated.outbox_rows(statuses=["pending"])) == [claimed]
    for record in (interaction, claimed):
        assert_frozen(record)


async def test_a_failed_attempt_sends_the_forward_and_its_interaction_to_the_fallback(
    migrated: Store,
) -> None:
    await queued_email(migrated)
    [claimed] = await migrated.claim_outbox(now=NOW, lease=LEASE, limit=5, kinds=["email"])
    attempt = FailedAttempt(
        ForwardStatus.PENDING,
        "550 no such mailbox",
        stage=Stage.FALLBACK,
        attempts=0,
        next_attempt_at=NOW,
        redirect=HOTLINE,
        outcome=Outcome.FALLBACK,
        delivery_failed=True,
    )
    await migrated.outbox_settled(delivered=[], failed=[(claimed, attempt)], now=NOW)

    [forward] = await migrated.outbox_rows(statuses=["pending"])
    assert (forward.destination, forward.address, forward.external) == (
        "hotline",
        "produkty@eshop.example",
        False,
    )
    assert (forward.stage, forward.attempts, forward.claimed_until) == ("fallback", 0, None)
    assert forward.last_error == "550 no such mailbox"
    [interaction] = await migrated.interactions()
    assert (interaction.destination, interaction.first_destination) == ("hotline", "partner")
    assert (interaction.outcome, interaction.delivery_failed) == ("fallback", True)


async def test_a_retry_changes_only_the_forward(migrated: Store) -> None:
    await queued_email(migrated)
    [claimed] = await migrated.claim_outbox(now=NOW, lease=LEASE, limit=5, kinds=["email"])
    later = NOW + timedelta(seconds=2)
    retry = FailedAttempt(ForwardStatus.PENDING, "timeout", attempts=1, next_attempt_at=later)
    await migrated.outbox_settled(delivered=[], failed=[(claimed, retry)], now=NOW)

    [forward] = await migrated.outbox_rows(statuses=["pending"])
    assert (forward.attempts, forward.next_attempt_at, forward.stage) == (1, later, "primary")
    [interaction] = await migrated.interactions()
    assert (interaction.outcome, interaction.delivery_failed) == ("queued", False)


async def test_a_late_failure_never_undoes_a_delivery(migrated: Store) -> None:
    await queued_email(migrated)
    [claimed] = await migrated.claim_outbox(now=NOW, lease=LEASE, limit=5, kinds=["email"])
    await migrated.outbox_settled(delivered=[claimed], failed=[], now=NOW)
    failed = FailedAttempt(ForwardStatus.FAILED, "late", outcome=Outcome.FAILED)
    await migrated.outbox_settled(delivered=[], failed=[(claimed, failed)], now=NOW)

    [forward] = await migrated.outbox_rows(statuses=["delivered"])
    assert forward.last_error is None and forward.payload is None
    [interaction] = await migrated.interactions()
    assert interaction.outcome == Outcome.DELIVERED.value


async def test_a_partner_report_replaces_the_previous_one(migrated: Store) -> None:
    interaction_id = await queued_email(migrated)
    first = PartnerFeedback("unresolved", 2, "call back", NOW)
    second = PartnerFeedback("resolved", None, None, NOW + timedelta(minutes=5))

    assert await migrated.record_feedback(interaction_id, first)
    assert await migrated.record_feedback(interaction_id, second)
    assert not await migrated.record_feedback(interaction_id + 1, second)
    [interaction] = await migrated.interactions()
    assert (interaction.partner_outcome, interaction.partner_rating) == ("resolved", None)
    assert (interaction.partner_comment, interaction.feedback_at) == (None, second.feedback_at)


async def test_a_duplicate_contact_adds_nothing_even_after_another_insert(migrated: Store) -> None:
    """SQLite reports the new interaction's id by lastrowid: a duplicate that follows another
    insert in the same transaction (a provider's token) must still read as "recorded before",
    not as that other row's id."""
    async with migrated.unit_of_work() as uow:
        assert await uow.mark_token_seen("mailgun", "t1", NOW)
        first = await uow.add_interaction(an_email())
    assert first is not None

    async with migrated.unit_of_work() as uow:
        assert await uow.mark_token_seen("mailgun", "t2", NOW)
        again = await uow.add_interaction(an_email())
        other = await uow.add_interaction(an_email("<m2@shop.example>"))
    assert again is None
    assert other is not None and other != first
    rows = await migrated.interactions(since=None, channel=None, limit=10)
    assert sorted(row.provider_id for row in rows) == ["<m1@shop.example>", "<m2@shop.example>"]
    assert {row.id for row in rows} == {first, other}


async def test_held_conversations_are_all_counted_and_the_newest_listed(migrated: Store) -> None:
    """What status shows of the partner's conversations: the last contact of each one that
    went to the partner, all of them counted, the newest *limit* listed newest first."""

    def contact(number: int, conversation: str, hours_ago: float, to: Target) -> NewInteraction:
        at = NOW - timedelta(hours=hours_ago)
        return dataclasses.replace(
            an_email(f"<m{number}@shop.example>"),
            conversation_id=conversation,
            destination=to.destination,
            first_destination=to.destination,
            received_at=at,
            decided_at=at,
            updated_at=at,
        )

    contacts = [
        contact(1, "c1", 50, PARTNER),
        contact(2, "c2", 40, PARTNER),
        contact(3, "c2", 5, HOTLINE),  # its last contact came back in-house: not held
        contact(4, "c3", 30, PARTNER),
        contact(5, "c4", 20, PARTNER),
        contact(6, "c1", 10, PARTNER),  # c1's last contact: it counts once, at 10 h ago
        contact(7, "old", 24 * 40, PARTNER),  # before the window
    ]
    async with migrated.unit_of_work() as uow:
        for new in contacts:
            await uow.add_interaction(new)
    since = NOW - timedelta(days=30)

    two = await migrated.conversations_held(since, ["partner"], limit=2)
    assert two.count == 3
    assert [(held.conversation_id, held.received_at) for held in two.newest] == [
        ("c1", NOW - timedelta(hours=10)),
        ("c4", NOW - timedelta(hours=20)),
    ]
    every = await migrated.conversations_held(since, ["partner"], limit=None)
    assert every.count == 3
    assert [held.conversation_id for held in every.newest] == ["c1", "c4", "c3"]
    assert (await migrated.conversations_held(since, ["nobody"], limit=None)).count == 0
    assert (await migrated.conversations_held(since, [], limit=5)).newest == []
