"""The contacts-and-costs report: the pure core (router/core/report.py) on plain values, then real
contacts recorded through the real app and read back through the CLI and the API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.core.document import Costs, document_data, shipped_document
from router.core.prices import PriceList
from router.core.report import (
    HANDLED_OUTCOME,
    Count,
    Report,
    ReportSection,
    build_report,
    is_handled,
    render_text,
)
from router.core.shipped import shipped_path
from router.service.queries import contacts_report
from router.service.tokens import Role, create_token
from router.service.versions import apply_document
from router.settings import Settings
from router.store import Store, create_engine, migrate

from .conftest import NOW, PUBLIC_URL, Clock, invoke, make_settings, post_twilio
from .smtp_sink import SmtpSink
from .test_api import api
from .test_email import PARTNER as PARTNER_MAILBOX
from .test_email import email_settings, message, post_mime
from .test_remote_cli import remote
from .test_rollback import switchboard
from .test_voice import dialled

KINDS = {"partner": "external", "hotline": "in_house"}
DAY = date(2026, 11, 20)
SINCE = datetime(2026, 11, 16, 8, 30, tzinfo=UTC)
UNTIL = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
SHIPPED_COSTS = {
    "currency": "EUR",
    "partner": {"phone": 1.10, "email": 0.70, "chat": 0.60},
    "in_house": {"hourly": 22.0, "per_hour": {"phone": 8, "email": 12, "chat": 10}},
}


def costs(**changes: Any) -> Costs:
    return Costs.model_validate({**SHIPPED_COSTS, **changes})


def report(rows: list[Count], priced: Costs | None = None, **kinds: str) -> Report:
    """*rows* of one day, priced by one version (3): the arithmetic without the calendar."""
    prices = PriceList(3, SINCE, priced if priced is not None else costs(), kinds or KINDS)
    return build_report(
        rows,
        current=prices,
        prices={DAY: prices},
        days=[DAY],
        timezone="Europe/Prague",
        since=SINCE,
        until=UNTIL,
    )


def line(section: ReportSection, name: str) -> dict[str, Any]:
    [found] = [d.model_dump() for d in section.destinations if d.name == name]
    return found


# -- the billing rule -------------------------------------------------------------------------

PHONE_OUTCOMES = ["routed", "answered", "fallback", "voicemail_offered", "voicemail", "abandoned"]
FORWARD_OUTCOMES = ["queued", "delivered", "fallback", "failed", "undeliverable"]


@pytest.mark.parametrize(
    ("channel", "outcome"),
    [("phone", o) for o in [*PHONE_OUTCOMES, "delivered", "failed", None]]
    + [(c, o) for c in ("email", "chat") for o in [*FORWARD_OUTCOMES, None]],
)
def test_only_an_answered_call_or_a_delivered_forward_is_billable(
    channel: str, outcome: str | None
) -> None:
    expected = (channel, outcome) in {
        ("phone", "answered"),
        ("email", "delivered"),
        ("chat", "delivered"),
    }
    assert is_handled(channel, outcome) is expected
    assert set(HANDLED_OUTCOME) == {"phone", "email", "chat"}


# -- the arithmetic -----------------------------------------------------------------------------


def test_handled_contacts_are_priced_by_kind_and_compared_with_all_in_house() -> None:
    result = report(
        [
            Count(DAY, "phone", "partner", "partner", "admin", "answered", 6),
            Count(DAY, "phone", "partner", "partner", "admin", "voicemail_offered", 1),
            Count(DAY, "phone", "hotline", "partner", "admin", "answered", 2),  # partner unanswered
            Count(DAY, "phone", "hotline", "hotline", "product", "answered", 3),
            Count(DAY, "phone", "", "", "unknown", "abandoned", 1),
            Count(DAY, "email", "partner", "partner", "admin", "delivered", 10),
            Count(DAY, "email", "hotline", "hotline", "product", "queued", 1),
        ]
    )
    phone = result.channels["phone"]
    assert (phone.contacts, phone.handled) == (13, 11)
    assert phone.categories == {"admin": 9, "product": 3, "unknown": 1}
    assert line(phone, "partner") == {
        "name": "partner",
        "kind": "external",
        "contacts": 7,
        "handled": 6,
        "redirected_in": 0,
        "redirected_out": 2,
        "outcomes": {"answered": 6, "voicemail_offered": 1},
        "unit_cost": 1.10,
        "cost": 6.60,
    }
    hotline = line(phone, "hotline")
    assert (hotline["handled"], hotline["redirected_in"]) == (5, 2)
    assert (hotline["unit_cost"], hotline["cost"]) == (2.75, 13.75)  # 22 / 8 per call
    abandoned = line(phone, "")
    assert (abandoned["kind"], abandoned["contacts"], abandoned["cost"]) == ("none", 1, 0)
    assert phone.cost.model_dump() == {
        "actual": 20.35,
        "all_in_house": 30.25,  # 11 handled calls at 2.75
        "difference": -9.90,
    }
    email = result.channels["email"]
    assert line(email, "partner")["cost"] == 7.00
    assert line(email, "hotline")["cost"] == 0  # waiting in the outbox: not handled yet
    # 10 emails at 22 / 12 = 1.8333… each: rounded once, to the cent
    assert email.cost.model_dump() == {"actual": 7.00, "all_in_house": 18.33, "difference": -11.33}
    assert result.channels["chat"].contacts == 0
    total = result.total
    assert (total.contacts, total.handled) == (24, 21)
    assert line(total, "partner")["cost"] == pytest.approx(13.60)
    assert line(total, "partner")["unit_cost"] is None  # prices are per channel
    assert total.cost.actual == pytest.approx(27.35)
    assert total.cost.all_in_house == pytest.approx(48.58)
    assert total.cost.difference == pytest.approx(-21.23)
    assert result.currency == "EUR"
    assert result.prices == {
        "external": {"phone": 1.1, "email": 0.7, "chat": 0.6},
        "in_house": {"phone": 2.75, "email": 1.8333, "chat": 2.2},
    }
    assert result.notes == []


def test_a_forward_moved_to_the_fallback_is_billed_where_it_was_delivered() -> None:
    result = report(
        [
            Count(DAY, "email", "hotline", "partner", "admin", "delivered", 4),
            Count(DAY, "email", "hotline", "partner", "admin", "failed", 1),
            Count(DAY, "chat", "partner", "partner", "admin", "failed", 2),
        ]
    )
    email = result.channels["email"]
    assert line(email, "partner")["handled"] == 0
    assert line(email, "partner")["redirected_out"] == 5
    assert line(email, "partner")["cost"] == 0
    assert line(email, "hotline")["handled"] == 4
    assert line(email, "hotline")["cost"] == pytest.approx(7.33)
    assert result.channels["chat"].cost.actual == 0
    assert result.channels["chat"].handled == 0


def test_totals_add_up_from_the_rounded_figures() -> None:
    rows = [
        Count(DAY, "email", "hotline", "hotline", "product", "delivered", 1),
        Count(DAY, "chat", "hotline", "hotline", "product", "delivered", 1),
        Count(DAY, "phone", "partner", "partner", "admin", "answered", 3),
    ]
    result = report(rows, costs(in_house={"hourly": 1.0, "per_hour": {"email": 3, "chat": 3}}))
    channels = result.channels.values()
    assert line(result.channels["email"], "hotline")["cost"] == 0.33
    assert result.total.cost.actual == pytest.approx(sum(s.cost.actual or 0 for s in channels))
    assert result.total.cost.actual == pytest.approx(0.33 + 0.33 + 3.30)


# -- what is missing -------------------------------------------------------------------------------


def test_without_a_costs_section_the_report_counts_and_every_cost_is_null() -> None:
    unpriced = PriceList(7, SINCE, None, KINDS)
    result = build_report(
        [Count(DAY, "phone", "partner", "partner", "admin", "answered", 2)],
        current=unpriced,
        prices={DAY: unpriced},
        days=[DAY],
        timezone="Europe/Prague",
        since=SINCE,
        until=UNTIL,
    )
    assert (result.currency, result.prices) == (None, None)
    assert result.channels["phone"].handled == 2
    for section in [*result.channels.values(), result.total]:
        assert set(section.cost.model_dump().values()) == {None}
        assert {d.cost for d in section.destinations} == {None}
        assert {d.unit_cost for d in section.destinations} == {None}
    [note] = result.notes
    assert "version 7 has no costs section" in note
    assert "no costs section" in render_text(result)


def test_a_channel_without_a_partner_price_has_null_costs_and_a_note() -> None:
    rows = [
        Count(DAY, "phone", "partner", "partner", "admin", "answered", 2),
        Count(DAY, "email", "partner", "partner", "admin", "delivered", 3),
        Count(DAY, "email", "hotline", "hotline", "product", "delivered", 1),
    ]
    result = report(rows, costs(partner={"phone": 1.10}))
    email = result.channels["email"]
    assert line(email, "partner")["unit_cost"] is None
    assert line(email, "partner")["cost"] is None
    assert line(email, "hotline")["cost"] == pytest.approx(1.83)
    assert email.cost.actual is None and email.cost.difference is None
    assert email.cost.all_in_house == pytest.approx(7.33)  # the comparison needs no partner
    assert result.channels["phone"].cost.actual == pytest.approx(2.20)  # unaffected
    assert result.total.cost.actual is None
    assert line(result.total, "partner")["cost"] is None
    [note] = result.notes
    assert "costs.partner.email" in note and "3 handled" in note


def test_a_missing_price_matters_only_when_something_needs_it() -> None:
    rows = [
        Count(DAY, "phone", "partner", "partner", "admin", "answered", 2),
        Count(DAY, "chat", "partner", "partner", "admin", "failed", 1),  # nothing handled
    ]
    result = report(rows, costs(partner={"phone": 1.10}))
    assert result.channels["chat"].cost.actual == 0
    assert result.total.cost.actual == pytest.approx(2.20)
    assert result.notes == []


def test_a_channel_without_an_in_house_rate_has_no_comparison() -> None:
    rows = [Count(DAY, "chat", "partner", "partner", "admin", "delivered", 5)]
    result = report(rows, costs(in_house={"hourly": 22.0, "per_hour": {"phone": 8}}))
    chat = result.channels["chat"]
    assert chat.cost.actual == pytest.approx(3.00)
    assert (chat.cost.all_in_house, chat.cost.difference) == (None, None)
    assert result.total.cost.all_in_house is None
    assert any("costs.in_house.per_hour.chat" in note for note in result.notes)


def test_a_destination_no_longer_in_the_document_is_counted_but_not_priced() -> None:
    rows = [Count(DAY, "phone", "callcenter", "callcenter", "admin", "answered", 2)]
    result = report(rows)
    old = line(result.channels["phone"], "callcenter")
    assert (old["kind"], old["handled"], old["cost"]) == ("unknown", 2, None)
    assert result.channels["phone"].cost.actual is None
    assert result.channels["phone"].cost.all_in_house == pytest.approx(5.50)
    assert any("'callcenter' is not in routing version 3" in note for note in result.notes)


def test_a_period_without_contacts_is_all_zeros() -> None:
    result = report([])
    assert list(result.channels) == ["phone", "email", "chat"]
    for section in [*result.channels.values(), result.total]:
        assert (section.contacts, section.handled) == (0, 0)
        assert section.categories == {"admin": 0, "product": 0, "unknown": 0}
        assert [(d.name, d.kind, d.contacts) for d in section.destinations] == [
            ("hotline", "in_house", 0),
            ("partner", "external", 0),
        ]
        assert section.cost.model_dump() == {"actual": 0, "all_in_house": 0, "difference": 0}
    assert result.since == "2026-11-16T08:30:00+00:00"
    assert result.until == "2026-11-23T08:30:00+00:00"


def test_the_json_reads_back_into_the_same_report_and_renders_as_text() -> None:
    result = report(
        [
            Count(DAY, "phone", "partner", "partner", "admin", "answered", 6),
            Count(DAY, "phone", "hotline", "partner", "admin", "answered", 2),
        ]
    )
    data = json.loads(json.dumps(result.model_dump(mode="json")))
    assert Report.model_validate(data) == result
    text = render_text(result)
    assert "on the last day routing version 3, in EUR" in text
    assert "phone: 8 contact(s), 8 handled" in text
    assert "2 redirected away" in text and "2 redirected here" in text
    assert "outsourcing saves 9.90 EUR" in text  # 6 × (2.75 − 1.10)


# -- end to end: real contacts through the real app ----------------------------------------------

ROUTE = "/webhooks/twilio/voice/route"
STATUS = "/webhooks/twilio/voice/status"
CALLER = "+420601234567"
START = NOW - timedelta(hours=1)
END = NOW + timedelta(hours=1)
PERIOD = {"since": START.isoformat(), "until": END.isoformat()}
ADMIN_TO_PARTNER = {"phone": {"admin": 100}, "email": {"admin": 100}}


async def call(
    client: Any, sid: str, digits: str, *statuses: str, recording: str | None = None
) -> None:
    """Route a call, then answer each <Dial> with the next DialCallStatus; with *recording*,
    the caller leaves a voicemail at the end."""
    form = {"CallSid": sid, "From": CALLER, "To": "+420555000111", "Digits": digits}
    body = await (await post_twilio(client, ROUTE, form)).text()
    for status in statuses:
        _, action = dialled(body)
        fields = {"CallSid": sid, "From": CALLER, "DialCallStatus": status}
        response = await post_twilio(client, action.removeprefix(PUBLIC_URL), fields)
        assert response.status == 200
        body = await response.text()
    if recording is not None:
        action = body.split('action="')[1].split('"')[0].replace("&amp;", "&")
        fields = {"CallSid": sid, "From": CALLER, "RecordingUrl": recording}
        response = await post_twilio(client, action.removeprefix(PUBLIC_URL), fields)
        assert response.status == 200


async def settled(store: Store, count: int) -> None:
    """Wait until *count* interactions are recorded and no forward is still on its way."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = await store.interactions(limit=None)
        outcomes = {row.outcome for row in rows}
        if len(rows) == count and not outcomes & {"queued", "fallback", "voicemail"}:
            return
        await asyncio.sleep(0.05)
    raise AssertionError([(row.provider_id, row.outcome) for row in rows])


