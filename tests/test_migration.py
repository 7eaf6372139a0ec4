"""Migration moves on plain values: cut-over, rollback state, plans, the guard, impact."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core.classify import Classification
from router.core.contact import Category, CategorySource, Channel, Contact, Side
from router.core.decide import bucket, decide
from router.core.document import document_data, shipped_document, validate_document
from router.core.migration import (
    ChannelHealth,
    MigrationError,
    PlanInvalid,
    Recorded,
    cancelled_return,
    cut_over,
    guard_trips,
    impact,
    parse_for,
    parse_plan,
    plan_rollback,
    return_due,
    rolled_back,
    shares_of,
)

from .conftest import NOW, PRAGUE

SHIPPED = shipped_document()
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Version:
    version: int
    kind: str
    actor: str = "jana"
    reason: str = "why"
    created_at: datetime = T0
    restores: int | None = None
    expires_at: datetime | None = None
    channel: str | None = None


# -- cut-over ------------------------------------------------------------------------------


def test_cut_over_changes_one_share_only() -> None:
    document = cut_over(SHIPPED, Channel.PHONE, Category.ADMIN, 25)
    matrix = shares_of(document)
    assert matrix["phone"] == {"admin": 25, "product": 0, "unknown": 0}
    assert matrix["email"] == matrix["chat"] == {"admin": 0, "product": 0, "unknown": 0}


def test_all_means_every_channel_or_category() -> None:
    document = cut_over(SHIPPED, None, Category.ADMIN, 50)
    assert {row["admin"] for row in shares_of(document).values()} == {50}
    document = cut_over(document, Channel.EMAIL, None, 10)
    assert shares_of(document)["email"] == {"admin": 10, "product": 10, "unknown": 10}
    assert shares_of(document)["phone"]["admin"] == 50


@pytest.mark.parametrize("percent", [-1, 100.5, 1000])
def test_a_share_outside_0_100_is_refused(percent: float) -> None:
    with pytest.raises(MigrationError):
        cut_over(SHIPPED, Channel.PHONE, Category.ADMIN, percent)


def test_rollback_zeroes_one_channel_or_all() -> None:
    full = cut_over(SHIPPED, None, None, 100)
    phone_only = shares_of(rolled_back(full, Channel.PHONE))
    assert phone_only["phone"] == {"admin": 0, "product": 0, "unknown": 0}
    assert phone_only["email"]["admin"] == 100
    assert {v for row in shares_of(rolled_back(full)).values() for v in row.values()} == {0}


@pytest.mark.parametrize("share", [0, 1, 10, 25, 33.3, 50, 75, 99, 100])
def test_the_fraction_on_target_follows_the_share(share: float) -> None:
    document = cut_over(SHIPPED, Channel.PHONE, Category.ADMIN, share)
    generator = random.Random(share)
    classification = Classification(Category.ADMIN, 1.0, CategorySource.DIGIT)
    on_target = 0
    for _ in range(10_000):
        key = f"+4207{generator.randrange(10**7, 10**8)}"
        contact = Contact(Channel.PHONE, "CA", key, NOW)
        on_target += decide(contact, classification, document, NOW, version=1).side is Side.TARGET
    assert abs(on_target / 100 - share) <= 1.5


@given(st.lists(st.floats(0, 100), min_size=2, max_size=6), st.text(max_size=30))
def test_a_sequence_of_raises_never_moves_a_customer_back(shares: list[float], key: str) -> None:
    customer = bucket(key)
    was_target = False
    for share in sorted(shares):
        is_target = customer < share
        assert is_target or not was_target
        was_target = is_target


# -- rollback state -------------------------------------------------------------------------


def test_a_rollback_returns_to_the_version_before_it() -> None:
    plan = plan_rollback(Version(4, "cutover"), SHIPPED, None, T0, timedelta(hours=24))
    assert (plan.restores, plan.expires_at) == (4, T0 + timedelta(hours=24))


def test_a_rollback_during_a_rollback_keeps_the_original_return_point() -> None:
    current = Version(5, "rollback", restores=4, expires_at=T0 + timedelta(hours=1))
    plan = plan_rollback(current, SHIPPED, Channel.PHONE, T0, None)
    assert (plan.restores, plan.expires_at) == (4, None)


def test_a_timed_rollback_during_a_permanent_one_returns_to_the_permanent_one() -> None:
    # email rolled back for good (v3), then the guard rolls phone back for an hour (v4):
    # when the hour is up, v3 — email still in-house — must come back, not v2
    for_good = Version(3, "rollback", restores=2)
    plan = plan_rollback(for_good, SHIPPED, Channel.PHONE, T0, timedelta(hours=1))
    assert plan.restores == 3


def test_a_rollback_without_for_never_returns_by_itself() -> None:
    forever = Version(5, "rollback", restores=4)
    assert not return_due(forever, T0 + timedelta(days=365))


def test_a_timed_rollback_returns_when_its_time_is_up() -> None:
    timed = Version(5, "rollback", restores=4, expires_at=T0 + timedelta(hours=24))
    assert not return_due(timed, T0 + timedelta(hours=23, minutes=59))
    assert return_due(timed, T0 + timedelta(hours=24))


def test_a_change_during_a_timed_rollback_cancels_its_return() -> None:
    until = T0 + timedelta(hours=24)
    history = [
        Version(6, "cutover", actor="petr", reason="partner fixed"),
        Version(5, "rollback", restores=4, expires_at=until),
        Version(4, "cutover"),
    ]
    cancelled = cancelled_return(history, T0 + timedelta(hours=1))
    assert cancelled is not None
    assert (cancelled.rollback, cancelled.cancelled_by, cancelled.actor) == (5, 6, "petr")
    assert cancelled_return(history, until + timedelta(seconds=1)) is None
    resumed = [Version(6, "resume", restores=4), *history[1:]]
    assert cancelled_return(resumed, T0 + timedelta(hours=1)) is None


@pytest.mark.parametrize("text", ["0s", "soon", "-5m", "1w"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(MigrationError):
        parse_for(text)


# -- plans ---------------------------------------------------------------------------------


def test_a_plan_file_is_parsed_in_time_order() -> None:
    steps = parse_plan(
        """
