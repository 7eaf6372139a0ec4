"""decide() and bucket() on plain values: no database, no HTTP, a fixed clock."""

from __future__ import annotations

import copy
import random
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core.classify import Classification, load_rules
from router.core.contact import Category, CategorySource, Channel, Contact, Reason, Side
from router.core.decide import (
    bucket,
    categorize,
    decide,
    routing_rules,
    stored_bucket,
    unanswered_fallback,
)
from router.core.document import RoutingDocument, document_data, shipped_document, validate_document
from router.core.shipped import shipped_path

from .conftest import NOW, PRAGUE

SHIPPED = shipped_document()
RULES = routing_rules(load_rules(shipped_path("classifier/keywords.yaml")), SHIPPED)
BASE_CONTACT = Contact(
    channel=Channel.PHONE,
    provider_id="CA1",
    customer_key="+420601234567",
    received_at=NOW,
    digits="1",
)
ADMIN = Classification(Category.ADMIN, 1.0, CategorySource.DIGIT)


def with_data(**changes: Any) -> RoutingDocument:
    data = copy.deepcopy(document_data(SHIPPED))
    data.update(changes)
    return validate_document(data)


def shares(percent: float) -> dict[str, dict[str, float]]:
    row = {"admin": percent, "product": percent, "unknown": percent}
    return {"phone": row, "email": dict(row), "chat": dict(row)}


# -- bucket -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("", 88.94159948913374),
        ("+420601234567", 22.728109006990596),
        ("jana.novakova@example.cz", 47.54981488045453),
        ("chat-customer-42", 7.590841861468225),
    ],
)
def test_bucket_is_pinned_across_releases(key: str, expected: float) -> None:
    # Never change these: they say which customers are already on the partner's side.
    assert bucket(key) == pytest.approx(expected, abs=1e-12)


@given(st.text())
def test_bucket_is_in_range_and_stable(key: str) -> None:
    value = bucket(key)
    assert 0 <= value < 100
    assert bucket(key) == value