@pytest.fixture
async def recorded(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink, clock: Clock
) -> AsyncIterator[tuple[Any, Settings, Store]]:
    """The app after five calls and three emails (admin contacts cut over to the partner):

    * CA-1 admin: the partner answers. CA-2 admin: the partner does not answer, the hotline
      does. CA-3 product: the hotline answers. CA-4 admin: neither answers, the caller
      leaves a voicemail (emailed). CA-5: the caller hangs up in the IVR menu.
    * an admin email delivered to the partner; a product email delivered to the hotline; an
      admin email the partner's mailbox refuses, delivered to the hotline (its fallback).
    """
    settings = email_settings(tmp_path, smtp)
    client = await email_app(settings, cutover=ADMIN_TO_PARTNER)
    engine = create_engine(settings.database_url)
    store = Store(engine)
    await call(client, "CA-1", "1", "completed")
    await call(client, "CA-2", "1", "no-answer", "completed")
    await call(client, "CA-3", "2", "completed")
    await call(client, "CA-4", "1", "busy", "no-answer", recording="https://rec.example/RE4")
    hangup = {"CallSid": "CA-5", "From": CALLER, "CallStatus": "completed", "CallDuration": "4"}
    assert (await post_twilio(client, STATUS, hangup)).status == 200
    await smtp.wait_for(1)  # the voicemail
    assert (await post_mime(client, message())).status == 200
    product = message(
        subject="Mixer", body="Jak nastavit tento mixer? Nevím, jak funguje program na led."
    )
    assert (await post_mime(client, product)).status == 200
    await smtp.wait_for(3)
    smtp.mailbox.refuse_rcpt[PARTNER_MAILBOX] = "550 5.1.1 mailbox unavailable"
    assert (await post_mime(client, message(subject="Faktura k objednávce"))).status == 200
    await smtp.wait_for(4)
    await settled(store, 8)
    try:
        yield client, settings, store
    finally:
        await engine.dispose()