- at: "2026-12-03T08:00:00+01:00"
  reason: "step 2"
  cutover: {phone: {admin: 100, unknown: 100}}
- at: "2026-12-01T08:00:00+01:00"
  reason: "step 1: a quarter of admin contacts"
  cutover: {phone: {admin: 25}, email: {admin: 25}}
"""
    )
    assert [step.reason for step in steps] == ["step 1: a quarter of admin contacts", "step 2"]
    assert steps[0].at == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert steps[0].cutover == {
        Channel.PHONE: {Category.ADMIN: 25.0},
        Channel.EMAIL: {Category.ADMIN: 25.0},
    }


def test_every_problem_of_a_plan_is_reported_by_path() -> None:
    with pytest.raises(PlanInvalid) as caught:
        parse_plan(
            """
- at: "2026-12-01T08:00:00"
  reason: ""
  cutover: {fax: {admin: 25}, phone: {admin: 250, vip: 5}}
  colour: blue
- at: tomorrow
  reason: ok
  cutover: {}
"""
        )
    assert [problem.path for problem in caught.value.problems] == [
        "[0].colour",
        "[0].at",
        "[0].reason",
        "[0].cutover.fax",
        "[0].cutover.phone.admin",
        "[0].cutover.phone.vip",
        "[1].at",
        "[1].cutover",
    ]


# -- the guard --------------------------------------------------------------------------------

GUARDED = validate_document({**document_data(cut_over(SHIPPED, Channel.PHONE, Category.ADMIN, 50))})


@pytest.mark.parametrize(
    ("contacts", "failures", "trips"),
    [
        (19, 19, False),  # too few contacts to judge
        (20, 5, False),  # exactly 25 % is not more than the limit
        (20, 6, True),
        (100, 26, True),
        (100, 25, False),
    ],
)
def test_the_guard_trips_above_the_failure_rate(contacts: int, failures: int, trips: bool) -> None:
    health = [ChannelHealth(Channel.PHONE, contacts, failures)]
    assert guard_trips(GUARDED, health) == ([Channel.PHONE] if trips else [])


def test_the_guard_does_not_roll_back_a_channel_already_at_zero() -> None:
    health = [ChannelHealth(Channel.EMAIL, 50, 50)]
    assert guard_trips(GUARDED, health) == []


def test_without_a_guard_section_nothing_trips() -> None:
    data = document_data(GUARDED)
    data.pop("guard")
    health = [ChannelHealth(Channel.PHONE, 500, 500)]
    assert guard_trips(validate_document(data), health) == []


# -- impact --------------------------------------------------------------------------------


def test_impact_counts_contacts_that_would_go_elsewhere_per_day() -> None:
    morning = datetime(2026, 11, 23, 10, 0, tzinfo=PRAGUE)
    keys = [f"customer-{n}" for n in range(400)]
    recorded = [
        Recorded(Channel.PHONE, Category.ADMIN, bucket(key), morning + timedelta(days=n % 2))
        for n, key in enumerate(keys)
    ]
    recorded.append(Recorded(Channel.PHONE, Category.PRODUCT, 1.0, morning))
    after = cut_over(SHIPPED, Channel.PHONE, Category.ADMIN, 25)
    preview = impact(recorded, SHIPPED, after)
    expected = sum(bucket(key) < 25 for key in keys)
    assert preview.contacts == 401
    assert sum(preview.moved["phone"].values()) == expected
    assert set(preview.moved["phone"]) == {"2026-11-23", "2026-11-24"}
    assert preview.moves["phone"] == {"hotline -> partner": expected}
    assert impact(recorded, SHIPPED, SHIPPED).moved == {}


def test_impact_replays_at_the_recorded_time() -> None:
    night = datetime(2026, 11, 23, 22, 0, tzinfo=PRAGUE)
    recorded = [Recorded(Channel.PHONE, Category.PRODUCT, 10.0, night)]
    # at night the hotline is closed: a product call went to the partner either way
    after = cut_over(SHIPPED, Channel.PHONE, Category.PRODUCT, 100)
    assert impact(recorded, SHIPPED, after).moved == {}
    assert replace(recorded[0], received_at=NOW) != recorded[0]
