"""The web console (GET /console) in a real browser: Debian's chromium driven by Playwright,
against the real app on loopback with real tokens. Plus the page's HTTP contract and the
traffic API behind its chart.

Without chromium these tests are skipped, unless ``CI`` is set: then they fail, because CI
must install it (``.ci/run`` does).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import ConsoleMessage, Page, async_playwright, expect

from router.core.contact import Category, Channel
from router.core.lifecycle import Outcome
from router.service.tokens import Role, create_token
from router.service.versions import rollback
from router.store import Store

from .conftest import PRAGUE, Clock, post_twilio
from .conftest_pg import ci_requires_postgres
from .test_api import call_goes_to as call

Client = TestClient[Any, Any]

CHROMIUM = Path(os.environ.get("SWITCHBOARD_TEST_CHROMIUM", "/usr/bin/chromium"))
HAVE_CHROMIUM = CHROMIUM.exists()
# as root, in a sandbox with no network beyond loopback (see the env notes of this machine)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PARTNER = "+420800100200"


@pytest.fixture
async def tokens(client: Client, store: Store, clock: Clock) -> dict[str, str]:
    now = clock()
    return {
        name: await create_token(store, name, role, now)
        for name, role in [("vera", Role.VIEWER), ("olga", Role.OPERATOR)]
    }


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    """A fresh browser page; fails the test on any script error or refused resource (a
    Content-Security-Policy violation shows up as a console error)."""
    if not HAVE_CHROMIUM:
        reason = f"no chromium at {CHROMIUM} (apt-get install chromium)"
        if ci_requires_postgres():  # the same CI switch as for PostgreSQL
            pytest.fail(f"CI is set, so chromium is required: {reason}", pytrace=False)
        pytest.skip(reason)
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context()
            tab = await context.new_page()
            tab.set_default_timeout(10_000)
            tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            tab.on("console", lambda message: problems.extend(unexpected(message)))
            yield tab
        finally:
            await browser.close()
    assert problems == []


# API answers the page handles itself (and shows); the browser logs them all the same
HANDLED = tuple(f"status of {status} " for status in (401, 403, 409, 422))


def unexpected(message: ConsoleMessage) -> list[str]:
    if message.type != "error" or any(status in message.text for status in HANDLED):
        return []
    return [f"console error: {message.text}"]


async def open_console(page: Page, client: Client, token: str) -> None:
    await page.goto(str(client.make_url("/console")))
    await page.fill("#token", token)
    await page.click("#sign-in-form button[type=submit]")


async def api_get(client: Client, path: str, token: str) -> tuple[int, Any]:
    response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    return response.status, json.loads(await response.text())


# -- the page over plain HTTP -------------------------------------------------------------------


async def test_the_console_is_served_with_a_strict_content_security_policy(
    client: Client,
) -> None:
    response = await client.get("/console")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert 'src="console/console.js"' in page  # relative: works under a proxy's prefix
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    for name, kind in [("console.js", "text/javascript"), ("console.css", "text/css")]:
        asset = await client.get(f"/console/{name}")
        assert (asset.status, asset.content_type) == (200, kind)
    assert (await client.get("/console/../app.py")).status == 404
    assert (await client.get("/console/index.html")).status == 404
    slash = await client.get("/console/", allow_redirects=False)
    assert slash.status == 308 and slash.headers["Location"] == "../console"


async def test_traffic_counts_contacts_per_hour_destination_and_channel(
    client: Client, tokens: dict[str, str], clock: Clock
) -> None:
    assert await call(client, "CA-traffic-1") != PARTNER  # nothing cut over: in-house
    clock.advance(timedelta(hours=1))
    assert await call(client, "CA-traffic-2") != PARTNER
    assert await call(client, "CA-traffic-3", caller="+420601234568") != PARTNER
    status, traffic = await api_get(client, "/api/traffic?hours=3", tokens["vera"])
    assert status == 200
    assert traffic["hours"] == 3
    counts = [bucket["counts"] for bucket in traffic["buckets"]]
    assert counts[0] == {}
    assert counts[1] == {"hotline": {"phone": 1, "email": 0, "chat": 0}}
    assert counts[2] == {"hotline": {"phone": 2, "email": 0, "chat": 0}}
    assert traffic["destinations"] == {"partner": "external", "hotline": "in_house"}


@pytest.mark.parametrize("query", ["hours=0", "hours=745", "hours=soon", "days=1"])
async def test_a_bad_traffic_query_is_422_and_no_token_is_401(
    client: Client, tokens: dict[str, str], query: str
) -> None:
    status, body = await api_get(client, f"/api/traffic?{query}", tokens["vera"])
    assert status == 422, body
    assert body["problems"]
    assert (await client.get("/api/traffic")).status == 401


# -- in the browser -----------------------------------------------------------------------------


async def test_a_refused_token_is_said_and_the_console_stays_closed(
    page: Page, client: Client, tokens: dict[str, str]
) -> None:
    await open_console(page, client, "sb_not-a-token")
    await expect(page.locator("#notice")).to_contain_text("token was refused")
    await expect(page.locator("#console")).to_be_hidden()
    await expect(page.locator("#sign-in")).to_be_visible()


async def test_a_viewer_sees_the_state_but_cannot_roll_back(
    page: Page, client: Client, tokens: dict[str, str], store: Store
) -> None:
    await open_console(page, client, tokens["vera"])
    await expect(page.locator("#state-version")).to_have_text("1")
    await expect(page.locator("#state-kind")).to_have_text("apply")
    await expect(page.locator("#shares-table tbody tr")).to_have_count(3)
    await expect(page.locator("#history-table tbody tr")).to_have_count(1)
    await expect(page.locator("#rollback-banner")).to_be_hidden()

    await page.fill("#rollback-reason", "just looking")
    await page.click("#rollback-button")
    await page.click("#rollback-confirm-button")
    await expect(page.locator("#notice")).to_contain_text("Not allowed with this token's role")
    assert [row.version for row in await store.history()] == [1]  # nothing changed


async def test_an_operator_rolls_back_from_the_console_and_resumes(
    page: Page, client: Client, tokens: dict[str, str], store: Store
) -> None:
    await client.post(  # something to roll back from: all admin calls to the partner
        "/api/cutover",
        json={"channel": "phone", "category": "admin", "percent": 100, "reason": "go live"},
        headers={"Authorization": f"Bearer {tokens['olga']}"},
    )
    assert await call(client, "CA-before") == PARTNER
    await open_console(page, client, tokens["olga"])
    await expect(page.locator("#shares-table tbody tr").first).to_contain_text("100 %")

    await page.fill("#rollback-reason", "partner phones down")
    await page.select_option("#rollback-for", "4h")
    await page.click("#rollback-button")
    # nothing happens before the confirmation, and cancelling keeps it that way
    await expect(page.locator("#rollback-confirm-text")).to_contain_text("every channel")
    await page.click("#rollback-cancel")
    assert (await store.history())[0].kind == "cutover"
    await page.click("#rollback-button")
    await page.click("#rollback-confirm-button")

    banner = page.locator("#rollback-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("partner phones down")
    await expect(banner).to_contain_text("By olga")
    newest = (await store.history())[0]
    assert (newest.kind, newest.actor, newest.reason) == ("rollback", "olga", "partner phones down")
    assert newest.expires_at is not None
    assert await call(client, "CA-after") != PARTNER  # the service follows at once
    await expect(page.locator("#shares-table tbody tr").first).to_contain_text("0 %")

    await page.fill("#resume-reason", "partner is back")
    await page.click("#resume-button")
    await expect(banner).to_be_hidden()
    assert (await store.history())[0].kind == "resume"
    assert await call(client, "CA-resumed") == PARTNER


async def test_a_cutover_is_previewed_then_applied(
    page: Page, client: Client, tokens: dict[str, str], store: Store
) -> None:
    await open_console(page, client, tokens["olga"])
    await page.select_option("#cutover-channel", "email")
    await page.select_option("#cutover-category", "admin")
    await page.fill("#cutover-percent", "25")
    await page.fill("#cutover-reason", "step 1")
    await page.click("#cutover-preview")
    await expect(page.locator("#preview")).to_contain_text("email × admin at 25 %")
    assert [row.version for row in await store.history()] == [1]  # a preview changes nothing

    await page.click("#cutover-apply")
    await expect(page.locator("#notice")).to_contain_text("version 2 is in force")
    email_row = page.locator("#shares-table tbody tr").nth(1)
    await expect(email_row).to_contain_text("email")
    await expect(email_row).to_contain_text("25 %")
    newest = (await store.history())[0]
    assert (newest.kind, newest.actor, newest.reason) == ("cutover", "olga", "step 1")

    await page.fill("#cutover-percent", "250")  # the browser's own check stops it…
    await page.click("#cutover-apply")
    assert len(await store.history()) == 2


async def test_the_api_refusal_of_a_bad_change_is_shown_with_its_problems(
    page: Page, client: Client, tokens: dict[str, str], store: Store
) -> None:
    await open_console(page, client, tokens["olga"])
    await page.fill("#cutover-percent", "50")
    await page.fill("#cutover-reason", "   ")  # passes the browser's check, not the API's
    await page.click("#cutover-apply")
    notice = page.locator("#notice")
    await expect(notice).to_have_class("error")
    await expect(notice).to_contain_text("reason")
    assert len(await store.history()) == 1


async def test_text_typed_by_people_is_shown_as_text_never_run(
    page: Page, client: Client, tokens: dict[str, str], store: Store, clock: Clock
) -> None:
    hostile = "<img src=x onerror=\"document.title='owned'\">"
    await rollback(store, actor="mallory<b>", reason=hostile, now=clock())
    await open_console(page, client, tokens["vera"])
    banner = page.locator("#rollback-banner")
    await expect(banner).to_contain_text(hostile)
    await expect(page.locator("#history-table tbody tr").first).to_contain_text("mallory<b>")
    assert await page.locator("#console img").count() == 0
    assert await page.title() == "Switchboard console"


async def test_the_chart_shows_the_last_day_per_destination(
    page: Page, client: Client, tokens: dict[str, str], clock: Clock
) -> None:
    await client.post(
        "/api/cutover",
        json={"channel": "phone", "category": "admin", "percent": 100, "reason": "go live"},
        headers={"Authorization": f"Bearer {tokens['olga']}"},
    )
    clock.advance(timedelta(hours=-2))
    for n in range(3):
        await call(client, f"CA-chart-{n}", caller=f"+42060123450{n}")
    clock.advance(timedelta(hours=2))
    await call(client, "CA-chart-now")
    await open_console(page, client, tokens["vera"])
    bars = page.locator("#chart rect[data-destination=partner]")
    await expect(bars).to_have_count(2)
    counts = [await bar.get_attribute("data-count") or "" for bar in await bars.all()]
    assert sorted(counts) == ["1", "3"]
    await expect(page.locator("#traffic-table tbody tr").first).to_contain_text(
        "partner (external)"
    )
    await expect(page.locator("#traffic-table tbody tr").first).to_contain_text("4")


async def test_the_costs_of_the_last_week_are_shown_per_channel(
    page: Page, client: Client, tokens: dict[str, str]
) -> None:
    await client.post(
        "/api/cutover",
        json={"channel": "phone", "category": "admin", "percent": 100, "reason": "go live"},
        headers={"Authorization": f"Bearer {tokens['olga']}"},
    )
    for n in range(2):  # two calls the partner answers: billed at its phone price
        sid = f"CA-cost-{n}"
        await call(client, sid, caller=f"+42060123460{n}")
        action = "/webhooks/twilio/voice/dial-status?attempt=1&destination=partner"
        form = {"CallSid": sid, "From": f"+42060123460{n}", "DialCallStatus": "completed"}
        assert (await post_twilio(client, action, form)).status == 200
    await open_console(page, client, tokens["vera"])
    phone = page.locator("#costs-table tbody tr").first
    await expect(phone).to_contain_text("phone")
    # 2 × 1.10 EUR at the partner, against 2 × 22/8 EUR in-house (config/routing.yaml)
    await expect(phone).to_contain_text("2.20 EUR")
    await expect(phone).to_contain_text("5.50 EUR")
    await expect(phone).to_contain_text("-3.30 EUR")
    await expect(page.locator("#costs-note")).to_contain_text("Billed: answered calls")


async def test_the_partners_conversations_are_counted_and_the_newest_listed(
    page: Page, client: Client, tokens: dict[str, str], store: Store, clock: Clock
) -> None:
    """More conversations than status lists: the console says how many there are in all."""
    from .test_store import PARTNER as PARTNER_MAILBOX
    from .test_store import an_email

    now = clock()
    async with store.unit_of_work() as uow:
        for number in range(102):
            at = now - timedelta(minutes=number)
            await uow.add_interaction(
                dataclasses.replace(
                    an_email(f"<held-{number}@shop.example>"),
                    conversation_id=f"thread-{number}",
                    destination=PARTNER_MAILBOX.destination,
                    received_at=at,
                    decided_at=at,
                    updated_at=at,
                )
            )
    await open_console(page, client, tokens["vera"])
    await expect(page.locator("#partner-table tbody tr")).to_have_count(100)
    await expect(page.locator("#partner-count")).to_have_text("102 in all; the newest 100 below.")
    await expect(page.locator("#partner-table tbody tr").first).to_contain_text("thread-0")


async def test_text_a_customer_chose_is_shown_as_text_never_run(
    page: Page, client: Client, tokens: dict[str, str], store: Store, clock: Clock
) -> None:
    """A conversation id is the customer's own (an email's Message-ID, a chat widget's
    conversation_id): the console lists those the partner holds, under its CSP, as text."""
    from .test_store import PARTNER as PARTNER_MAILBOX
    from .test_store import an_email

    hostile = "<img src=x onerror=\"document.title='owned'\"><script>document.title='x'</script>"
    now = clock()
    async with store.unit_of_work() as uow:
        await uow.add_interaction(
            dataclasses.replace(
                an_email("<hostile@shop.example>"),
                conversation_id=hostile,
                destination=PARTNER_MAILBOX.destination,
                received_at=now,
                decided_at=now,
                updated_at=now,
            )
        )
    await open_console(page, client, tokens["vera"])
    row = page.locator("#partner-table tbody tr").first
    await expect(row).to_contain_text(hostile)
    assert await page.locator("#console img").count() == 0
    assert await page.locator("#console script").count() == 0
    assert await page.title() == "Switchboard console"


async def test_the_hotline_staffing_is_shown_per_hour_with_calls(
    page: Page, client: Client, tokens: dict[str, str], store: Store, clock: Clock
) -> None:
    """Eight product calls answered in 300 s on Monday 16 November 10-11 (Prague): over
    the last 28 days that hour occurred 4 times, so 2 calls an hour, 2 x 300 / 3600 =
    0.167 erlangs; one agent is M/M/1, answering 1 - 0.167 e^{-(1 - 0.167) 20/300} = 84.2 %
    within 20 s (see tests/test_staffing.py for the arithmetic)."""
    from router.core.calls import CallProgress

    from .test_store import an_email

    monday = clock() - timedelta(days=7) + timedelta(minutes=40)  # Monday 16 Nov, 10:10
    async with store.unit_of_work() as uow:
        for number in range(8):
            at = monday + timedelta(minutes=5 * number)
            row = dataclasses.replace(
                an_email(f"CA-staff-{number}"),
                channel=Channel.PHONE,
                category=Category.PRODUCT,
                destination="hotline",
                first_destination="hotline",
                received_at=at,
                decided_at=at,
                updated_at=at,
                outcome=Outcome.ANSWERED,
            )
            interaction_id = await uow.add_interaction(row)
            assert interaction_id is not None
            progress = CallProgress(handle_seconds=300, duration_seconds=330)
            await uow.update_interaction(interaction_id, progress, at)
    await open_console(page, client, tokens["vera"])
    rows = page.locator("#staffing-table tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator("th, td")).to_have_text(
        ["mon 10-11", "2.00", "300", "1", "16.7%", "84.2%", "2.00", "1"]
    )
    await expect(page.locator("#staffing-note")).to_contain_text(
        "80 % of calls answered within 20 s (Erlang C): 1 agent-hours a week now"
    )


async def test_the_admin_share_per_day_is_drawn_against_the_80_20_rule(
    page: Page, client: Client, tokens: dict[str, str], store: Store, clock: Clock
) -> None:
    """Contacts on known days of the last week (Prague): Wednesday 18 November 3 admin and
    1 product (75 %), Friday the 20th 4 admin and 2 unknown (100 %: unknown left out), and
    one product email at 00:30 on Sunday the 22nd (23:30 UTC on the 21st: the 22nd's)."""
    from .test_store import an_email

    seeded = [
        *[("A18", 18, 10, Category.ADMIN)] * 3,
        ("P18", 18, 11, Category.PRODUCT),
        *[("A20", 20, 9, Category.ADMIN)] * 4,
        *[("U20", 20, 9, Category.UNKNOWN)] * 2,
        ("P22", 22, 0, Category.PRODUCT),
    ]
    async with store.unit_of_work() as uow:
        for number, (name, day, hour, category) in enumerate(seeded):
            at = datetime(2026, 11, day, hour, 30, tzinfo=PRAGUE)
            row = dataclasses.replace(
                an_email(f"{name}-{number}"),
                category=category,
                received_at=at,
                decided_at=at,
                updated_at=at,
            )
            assert await uow.add_interaction(row) is not None
    await open_console(page, client, tokens["vera"])
    days = page.locator("#split-svg g.day")
    await expect(days).to_have_count(8)  # 16 November 09:30 to 23 November 09:30
    dates = [await days.nth(n).get_attribute("data-date") for n in range(8)]
    assert dates == [f"2026-11-{day}" for day in range(16, 24)]

    wednesday = page.locator('#split-svg g.day[data-date="2026-11-18"]')
    assert await wednesday.get_attribute("data-admin") == "3"
    assert await wednesday.get_attribute("data-product") == "1"
    assert await wednesday.get_attribute("data-admin-share") == "0.7500"
    await expect(wednesday.locator("title")).to_have_text(
        "2026-11-18: admin 3 (75.0%), product 1 (25.0%), unknown 0"
    )
    friday = page.locator('#split-svg g.day[data-date="2026-11-20"]')
    assert await friday.get_attribute("data-admin-share") == "1.0000"
    assert await friday.get_attribute("data-unknown") == "2"
    sunday = page.locator('#split-svg g.day[data-date="2026-11-22"]')
    assert await sunday.get_attribute("data-admin-share") == "0.0000"
    quiet = page.locator('#split-svg g.day[data-date="2026-11-17"]')
    assert await quiet.get_attribute("data-admin-share") is None
    await expect(quiet.locator("rect.empty")).to_have_count(1)

    # the bars' heights are the shares: admin 3/4 of the plot on Wednesday
    admin = float(await wednesday.locator("rect.admin").get_attribute("height") or "0")
    product = float(await wednesday.locator("rect.product").get_attribute("height") or "0")
    assert admin == pytest.approx(3 * product)
    rule = page.locator("#split-svg line.rule")
    assert await rule.get_attribute("data-share") == "0.8"
    top = float(await wednesday.locator("rect.product").get_attribute("y") or "0")
    line_y = float(await rule.get_attribute("y1") or "0")
    assert line_y == pytest.approx(top + (admin + product) * 0.2)
    await expect(page.locator("#split-note")).to_contain_text(
        "Admin 77.8% of the 9 contacts placed by category"  # 7 admin, 2 product
    )


async def test_the_partners_service_levels_show_each_target_met_or_missed(
    page: Page, client: Client, tokens: dict[str, str], store: Store, clock: Clock
) -> None:
    """Three calls dialled to the partner in the last 30 days, two answered there (12 s and
    18 s of ringing), one that rang out and went to the hotline: 2 of 3 answered is 66.7 %
    against 90 % (missed); the p80 of two times is the one at rank ceil(0.8 x 2) = 2, 18 s,
    within 20 s (met). Two email reports, one resolved: 50 %, exactly the target (met). No
    chat at all: no data."""
    from router.core.calls import CallProgress
    from router.core.document import document_data, shipped_document, validate_document
    from router.service.records import PartnerFeedback
    from router.service.versions import apply_document

    from .test_store import an_email

    targets = {
        "phone": {"answer_rate": 0.9, "time_to_answer_p80": "20s"},
        "email": {"resolution_rate": 0.5},
        "chat": {"answer_rate": 0.95},
    }
    document = validate_document({**document_data(shipped_document()), "sla": {"partner": targets}})
    await apply_document(store, document, actor="test", reason="the contract", now=clock())
    at = clock() - timedelta(days=3)
    calls = [
        ("partner", "completed", None, 12.0),
        ("partner", "completed", None, 18.0),
        ("hotline", "no-answer", "completed", 4.0),  # answered by the hotline, its fallback
    ]
    email_ids = []
    async with store.unit_of_work() as uow:
        for number, (final, first_status, fallback_status, ringing) in enumerate(calls):
            row = dataclasses.replace(
                an_email(f"CA-sla-{number}"),
                channel=Channel.PHONE,
                destination=final,
                first_destination="partner",
                received_at=at,
                decided_at=at,
                updated_at=at,
                outcome=Outcome.ANSWERED,
            )
            interaction_id = await uow.add_interaction(row)
            assert interaction_id is not None
            progress = CallProgress(
                dial_status=first_status, fallback_status=fallback_status, answer_seconds=ringing
            )
            await uow.update_interaction(interaction_id, progress, at)
        for number in range(2):
            email = dataclasses.replace(an_email(f"<sla-{number}@shop.example>"), received_at=at)
            interaction_id = await uow.add_interaction(email)
            assert interaction_id is not None
            email_ids.append(interaction_id)
    for interaction_id, outcome in zip(email_ids, ["resolved", "unresolved"], strict=True):
        said = PartnerFeedback(
            partner_outcome=outcome, partner_rating=None, partner_comment=None, feedback_at=at
        )
        assert await store.record_feedback(interaction_id, said)

    await open_console(page, client, tokens["vera"])
    rows = page.locator("#sla-table tbody tr")
    await expect(rows).to_have_count(4)
    expected = [
        ["partner", "phone", "answer rate", "90.0%", "66.7%", "3 dials", "missed"],
        ["partner", "phone", "time to answer p80", "20 s", "18 s", "2 answered dials", "met"],
        ["partner", "email", "resolution rate", "50.0%", "50.0%", "2 reports", "met"],
        ["partner", "chat", "answer rate", "95.0%", "—", "0 forwards", "no data"],
    ]
    for index, cells in enumerate(expected):
        await expect(rows.nth(index).locator("th, td")).to_have_text(cells)
    verdicts = rows.locator("td:last-child")
    for index, name in enumerate(["missed", "met", "met", "no-data"]):
        await expect(verdicts.nth(index)).to_have_class(name)
    await expect(page.locator("#sla-note")).to_contain_text("Targets of routing version 2")


async def test_without_an_sla_section_the_console_says_there_is_nothing_to_assess(
    page: Page, client: Client, tokens: dict[str, str]
) -> None:
    await open_console(page, client, tokens["vera"])
    await expect(page.locator("#sla-note")).to_contain_text("has no sla section")
    await expect(page.locator("#sla-table")).to_be_hidden()