def expected_phone() -> dict[str, Any]:
    return {
        "contacts": 5,
        "handled": 3,
        "categories": {"admin": 3, "product": 1, "unknown": 1},
        "destinations": [
            {
                "name": "hotline",
                "kind": "in_house",
                "contacts": 3,
                "handled": 2,
                "redirected_in": 2,
                "redirected_out": 0,
                # CA-4's outcome is its voicemail email's: delivered, yet no call was answered
                "outcomes": {"answered": 2, "delivered": 1},
                "unit_cost": 2.75,
                "cost": 5.5,
            },
            {
                "name": "partner",
                "kind": "external",
                "contacts": 1,
                "handled": 1,
                "redirected_in": 0,
                "redirected_out": 2,
                "outcomes": {"answered": 1},
                "unit_cost": 1.1,
                "cost": 1.1,
            },
            {
                "name": "",
                "kind": "none",
                "contacts": 1,
                "handled": 0,
                "redirected_in": 0,
                "redirected_out": 0,
                "outcomes": {"abandoned": 1},
                "unit_cost": None,
                "cost": 0.0,
            },
        ],
        "cost": {"actual": 6.6, "all_in_house": 8.25, "difference": -1.65},
    }


async def test_the_api_reports_what_the_app_recorded(
    recorded: tuple[Any, Settings, Store], clock: Clock
) -> None:
    client, _, store = recorded
    token = await create_token(store, "vera", Role.VIEWER, clock())
    answer = await api(
        client,
        "GET",
        f"/api/report?since={START.isoformat()}&until={END.isoformat()}".replace("+", "%2B"),
        token,
    )
    assert answer.status == 200, answer.body
    body = answer.body
    assert body["prices_version"] == 1  # the document with the cut-over, stored first
    assert body["currency"] == "EUR"
    assert body["channels"]["phone"] == expected_phone()
    email = body["channels"]["email"]
    assert (email["contacts"], email["handled"]) == (3, 3)
    assert email["categories"] == {"admin": 2, "product": 1, "unknown": 0}
    hotline, partner = email["destinations"]
    assert (partner["name"], partner["handled"], partner["redirected_out"]) == ("partner", 1, 1)
    assert partner["cost"] == 0.7
    assert (hotline["name"], hotline["handled"], hotline["redirected_in"]) == ("hotline", 2, 1)
    assert hotline["cost"] == 3.67  # 2 × 22 / 12
    assert email["cost"] == {"actual": 4.37, "all_in_house": 5.5, "difference": -1.13}
    assert body["channels"]["chat"]["contacts"] == 0
    total = body["total"]
    assert (total["contacts"], total["handled"]) == (8, 6)
    assert total["cost"]["actual"] == pytest.approx(10.97)
    assert total["cost"]["all_in_house"] == pytest.approx(13.75)
    assert total["cost"]["difference"] == pytest.approx(-2.78)
    assert body["notes"] == []

    # by default the last 7 days of the app's clock; a contact outside the period is left out
    clock.advance(timedelta(days=2))
    await call(client, "CA-6", "2", "completed")
    week = await api(client, "GET", "/api/report", token)
    assert week.body["channels"]["phone"]["contacts"] == 6
    period = await api(
        client,
        "GET",
        f"/api/report?since=2d&until={clock().isoformat()}".replace("+", "%2B"),
        token,
    )
    assert period.body["channels"]["phone"]["contacts"] == 1
    assert period.body["channels"]["phone"]["categories"]["product"] == 1