def test_buckets_are_uniform_within_two_percent() -> None:
    generator = random.Random(20261123)
    keys = [f"+420{generator.randrange(10**8, 10**9)}" for _ in range(100_000)]
    buckets = [bucket(key) for key in keys]
    deciles = [0] * 10
    for value in buckets:
        deciles[int(value // 10)] += 1
    expected = len(keys) / 10
    assert max(abs(count - expected) / expected for count in deciles) < 0.02
    for share in (1, 5, 10, 25, 50, 75, 90, 99):
        on_target = sum(value < share for value in buckets) / len(keys)
        assert abs(on_target - share / 100) < 0.005


# -- side ---------------------------------------------------------------------------------


@given(st.text(), st.floats(0, 100), st.floats(0, 100))
def test_raising_a_share_never_moves_a_customer_back_to_baseline(
    key: str, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    contact = replace(BASE_CONTACT, customer_key=key)
    before = decide(contact, ADMIN, with_cutover(low), NOW, version=1)
    after = decide(contact, ADMIN, with_cutover(high), NOW, version=2)
    if before.side is Side.TARGET:
        assert after.side is Side.TARGET


_CUTOVER_CACHE: dict[float, RoutingDocument] = {}


def with_cutover(percent: float) -> RoutingDocument:
    if percent not in _CUTOVER_CACHE:
        _CUTOVER_CACHE[percent] = with_data(cutover=shares(percent))
    return _CUTOVER_CACHE[percent]


def test_one_customer_lands_on_the_same_side_on_every_channel() -> None:
    document = with_data(cutover=shares(40))
    for n in range(500):
        key = f"customer-{n}"
        sides = {
            decide(
                replace(BASE_CONTACT, channel=channel, customer_key=key),
                ADMIN,
                document,
                NOW,
                version=1,
            ).side
            for channel in Channel
        }
        assert len(sides) == 1


def test_zero_share_is_baseline_and_full_share_is_target() -> None:
    assert decide(BASE_CONTACT, ADMIN, with_cutover(0), NOW, version=1).side is Side.BASELINE
    assert decide(BASE_CONTACT, ADMIN, with_cutover(100), NOW, version=1).side is Side.TARGET


# -- destination and hours --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("percent", "moment", "destination", "reason"),
    [
        (0, NOW, "hotline", Reason.BASELINE),
        (100, NOW, "partner", Reason.TARGET),
        (0, datetime(2026, 11, 23, 17, 0, tzinfo=PRAGUE), "partner", Reason.AFTER_HOURS),
        (0, datetime(2026, 11, 23, 16, 59, tzinfo=PRAGUE), "hotline", Reason.BASELINE),
        (0, datetime(2026, 12, 25, 10, 0, tzinfo=PRAGUE), "partner", Reason.AFTER_HOURS),
        (0, datetime(2026, 11, 29, 10, 0, tzinfo=PRAGUE), "partner", Reason.AFTER_HOURS),
    ],
)
def test_destination_and_reason(
    percent: float, moment: datetime, destination: str, reason: Reason
) -> None:
    decision = decide(BASE_CONTACT, ADMIN, with_cutover(percent), moment, version=7)
    assert (decision.destination, decision.reason, decision.version) == (destination, reason, 7)


def test_when_the_fallback_is_closed_too_the_destination_is_used_anyway() -> None:
    data = copy.deepcopy(document_data(SHIPPED))
    data["destinations"]["partner"]["hours"] = {"mon-fri": "08:00-17:00"}
    document = validate_document(data)
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=PRAGUE)
    decision = decide(BASE_CONTACT, ADMIN, document, saturday, version=1)
    assert (decision.destination, decision.reason) == ("hotline", Reason.CLOSED)


def test_unanswered_goes_to_an_open_fallback_once() -> None:
    assert unanswered_fallback("partner", SHIPPED, NOW) == "hotline"
    night = datetime(2026, 11, 23, 23, 0, tzinfo=PRAGUE)
    assert unanswered_fallback("partner", SHIPPED, night) is None  # hotline closed: voicemail
    assert unanswered_fallback("hotline", SHIPPED, night) == "partner"


def test_decide_is_pure() -> None:
    first = decide(BASE_CONTACT, ADMIN, SHIPPED, NOW, version=1)
    assert decide(BASE_CONTACT, ADMIN, SHIPPED, NOW, version=1) == first


# -- category -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "text", "category", "source"),
    [
        ("1", "", Category.ADMIN, CategorySource.DIGIT),
        ("2", "", Category.PRODUCT, CategorySource.DIGIT),
        ("2", "kde je moje objednavka", Category.PRODUCT, CategorySource.DIGIT),
        (None, "kde je moje objednávka", Category.ADMIN, CategorySource.SPEECH),
        (None, "jak funguje tento výrobek", Category.PRODUCT, CategorySource.SPEECH),
        (None, "", Category.ADMIN, CategorySource.NO_INPUT),
        ("9", "", Category.ADMIN, CategorySource.NO_INPUT),
        (None, "dobry den", Category.ADMIN, CategorySource.NO_INPUT),
    ],
)
def test_phone_category(
    digits: str | None, text: str, category: Category, source: CategorySource
) -> None:
    contact = replace(BASE_CONTACT, digits=digits, text=text)
    result = categorize(contact, SHIPPED, RULES)
    assert (result.category, result.source) == (category, source)


def test_a_reply_keeps_its_threads_category() -> None:
    contact = replace(
        BASE_CONTACT,
        channel=Channel.EMAIL,
        digits=None,
        text="jak funguje tento výrobek",
        thread_category=Category.ADMIN,
    )
    result = categorize(contact, SHIPPED, RULES)
    assert (result.category, result.source) == (Category.ADMIN, CategorySource.THREAD)


def test_operator_rules_from_the_document_count() -> None:
    data = copy.deepcopy(document_data(SHIPPED))
    data["classifier"] = {"rules": [{"phrase": "reklamace", "category": "product", "weight": 9}]}
    document = validate_document(data)
    rules = routing_rules(load_rules(shipped_path("classifier/keywords.yaml")), document)
    contact = replace(BASE_CONTACT, channel=Channel.CHAT, digits=None, text="Reklamace")
    assert categorize(contact, document, rules).category is Category.PRODUCT
    assert categorize(contact, SHIPPED, RULES).category is Category.ADMIN


@given(st.text(), st.integers(0, 10_000))
def test_the_stored_bucket_keeps_every_side_of_a_two_decimal_share(
    key: str, hundredths: int
) -> None:
    share = hundredths / 100
    exact = bucket(key)
    assert (stored_bucket(exact) < share) == (exact < share)
    assert exact - 0.01 < stored_bucket(exact) <= exact
