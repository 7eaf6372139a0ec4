"""The month's statement and the prices of the day: the pure core (router/core/prices.py,
router/core/statement.py) on plain values, then a seeded database read through the CLI (on
the database and through the API), the API, and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from router.core.calls import CallProgress
from router.core.contact import Category, CategorySource, Channel, Reason, Side
from router.core.document import Costs, document_data, shipped_document, validate_document
from router.core.lifecycle import Outcome
from router.core.migration import cut_over
from router.core.prices import PriceList, day_starts, in_force_by_day, local_days
from router.core.statement import (
    DayHandled,
    Month,
    Statement,
    build_statement,
    parse_month,
    previous_month,
    render_csv,
    render_table,
)
from router.service.queries import contacts_report, month_statement
from router.service.records import NewInteraction
from router.service.tokens import Role, create_token
from router.service.versions import apply_document
from router.settings import Settings
from router.store import Store

from .conftest import Client, Clock, invoke, migrated_store
from .test_api import api
from .test_remote_cli import remote

PRAGUE = ZoneInfo("Europe/Prague")
KINDS = {"partner": "external", "hotline": "in_house"}
NOVEMBER = Month(2026, 11)


def costs(phone: float = 1.10, email: float = 0.70, **partner: float) -> Costs:
    prices = {"phone": phone, "email": email, "chat": 0.60, **partner}
    return Costs.model_validate(
        {
            "currency": "EUR",
            "partner": {channel: price for channel, price in prices.items() if price >= 0},
            "in_house": {"hourly": 22.0, "per_hour": {"phone": 8, "email": 12, "chat": 10}},
        }
    )


def local(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=PRAGUE)


OLD = PriceList(1, local(2026, 10, 20, 9, 0), costs(), KINDS)
NEW = PriceList(2, local(2026, 11, 15, 10, 0), costs(phone=1.25, email=0.75), KINDS)


def statement(rows: list[DayHandled], *lists: PriceList) -> Statement:
    days = NOVEMBER.days()
    since, until = NOVEMBER.period(PRAGUE)
    return build_statement(
        rows,
        month=NOVEMBER,
        prices=in_force_by_day(lists or (OLD, NEW), days, PRAGUE),
        timezone="Europe/Prague",
        since=since,
        until=until,
    )


def lines(result: Statement) -> list[tuple[Any, ...]]:
    return [
        (
            line.destination,
            line.channel,
            line.first_day,
            line.last_day,
            line.handled,
            line.voicemails,
            line.unit_price,
            line.amount,
        )
        for line in result.lines
    ]


# -- which version prices a day -----------------------------------------------------------------


def versions(by_day: dict[date, PriceList | None]) -> list[int | None]:
    return [None if prices is None else prices.version for prices in by_day.values()]


def test_a_version_applied_during_a_day_prices_that_whole_day() -> None:
    days = [date(2026, 11, 14), date(2026, 11, 15), date(2026, 11, 16)]
    assert versions(in_force_by_day([NEW, OLD], days, PRAGUE)) == [1, 2, 2]
    # a version created a moment after midnight belongs to the next day
    midnight = PriceList(3, local(2026, 11, 16, 0, 0), None, KINDS)
    late = PriceList(4, local(2026, 11, 15, 23, 59, 59), None, KINDS)
    assert versions(in_force_by_day([OLD, midnight], days, PRAGUE)) == [1, 1, 3]
    assert versions(in_force_by_day([OLD, late], days, PRAGUE)) == [1, 4, 4]
    assert in_force_by_day([NEW], [date(2026, 11, 1)], PRAGUE) == {date(2026, 11, 1): None}


def test_the_day_that_summer_time_ends_has_25_hours() -> None:
    """Prague leaves summer time on 2026-10-25 (03:00 CEST -> 02:00 CET): that local day runs
    from 22:00 UTC on the 24th to 23:00 UTC on the 25th."""
    days = local_days(
        datetime(2026, 10, 24, 21, 59, tzinfo=UTC),
        datetime(2026, 10, 25, 23, 0, tzinfo=UTC),
        PRAGUE,
    )
    assert days == [date(2026, 10, 24), date(2026, 10, 25)]
    starts = day_starts(days, PRAGUE)
    assert [moment.astimezone(UTC) for moment in starts] == [
        datetime(2026, 10, 23, 22, 0, tzinfo=UTC),
        datetime(2026, 10, 24, 22, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 23, 0, tzinfo=UTC),
    ]
    assert starts[2] - starts[1] == timedelta(hours=25)
    october = Month(2026, 10)
    since, until = october.period(PRAGUE)
    assert (since.astimezone(UTC), until.astimezone(UTC)) == (
        datetime(2026, 9, 30, 22, 0, tzinfo=UTC),  # CEST: +02:00
        datetime(2026, 10, 31, 23, 0, tzinfo=UTC),  # CET: +01:00
    )
    assert len(october.days()) == 31


def test_months_are_parsed_and_the_default_is_the_last_whole_month() -> None:
    assert parse_month("2026-11") == NOVEMBER
    assert parse_month(" 2026-01 ").days()[-1] == date(2026, 1, 31)
    for bad in ("2026-13", "2026-00", "26-11", "2026-11-01", "November", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_month(bad)
    for far in ("0001-01", "9999-12"):  # their midnights in UTC would leave the calendar
        with pytest.raises(ValueError, match="between 1970 and 9998"):
            parse_month(far)
    assert Month(9998, 12).period(PRAGUE)[1].year == 9998
    assert previous_month(local(2026, 12, 1, 0, 30), PRAGUE) == NOVEMBER
    # 23:30 UTC on 30 November is already 1 December in Prague
    assert previous_month(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), PRAGUE) == NOVEMBER
    assert previous_month(local(2026, 1, 10, 12, 0), PRAGUE) == Month(2025, 12)
    assert NOVEMBER.next() == Month(2026, 12) and Month(2026, 12).next() == Month(2027, 1)


# -- the statement's arithmetic -------------------------------------------------------------------


def row(day: int, channel: str, outcome: str, contacts: int, **extra: Any) -> DayHandled:
    return DayHandled(
        date(2026, 11, day),
        channel,
        extra.get("destination", "partner"),
        outcome,
        contacts,
        extra.get("voicemails", 0),
    )


def test_a_price_change_mid_month_gives_two_lines() -> None:
    result = statement(
        [
            row(1, "phone", "answered", 3),
            row(14, "phone", "answered", 2),
            row(15, "phone", "answered", 4),  # the new price's day, before it was applied
            row(30, "phone", "answered", 1),
            row(20, "phone", "delivered", 1, voicemails=1),  # a voicemail, emailed
            row(10, "phone", "fallback", 2),  # went on to the hotline: not the partner's
            row(10, "phone", "answered", 5, destination="hotline"),  # in-house: not billed
            row(5, "email", "delivered", 3),
            row(6, "email", "failed", 1),
        ]
    )
    assert lines(result) == [
        ("partner", "phone", "2026-11-01", "2026-11-14", 5, 0, Decimal("1.10"), Decimal("5.50")),
        ("partner", "phone", "2026-11-15", "2026-11-30", 5, 1, Decimal("1.25"), Decimal("6.25")),
        ("partner", "email", "2026-11-01", "2026-11-14", 3, 0, Decimal("0.70"), Decimal("2.10")),
        ("partner", "email", "2026-11-15", "2026-11-30", 0, 0, Decimal("0.75"), Decimal("0.00")),
    ]
    assert [line.versions for line in result.lines] == [[1], [2], [1], [2]]
    [partner] = result.destinations
    assert (partner.handled, partner.voicemails, partner.amount) == (13, 1, Decimal("13.85"))
    assert result.total.amount == Decimal("13.85")
    assert (result.currency, result.notes) == ("EUR", [])
    assert (result.since, result.until) == (
        "2026-10-31T23:00:00+00:00",
        "2026-11-30T23:00:00+00:00",
    )


def test_cut_over_versions_with_the_same_prices_make_one_line() -> None:
    cutover = PriceList(5, local(2026, 11, 10, 9, 0), costs(), KINDS)
    result = statement(
        [row(3, "phone", "answered", 1), row(12, "phone", "answered", 1)], OLD, cutover
    )
    assert lines(result) == [
        ("partner", "phone", "2026-11-01", "2026-11-30", 2, 0, Decimal("1.10"), Decimal("2.20"))
    ]
    assert result.lines[0].versions == [1, 5]


def test_each_line_is_rounded_to_the_cent_and_totals_add_the_rounded_lines() -> None:
    eighth = PriceList(1, OLD.created_at, costs(phone=0.125, email=0.125), KINDS)
    result = statement([row(2, "phone", "answered", 3), row(2, "email", "delivered", 3)], eighth)
    assert [(line.unit_price, line.amount) for line in result.lines] == [
        (Decimal("0.125"), Decimal("0.38")),  # 0.375, half up
        (Decimal("0.125"), Decimal("0.38")),
    ]
    assert result.total.amount == Decimal("0.76")  # not round(0.75)
    assert render_csv(result).splitlines()[1] == (
        "partner,phone,2026-11-01,2026-11-30,3,0.125,0.38,EUR,0"
    )


def test_the_day_of_a_price_is_the_local_day_around_the_end_of_summer_time() -> None:
    """A version applied at 00:30 on 26 October in Prague (23:30 UTC on the 25th, the day
    that had 25 hours) prices the 26th on, not the 25th."""
    early = PriceList(1, local(2026, 10, 1, 9, 0), costs(), KINDS)
    after_midnight = PriceList(2, local(2026, 10, 26, 0, 30), costs(phone=2.0), KINDS)
    assert after_midnight.created_at.astimezone(UTC).date() == date(2026, 10, 25)
    october = Month(2026, 10)
    by_day = in_force_by_day([early, after_midnight], october.days(), PRAGUE)
    assert [by_day[date(2026, 10, d)] for d in (25, 26)] == [early, after_midnight]
    since, until = october.period(PRAGUE)
    result = build_statement(
        [
            DayHandled(date(2026, 10, 25), "phone", "partner", "answered", 2, 0),
            DayHandled(date(2026, 10, 26), "phone", "partner", "answered", 1, 0),
        ],
        month=october,
        prices=by_day,
        timezone="Europe/Prague",
        since=since,
        until=until,
    )
    assert [
        (line.first_day, line.last_day, line.handled, line.amount) for line in result.lines
    ] == [
        ("2026-10-01", "2026-10-25", 2, Decimal("2.20")),
        ("2026-10-26", "2026-10-31", 1, Decimal("2.00")),
    ]
    assert (result.since, result.until) == (
        "2026-09-30T22:00:00+00:00",
        "2026-10-31T23:00:00+00:00",
    )


def test_a_missing_price_is_null_with_a_note_and_nulls_the_totals() -> None:
    no_chat = PriceList(2, NEW.created_at, costs(chat=-1), KINDS)  # no chat price at all
    result = statement(
        [
            row(3, "chat", "delivered", 2),
            row(20, "chat", "delivered", 3),
            row(3, "phone", "answered", 1),
        ],
        OLD,
        no_chat,
    )
    chat = [line for line in result.lines if line.channel == "chat"]
    assert [(line.unit_price, line.amount, line.handled) for line in chat] == [
        (Decimal("0.60"), Decimal("1.20"), 2),
        (None, None, 3),
    ]
    [note] = result.notes
    assert "costs.partner.chat" in note and "version 2" in note and "3 handled" in note
    assert result.destinations[0].amount is None
    assert result.total.amount is None
    assert result.total.handled == 6
    assert "partner,chat,2026-11-15,2026-11-30,3,,,EUR,0" in render_csv(result)
    assert "n/a" in render_table(result)


def test_without_a_costs_section_nothing_is_priced_and_the_note_says_why() -> None:
    bare = PriceList(1, OLD.created_at, None, KINDS)
    result = statement([row(3, "phone", "answered", 2)], bare)
    assert [(line.unit_price, line.amount) for line in result.lines] == [(None, None)]
    assert "version 1 has no costs section" in result.notes[0]
    assert result.currency is None


def test_a_quiet_month_has_no_lines_and_zero_totals() -> None:
    result = statement([row(3, "phone", "abandoned", 2), row(4, "email", "queued", 1)])
    assert result.lines == [] and result.destinations == []
    assert (result.total.handled, result.total.amount) == (0, Decimal("0.00"))
    assert "nothing handled at an external destination" in render_table(result)


def test_the_json_reads_back_into_the_same_statement_with_exact_money() -> None:
    result = statement([row(1, "phone", "answered", 3)])
    data = json.loads(result.model_dump_json())
    assert data["lines"][0]["unit_price"] == "1.10" and data["lines"][0]["amount"] == "3.30"
    assert Statement.model_validate(data) == result


# -- a seeded database: the CLI, the API, PostgreSQL --------------------------------------------

SINCE = "2026-11-01T00:00:00+01:00"
UNTIL = "2026-12-01T00:00:00+01:00"


def priced_document(phone: float, email: float) -> Any:
    data = document_data(cut_over(shipped_document(), None, Category.ADMIN, 100))
    data["costs"]["partner"].update({"phone": phone, "email": email})
    return validate_document(data)


#: (provider id, channel, final destination, first destination, category, outcome, received
#: at, voicemail recording)
CONTACTS: list[tuple[str, Channel, str, str, Category, Outcome, datetime, str | None]] = [
    (
        "CA-oct",
        Channel.PHONE,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.ANSWERED,
        local(2026, 10, 31, 12, 0),
        None,
    ),
    # 23:30 UTC on 31 October: 1 November in Prague
    (
        "CA-1",
        Channel.PHONE,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.ANSWERED,
        local(2026, 11, 1, 0, 30),
        None,
    ),
    (
        "CA-2",
        Channel.PHONE,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.ANSWERED,
        local(2026, 11, 14, 23, 30),
        None,
    ),
    (
        "CA-3",
        Channel.PHONE,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.ANSWERED,
        local(2026, 11, 14, 23, 45),
        None,
    ),
    # the new prices were applied at 10:00 on the 15th: these are priced by them
    (
        "CA-4",
        Channel.PHONE,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.ANSWERED,
        local(2026, 11, 15, 8, 0),
        None,
    ),
    (
        "CA-5",
        Channel.PHONE,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.ANSWERED,
        local(2026, 11, 15, 9, 0),
        None,
    ),
    (
        "CA-6",
        Channel.PHONE,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.ANSWERED,
        local(2026, 11, 15, 11, 0),
        None,
    ),
    (
        "CA-7",
        Channel.PHONE,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.ANSWERED,
        local(2026, 11, 30, 23, 59),
        None,
    ),
    (
        "CA-vm",
        Channel.PHONE,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.DELIVERED,
        local(2026, 11, 20, 10, 0),
        "https://rec.example/RE1",
    ),
    (
        "CA-fb",
        Channel.PHONE,
        "hotline",
        "partner",
        Category.ADMIN,
        Outcome.ANSWERED,
        local(2026, 11, 10, 10, 0),
        None,
    ),
    (
        "CA-p1",
        Channel.PHONE,
        "hotline",
        "hotline",
        Category.PRODUCT,
        Outcome.ANSWERED,
        local(2026, 11, 10, 11, 0),
        None,
    ),
    (
        "CA-p2",
        Channel.PHONE,
        "hotline",
        "hotline",
        Category.PRODUCT,
        Outcome.ANSWERED,
        local(2026, 11, 10, 12, 0),
        None,
    ),
    (
        "M-1",
        Channel.EMAIL,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.DELIVERED,
        local(2026, 11, 5, 9, 0),
        None,
    ),
    (
        "M-2",
        Channel.EMAIL,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.DELIVERED,
        local(2026, 11, 5, 9, 5),
        None,
    ),
    (
        "M-3",
        Channel.EMAIL,
        "partner",
        "partner",
        Category.UNKNOWN,
        Outcome.DELIVERED,
        local(2026, 11, 5, 9, 10),
        None,
    ),
    (
        "M-4",
        Channel.EMAIL,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.FAILED,
        local(2026, 11, 6, 9, 0),
        None,
    ),
    # 23:10 UTC on 30 November: 1 December in Prague, next month's
    (
        "CA-dec",
        Channel.PHONE,
        "partner",
        "partner",
        Category.ADMIN,
        Outcome.ANSWERED,
        local(2026, 12, 1, 0, 10),
        None,
    ),
]


async def seed(store: Store) -> None:
    """Version 1 (partner phone 1.10, email 0.70) from October; version 2 (1.25, 0.75)
    applied at 10:00 on 15 November; CONTACTS as the app records them."""
    await apply_document(
        store,
        priced_document(1.10, 0.70),
        actor="t",
        reason="prices 2026",
        now=local(2026, 10, 20, 9, 0),
    )
    await apply_document(
        store,
        priced_document(1.25, 0.75),
        actor="t",
        reason="new prices",
        now=local(2026, 11, 15, 10, 0),
    )
    async with store.unit_of_work() as uow:
        for provider_id, channel, final, first, category, outcome, at, recording in CONTACTS:
            interaction_id = await uow.add_interaction(
                NewInteraction(
                    channel=channel,
                    provider_id=provider_id,
                    customer_hash="h",
                    category=category,
                    category_source=CategorySource.DIGIT,
                    rule=None,
                    confidence=None,
                    side=Side.TARGET,
                    destination=final,
                    first_destination=first,
                    reason=Reason.TARGET,
                    version=1,
                    bucket=1.0,
                    language="cs-CZ",
                    received_at=at,
                    decided_at=at,
                    updated_at=at,
                    outcome=outcome,
                )
            )
            assert interaction_id is not None
            if recording is not None:
                await uow.update_interaction(
                    interaction_id, CallProgress(recording_url=recording), at
                )


#: November by hand: phone 1 (1st) + 2 (14th) at 1.10 = 3.30; 3 (15th) + 1 (30th) at 1.25 =
#: 5.00, and the voicemail of the 20th apart; email 3 (5th) at 0.70 = 2.10, none after the
#: 15th. CA-fb ended at the hotline, CA-oct and CA-dec belong to other months.
EXPECTED_LINES = [
    ["partner", "phone", "2026-11-01", "2026-11-14", "3", "1.10", "3.30", "EUR", "0"],
    ["partner", "phone", "2026-11-15", "2026-11-30", "4", "1.25", "5.00", "EUR", "1"],
    ["partner", "email", "2026-11-01", "2026-11-14", "3", "0.70", "2.10", "EUR", "0"],
    ["partner", "email", "2026-11-15", "2026-11-30", "0", "0.75", "0.00", "EUR", "0"],
]


def assert_november(body: dict[str, Any]) -> None:
    assert body["month"] == "2026-11"
    assert body["currency"] == "EUR"
    assert [
        [
            line["destination"],
            line["channel"],
            line["first_day"],
            line["last_day"],
            str(line["handled"]),
            line["unit_price"],
            line["amount"],
            line["currency"],
            str(line["voicemails"]),
        ]
        for line in body["lines"]
    ] == EXPECTED_LINES
    assert body["destinations"] == [
        {"destination": "partner", "handled": 10, "voicemails": 1, "amount": "10.40"}
    ]
    assert body["total"] == {"handled": 10, "voicemails": 1, "amount": "10.40"}
    assert body["notes"] == []


def seed_database(url: str) -> None:
    import asyncio

    async def seeded() -> None:
        async with migrated_store(url) as store:
            await seed(store)

    asyncio.run(seeded())


def test_the_command_on_the_database_prints_november_by_hand(env: dict[str, str]) -> None:
    seed_database(env["SWITCHBOARD_DATABASE_URL"])
    result = invoke(env, "statement", "--month", "2026-11", "--format", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert_november(body)

    rows = list(
        csv.reader(
            io.StringIO(invoke(env, "statement", "--month", "2026-11", "--format", "csv").stdout)
        )
    )
    assert rows[0] == [
        "destination",
        "channel",
        "from",
        "to",
        "handled",
        "unit_price",
        "amount",
        "currency",
        "voicemails",
    ]
    assert rows[1:] == EXPECTED_LINES

    table = invoke(env, "statement", "--month", "2026-11")
    assert table.exit_code == 0, table.output
    assert table.stdout.strip() == render_table(Statement.model_validate(body))
    second = "partner        phone   2026-11-15 2026-11-30        4          1       1.25"
    assert f"{second}         5.00  2" in table.stdout
    assert "10.40  EUR" in table.stdout

    october = json.loads(invoke(env, "statement", "--month", "2026-10", "--format", "json").stdout)
    assert [(line["handled"], line["amount"]) for line in october["lines"]] == [(1, "1.10")]


def test_the_report_prices_each_day_with_its_version(env: dict[str, str]) -> None:
    seed_database(env["SWITCHBOARD_DATABASE_URL"])
    result = invoke(env, "report", "--since", SINCE, "--until", UNTIL, "--format", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    phone = body["channels"]["phone"]
    partner = next(d for d in phone["destinations"] if d["name"] == "partner")
    # the statement's phone lines: 3.30 + 5.00; two prices, so no one unit cost
    assert (partner["handled"], partner["cost"], partner["unit_cost"]) == (7, 8.30, None)
    assert any("'partner' was priced at several prices" in note for note in body["notes"])
    email = next(d for d in body["channels"]["email"]["destinations"] if d["name"] == "partner")
    assert (email["handled"], email["cost"], email["unit_cost"]) == (3, 2.10, 0.7)
    hotline = next(d for d in phone["destinations"] if d["name"] == "hotline")
    assert (hotline["handled"], hotline["cost"]) == (3, 8.25)  # 3 x 22 / 8, same both versions
    assert body["prices_version"] == 2 and body["timezone"] == "Europe/Prague"
    assert [(p["first_day"], p["last_day"], p["versions"]) for p in body["price_periods"]] == [
        ("2026-11-01", "2026-11-14", [1]),
        ("2026-11-15", "2026-11-30", [2]),
    ]
    assert body["price_periods"][0]["prices"]["external"]["phone"] == 1.1
    assert len(body["days"]) == 30
    by_day = {day["date"]: day for day in body["days"]}
    assert by_day["2026-11-01"] == {"date": "2026-11-01", "admin": 1, "product": 0, "unknown": 0}
    assert by_day["2026-11-05"] == {"date": "2026-11-05", "admin": 2, "product": 0, "unknown": 1}
    assert by_day["2026-11-10"] == {"date": "2026-11-10", "admin": 1, "product": 2, "unknown": 0}
    assert by_day["2026-11-15"]["admin"] == 3
    # 11 calls and 4 emails in November
    assert sum(day["admin"] + day["product"] + day["unknown"] for day in body["days"]) == 15

    figures = list(
        csv.DictReader(
            io.StringIO(
                invoke(env, "report", "--since", SINCE, "--until", UNTIL, "--format", "csv").stdout
            )
        )
    )
    partner_phone = next(
        r for r in figures if (r["channel"], r["destination"]) == ("phone", "partner")
    )
    assert (partner_phone["handled"], partner_phone["cost"], partner_phone["unit_cost"]) == (
        "7",
        "8.30",
        "",
    )
    total = next(r for r in figures if (r["channel"], r["destination"]) == ("total", "(all)"))
    assert (total["contacts"], total["handled"], total["currency"]) == ("15", "13", "EUR")
    days = list(
        csv.DictReader(
            io.StringIO(
                invoke(
                    env,
                    "report",
                    "--since",
                    SINCE,
                    "--until",
                    UNTIL,
                    "--format",
                    "csv",
                    "--per-day",
                ).stdout
            )
        )
    )
    assert len(days) == 30
    assert days[9] == {
        "date": "2026-11-10",
        "admin": "1",
        "product": "2",
        "unknown": "0",
        "contacts": "3",
        "admin_share": "0.3333",
    }
    assert days[1]["admin_share"] == ""  # nothing that day

    text = invoke(env, "report", "--since", SINCE, "--until", UNTIL)
    assert "2026-11-01 to 2026-11-14 (version 1), in EUR" in text.stdout
    assert "  2026-11-10       1       2       0         33 %" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--month", "2026-13"), "--month"),
        (("--month", "november"), "YYYY-MM"),
        (("--format", "xml"), "--format"),
    ],
)
def test_bad_statement_options_are_usage_errors(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    seed_database(env["SWITCHBOARD_DATABASE_URL"])
    result = invoke(env, "statement", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_report_of_ten_years_is_counted_day_by_day_and_more_is_refused(
    env: dict[str, str],
) -> None:
    """3660 days are ten statements of a year of days each (the same SQL, cached)."""
    seed_database(env["SWITCHBOARD_DATABASE_URL"])
    result = invoke(env, "report", "--since", "3660d", "--format", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert len(body["days"]) in (3660, 3661)  # the first day may be cut by the period
    assert sum(day["admin"] + day["product"] + day["unknown"] for day in body["days"]) == 17
    longer = invoke(env, "report", "--since", "3700d")
    assert longer.exit_code == 1
    assert "at most 3660" in longer.stderr
    early = invoke(env, "report", "--since", "0001-01-01T00:00:00Z", "--until", "0001-02-01T00:00Z")
    assert early.exit_code == 0, early.output  # midnights before the calendar: no crash


def test_per_day_is_only_for_csv(env: dict[str, str]) -> None:
    seed_database(env["SWITCHBOARD_DATABASE_URL"])
    result = invoke(env, "report", "--per-day")
    assert result.exit_code == 2 and "--per-day" in result.stderr


@pytest.fixture
async def november(settings: Settings) -> AsyncIterator[Store]:
    """The app's database seeded before the app starts (it then finds its routing)."""
    async with migrated_store(settings.database_url) as store:
        await seed(store)
        yield store