async def test_the_cli_on_the_database_and_through_the_api_agree_with_the_api(
    recorded: tuple[Any, Settings, Store], clock: Clock
) -> None:
    client, settings, store = recorded
    token = await create_token(store, "vera", Role.VIEWER, clock())
    args = ["--since", PERIOD["since"], "--until", PERIOD["until"]]
    through_api = await api(
        client,
        "GET",
        f"/api/report?since={PERIOD['since']}&until={PERIOD['until']}".replace("+", "%2B"),
        token,
    )
    local = await switchboard(settings, "report", *args, "--format", "json")
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout) == through_api.body
    code, out, err = await remote(client, settings, token, "report", *args, "--format", "json")
    assert code == 0, err
    assert json.loads(out) == through_api.body
    assert json.loads(out)["channels"]["phone"] == expected_phone()

    text = await switchboard(settings, "report", *args)
    assert text.returncode == 0, text.stderr
    assert "on the last day routing version 1, in EUR" in text.stdout
    assert "phone: 5 contact(s), 3 handled" in text.stdout
    assert "total: 8 contact(s), 6 handled" in text.stdout
    assert "outsourcing saves 2.78 EUR" in text.stdout


@pytest.mark.parametrize(
    ("query", "paths"),
    [
        ("since=yesterday", ["since"]),
        ("since=7d&until=soon&colour=red", ["until", "colour"]),
        ("until=30d", ["until"]),  # the default since (7d) is not before it
        ("since=2099-01-01T00:00:00", ["since"]),  # starts after now
    ],
)
async def test_bad_report_parameters_are_422_with_every_problem(
    client: Any, store: Store, clock: Clock, query: str, paths: list[str]
) -> None:
    token = await create_token(store, "vera", Role.VIEWER, clock())
    answer = await api(client, "GET", f"/api/report?{query}", token)
    assert answer.status == 422, answer.body
    assert [problem["path"] for problem in answer.body["problems"]] == paths


# -- the CLI on its own --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "--since"),
        (("--until", "soon"), "--until"),
        (("--since", "1d", "--until", "2d"), "the period is empty"),
        (("--format", "xml"), "--format"),
    ],
)
def test_bad_report_options_are_errors_on_stderr(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    invoke(env, "config", "apply", str(shipped_path("routing.yaml")), "--reason", "start")
    result = invoke(env, "report", *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert result.stdout == ""


def test_a_quiet_week_without_costs_is_counted_and_says_why_there_are_no_costs(
    env: dict[str, str], tmp_path: Path
) -> None:
    data = document_data(shipped_document())
    del data["costs"]
    path = tmp_path / "no-costs.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert invoke(env, "config", "apply", str(path), "--reason", "no prices").exit_code == 0
    result = invoke(env, "report", "--format", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["prices_version"], body["currency"], body["prices"]) == (1, None, None)
    assert body["total"]["contacts"] == 0
    assert body["total"]["cost"] == {"actual": None, "all_in_house": None, "difference": None}
    assert "no costs section" in body["notes"][0]
    since, until = datetime.fromisoformat(body["since"]), datetime.fromisoformat(body["until"])
    assert until - since == timedelta(days=7)  # the default period
    text = invoke(env, "report")
    assert "no costs section" in text.stdout


def test_report_on_an_empty_database_says_what_to_do(env: dict[str, str]) -> None:
    result = invoke(env, "report")
    assert result.exit_code == 1
    assert "no routing version" in result.stderr


# -- PostgreSQL -----------------------------------------------------------------------------------


async def test_the_store_aggregates_the_same_way_on_postgres(
    postgres_database_url: str, tmp_path: Path, clock: Clock
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from router.core.migration import cut_over
    from router.web.app import make_app

    engine = create_engine(postgres_database_url)
    try:
        await migrate.upgrade(engine)
        store = Store(engine)
        document = cut_over(shipped_document(), None, None, 100)
        await apply_document(store, document, actor="t", reason="t", now=clock())
        settings = make_settings(tmp_path, database_url=postgres_database_url)
        async with TestClient(TestServer(make_app(settings, clock=clock))) as client:
            await call(client, "CA-1", "1", "completed")
            await call(client, "CA-2", "1", "no-answer", "completed")
            await call(client, "CA-3", "1", "completed")
            clock.advance(timedelta(hours=2))
            await call(client, "CA-4", "1", "completed")  # after the period
        counts = await store.report_counts(START, END)
        assert sorted(counts) == [
            (0, "phone", "hotline", "partner", "admin", "answered", 1),
            (0, "phone", "partner", "partner", "admin", "answered", 2),
        ]
        result = await contacts_report(store, since=START, until=END)
    finally:
        await engine.dispose()
    phone = result.channels["phone"]
    assert (phone.contacts, phone.handled) == (3, 3)
    assert phone.cost.actual == pytest.approx(2 * 1.10 + 2.75)