async def test_the_api_serves_the_statement_as_json_and_as_a_file(
    november: Store, client: Client, clock: Clock, settings: Settings
) -> None:
    token = await create_token(november, "vera", Role.VIEWER, clock())
    answer = await api(client, "GET", "/api/statement?month=2026-11", token)
    assert answer.status == 200, answer.body
    assert_november(answer.body)
    download = await client.get(
        "/api/statement?month=2026-11&format=csv", headers={"Authorization": f"Bearer {token}"}
    )
    assert download.status == 200
    assert download.content_type == "text/csv"
    assert download.headers["Content-Disposition"] == 'attachment; filename="statement-2026-11.csv"'
    assert list(csv.reader(io.StringIO(await download.text())))[1:] == EXPECTED_LINES
    # without a month: the one before the app's clock's (NOW is in November 2026)
    default = await api(client, "GET", "/api/statement", token)
    assert default.body["month"] == "2026-10"
    assert [line["handled"] for line in default.body["lines"]] == [1]

    code, out, err = await remote(
        client, settings, token, "statement", "--month", "2026-11", "--format", "json"
    )
    assert code == 0, err
    assert json.loads(out) == answer.body

    report = await client.get(
        f"/api/report?since={SINCE}&until={UNTIL}&format=csv&per_day=true".replace("+", "%2B"),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert report.status == 200
    assert report.headers["Content-Disposition"] == (
        'attachment; filename="report-days-2026-10-31-2026-11-30.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(await report.text())))
    assert rows[4] == {
        "date": "2026-11-05",
        "admin": "2",
        "product": "0",
        "unknown": "1",
        "contacts": "3",
        "admin_share": "1.0000",
    }


@pytest.mark.parametrize(
    ("query", "paths"),
    [
        ("per_day=true", ["per_day"]),  # the JSON always carries the days
        ("since=3661d", ["since"]),  # more than ten years of days
        ("since=0001-01-01T00:00:00%2B01:00&until=0001-01-02T00:00:00Z", ["since"]),
        ("format=csv&per_day=perhaps", ["per_day"]),
        ("format=xml", ["format"]),
    ],
)
async def test_bad_report_formats_are_422(
    november: Store, client: Client, clock: Clock, query: str, paths: list[str]
) -> None:
    token = await create_token(november, "vera", Role.VIEWER, clock())
    answer = await api(client, "GET", f"/api/report?{query}", token)
    assert answer.status == 422, answer.body
    assert [problem["path"] for problem in answer.body["problems"]] == paths


@pytest.mark.parametrize(
    ("query", "paths"),
    [
        ("month=2026-13", ["month"]),
        ("month=11&format=pdf", ["month", "format"]),
        ("month=2026-11&colour=red", ["colour"]),
        ("month=9999-12", ["month"]),
    ],
)
async def test_bad_statement_parameters_are_422_with_every_problem(
    november: Store, client: Client, clock: Clock, query: str, paths: list[str]
) -> None:
    token = await create_token(november, "vera", Role.VIEWER, clock())
    answer = await api(client, "GET", f"/api/statement?{query}", token)
    assert answer.status == 422, answer.body
    assert [problem["path"] for problem in answer.body["problems"]] == paths


async def test_the_statement_needs_a_token_and_is_published(client: Client) -> None:
    assert (await client.get("/api/statement")).status == 401
    document = await (await client.get("/api/openapi.json")).json()
    operation = document["paths"]["/api/statement"]["get"]
    assert operation["x-switchboard-role"] == "viewer"
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert [parameter["name"] for parameter in operation["parameters"]] == ["month", "format"]
    report = document["paths"]["/api/report"]["get"]
    assert [parameter["name"] for parameter in report["parameters"]] == [
        "since",
        "until",
        "format",
        "per_day",
    ]


# -- PostgreSQL ------------------------------------------------------------------------------------


async def test_the_local_days_are_counted_the_same_on_postgres(postgres_database_url: str) -> None:
    """Contacts near midnight (UTC date and Prague date differ) land on the same local day
    on PostgreSQL, whose timestamps carry their zone."""
    async with migrated_store(postgres_database_url) as store:
        await seed(store)
        result = await month_statement(store, month=NOVEMBER, now=local(2026, 12, 6, 9, 0))
        report = await contacts_report(
            store, since=datetime.fromisoformat(SINCE), until=datetime.fromisoformat(UNTIL)
        )
    assert_november(result.model_dump(mode="json"))
    assert {day.date: day.admin for day in report.days}["2026-11-01"] == 1
    assert {day.date: day.admin for day in report.days}["2026-11-15"] == 3


def test_the_default_month_is_the_previous_one(env: dict[str, str], tmp_path: Path) -> None:
    seed_database(env["SWITCHBOARD_DATABASE_URL"])
    result = invoke(env, "statement", "--format", "json")
    assert result.exit_code == 0, result.output
    expected = previous_month(datetime.now(UTC), PRAGUE)
    assert json.loads(result.stdout)["month"] == expected.text


def test_the_statement_reads_the_month_through_the_received_at_index(
    env: dict[str, str],
) -> None:
    """At a million interactions a month is read by a range on the index, not a table scan
    (measured: half a million rows of one month in 1.7 s on SQLite; README, statement)."""
    import sqlite3

    from sqlalchemy.dialects import sqlite

    from router.store.repository import handled_per_day_query

    seed_database(env["SWITCHBOARD_DATABASE_URL"])
    starts = day_starts(NOVEMBER.days(), PRAGUE)
    query = handled_per_day_query(starts[0], starts[-1], starts[1:-1])
    sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    path = env["SWITCHBOARD_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    with sqlite3.connect(path) as connection:
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}")]
        rows = connection.execute(sql).fetchall()
    connection.close()
    assert any(
        "USING INDEX ix_interactions_received_at (received_at>? AND received_at<?)" in step
        for step in plan
    ), plan
    assert not any(step.startswith("SCAN interactions") for step in plan), plan
    assert sum(row[4] for row in rows) == 15  # the literal SQL counts what the store counts
