"""The phone channel end to end: the real app, a real SQLite file, Twilio-signed requests."""

from __future__ import annotations

import asyncio
import copy
import socket
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from router.core.document import RoutingDocument, document_data, shipped_document, validate_document
from router.service.records import InteractionRecord
from router.service.versions import apply_document
from router.settings import Settings
from router.store import Store, create_engine
from router.web.app import make_app
from router.web.appkeys import store_key

from .conftest import NOW, PRAGUE, PUBLIC_URL, Clock, make_settings, post_twilio
from .stored import assert_nothing_stored, stored

PARTNER = "+420800100200"
HOTLINE = "+420222333444"
CALLER = "+420601234567"
ROUTE = "/webhooks/twilio/voice/route"
DIAL_STATUS = "/webhooks/twilio/voice/dial-status"

Client = TestClient[Any, Any]


def shipped_data() -> dict[str, Any]:
    return copy.deepcopy(document_data(shipped_document()))


def document_with(change: Callable[[dict[str, Any]], None]) -> RoutingDocument:
    data = shipped_data()
    change(data)
    return validate_document(data)


async def start(
    settings: Settings, clock: Clock, document: RoutingDocument | None = None
) -> Client:
    """Start the real app; with *document*, it is stored as the current version first."""
    if document is not None:
        engine = create_engine(settings.database_url)
        from router.store import migrate

        await migrate.upgrade(engine)
        await apply_document(
            Store(engine), document, actor="test", reason="test setup", now=clock()
        )
        await engine.dispose()
    client: Client = TestClient(TestServer(make_app(settings, clock=clock)))
    await client.start_server()
    return client


@pytest.fixture
async def app_with() -> AsyncIterator[Callable[..., Any]]:
    clients: list[Client] = []

    async def factory(*args: Any, **kwargs: Any) -> Client:
        client = await start(*args, **kwargs)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


def parse(body: str) -> ET.Element:
    return ET.fromstring(body)


def dialled(body: str) -> tuple[str, str]:
    """(number or SIP URI, action URL) of the <Dial> in *body*."""
    dial = parse(body).find("Dial")
    assert dial is not None, body
    target = dial.find("Number")
    if target is None:
        target = dial.find("Sip")
    assert target is not None and target.text
    return target.text, dial.attrib["action"]


async def route(client: Client, sid: str = "CA0001", *, caller: str = CALLER, **fields: str) -> str:
    form = {"CallSid": sid, "From": caller, "To": "+420555000111", **fields}
    response = await post_twilio(client, ROUTE, form)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/xml"
    return await response.text()


async def dial_status(client: Client, action: str, status: str, sid: str = "CA0001") -> str:
    path_qs = action.removeprefix(PUBLIC_URL)
    form = {"CallSid": sid, "From": CALLER, "DialCallStatus": status}
    response = await post_twilio(client, path_qs, form)
    assert response.status == 200, await response.text()
    return await response.text()


async def interactions(store: Store) -> list[InteractionRecord]:
    return list(await store.interactions(limit=None))


# -- the IVR menu ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "language"),
    [
        ("+420601234567", "cs-CZ"),
        ("+421901234567", "sk-SK"),
        ("+48601234567", "pl-PL"),
        ("+38640123456", "sl-SI"),
        ("+79161234567", "ru-RU"),
        ("+441632960123", "en-US"),
        ("anonymous", "en-US"),
    ],
)
async def test_incoming_call_gets_the_menu_in_the_callers_language(
    client: Client, caller: str, language: str
) -> None:
    response = await post_twilio(
        client, "/webhooks/twilio/voice", {"CallSid": "CA1", "From": caller}
    )
    assert response.status == 200
    root = parse(await response.text())
    gather = root.find("Gather")
    assert gather is not None
    assert gather.attrib["input"] == "dtmf speech"
    assert gather.attrib["numDigits"] == "1"
    assert gather.attrib["language"] == language
    assert gather.attrib["action"] == PUBLIC_URL + ROUTE
    say = gather.find("Say")
    assert say is not None and say.text == shipped_document().ivr_prompt(language)
    redirect = root.find("Redirect")
    assert redirect is not None and redirect.text == PUBLIC_URL + ROUTE


# -- deciding and dialling --------------------------------------------------------------------


async def test_key_1_sends_an_admin_call_to_the_hotline_on_baseline(
    client: Client, store: Store
) -> None:
    number, action = dialled(await route(client, Digits="1"))
    assert number == HOTLINE
    assert action == f"{PUBLIC_URL}{DIAL_STATUS}?attempt=1&destination=hotline"
    [row] = await interactions(store)
    assert (row.channel, row.provider_id, row.category, row.category_source) == (
        "phone",
        "CA0001",
        "admin",
        "digit",
    )
    assert (row.side, row.destination, row.reason, row.version) == (
        "baseline",
        "hotline",
        "baseline",
        1,
    )
    assert row.customer_hash and CALLER not in row.customer_hash
    assert row.language == "cs-CZ"
    assert timedelta(0) <= row.received_at - NOW < timedelta(seconds=30)  # the test's clock


def _full_cutover(data: dict[str, Any]) -> None:
    data["cutover"] = {"phone": {"admin": 100, "product": 100, "unknown": 100}}


def _partner_office_hours(data: dict[str, Any]) -> None:
    data["destinations"]["partner"]["hours"] = {"mon-fri": "08:00-17:00"}


@pytest.mark.parametrize(
    ("name", "change", "moment", "digits", "number", "destination", "side", "reason"),
    [
        ("baseline", None, NOW, "1", HOTLINE, "hotline", "baseline", "baseline"),
        ("target", _full_cutover, NOW, "1", PARTNER, "partner", "target", "target"),
        # product questions stay in-house even on full cut-over (target.product: hotline)
        ("target-product", _full_cutover, NOW, "2", HOTLINE, "hotline", "target", "target"),
        # Monday 20:00: the hotline is closed, its fallback (the partner) is open
        (
            "after_hours",
            None,
            datetime(2026, 11, 23, 20, 0, tzinfo=PRAGUE),
            "2",
            PARTNER,
            "partner",
            "baseline",
            "after_hours",
        ),
        # Christmas Eve is a closed date for the hotline
        (
            "holiday",
            None,
            datetime(2026, 12, 24, 10, 0, tzinfo=PRAGUE),
            "2",
            PARTNER,
            "partner",
            "baseline",
            "after_hours",
        ),
        # Saturday: both closed, so the destination anyway
        (
            "closed",
            _partner_office_hours,
            datetime(2026, 11, 28, 10, 0, tzinfo=PRAGUE),
            "1",
            HOTLINE,
            "hotline",
            "baseline",
            "closed",
        ),
    ],
)
async def test_every_decision_reason(
    app_with: Callable[..., Any],
    settings: Settings,
    store: Store,
    name: str,
    change: Callable[[dict[str, Any]], None] | None,
    moment: datetime,
    digits: str,
    number: str,
    destination: str,
    side: str,
    reason: str,
) -> None:
    clock = Clock(moment)
    document = document_with(change) if change is not None else None
    client = await app_with(settings, clock, document)
    got, action = dialled(await route(client, Digits=digits))
    assert got == number
    assert action.endswith(f"destination={destination}")
    [row] = await interactions(store)
    assert (row.destination, row.side, row.reason) == (destination, side, reason)
    assert row.version == 1  # the one stored version, whichever it is


async def test_unanswered_partner_call_falls_back_to_the_hotline(
    app_with: Callable[..., Any], settings: Settings, clock: Clock, store: Store
) -> None:
    client = await app_with(settings, clock, document_with(_full_cutover))
    number, action = dialled(await route(client, Digits="1"))
    assert number == PARTNER
    number, action = dialled(await dial_status(client, action, "no-answer"))
    assert number == HOTLINE
    assert action == f"{PUBLIC_URL}{DIAL_STATUS}?attempt=2&destination=hotline&origin=partner"
    [row] = await interactions(store)
    assert (row.first_destination, row.destination, row.reason) == (
        "partner",
        "hotline",
        "unanswered",
    )
    assert row.dial_status == "no-answer" and row.delivery_failed


@pytest.mark.parametrize("status", ["completed", "answered"])
async def test_an_answered_dial_hangs_up(client: Client, store: Store, status: str) -> None:
    _, action = dialled(await route(client, Digits="2"))
    root = parse(await dial_status(client, action, status))
    assert [child.tag for child in root] == ["Hangup"]
    [row] = await interactions(store)
    assert row.outcome == "answered" and not row.delivery_failed


@pytest.mark.parametrize("status", ["busy", "no-answer", "failed", "canceled"])
async def test_a_failed_dial_tries_the_fallback_once_then_takes_a_voicemail(
    client: Client, store: Store, status: str
) -> None:
    _, action = dialled(await route(client, Digits="2"))
    number, second = dialled(await dial_status(client, action, status))
    assert number == PARTNER  # the hotline's fallback
    root = parse(await dial_status(client, second, status))
    record = root.find("Record")
    assert record is not None, ET.tostring(root)
    recorded_action = record.attrib["action"]
    assert recorded_action.startswith(PUBLIC_URL + "/webhooks/twilio/voice/")
    [row] = await interactions(store)
    assert (row.dial_status, row.fallback_status, row.outcome) == (
        status,
        status,
        "voicemail_offered",
    )
    form = {
        "CallSid": "CA0001",
        "From": CALLER,
        "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
        "RecordingDuration": "14",
    }
    response = await post_twilio(client, recorded_action.removeprefix(PUBLIC_URL), form)
    assert response.status == 200
    root = parse(await response.text())
    assert [child.tag for child in root] == ["Say", "Hangup"]
    [row] = await interactions(store)
    assert row.outcome == "voicemail"
    assert row.recording_url == form["RecordingUrl"]


async def test_unknown_dial_status_is_refused(client: Client, store: Store) -> None:
    _, action = dialled(await route(client, Digits="2"))
    before = await stored(store)
    form = {"CallSid": "CA0001", "DialCallStatus": "exploded"}
    response = await post_twilio(client, action.removeprefix(PUBLIC_URL), form)
    assert response.status == 400
    assert "DialCallStatus" in await response.text()
    await assert_nothing_stored(store, since=before)


async def test_status_callback_keeps_the_duration(client: Client, store: Store) -> None:
    await route(client, Digits="1")
    form = {"CallSid": "CA0001", "CallStatus": "completed", "CallDuration": "73"}
    response = await post_twilio(client, "/webhooks/twilio/voice/status", form)
    assert response.status == 200
    [row] = await interactions(store)
    assert (row.call_status, row.duration_seconds) == ("completed", 73)


async def test_a_caller_who_hangs_up_in_the_menu_is_recorded_as_abandoned(
    client: Client, store: Store, clock: Clock
) -> None:
    # the menu was played (nothing is stored for it), then the caller hung up: no /route
    response = await post_twilio(
        client, "/webhooks/twilio/voice", {"CallSid": "CA-gone", "From": "+421905123456"}
    )
    assert response.status == 200
    form = {
        "CallSid": "CA-gone",
        "From": "+421905123456",
        "CallStatus": "completed",
        "CallDuration": "9",
    }
    for _ in range(2):  # Twilio may repeat a status callback: still one interaction
        response = await post_twilio(client, "/webhooks/twilio/voice/status", form)
        assert response.status == 200
    [row] = await interactions(store)
    assert (row.provider_id, row.category, row.category_source, row.destination) == (
        "CA-gone",
        "unknown",
        "hangup",
        "",
    )
    assert (row.reason, row.outcome, row.call_status, row.duration_seconds) == (
        "abandoned",
        "abandoned",
        "completed",
        9,
    )
    assert row.language == "sk-SK"
    assert row.customer_hash and "905123456" not in row.customer_hash
    started = clock() - timedelta(seconds=9)  # when the call came in, by its duration
    assert abs((started - row.received_at).total_seconds()) < 5
    # an impact preview does not count it: no routing would have sent it elsewhere
    assert await store.replay_rows(clock() - timedelta(days=1)) == []


async def test_a_status_callback_never_overwrites_a_routed_call(
    client: Client, store: Store
) -> None:
    await route(client, Digits="1")
    form = {"CallSid": "CA0001", "CallStatus": "completed", "CallDuration": "40"}
    await post_twilio(client, "/webhooks/twilio/voice/status", form)
    [row] = await interactions(store)
    assert (row.reason, row.outcome, row.category) != ("abandoned", "abandoned", "unknown")
    assert row.destination and row.duration_seconds == 40


# -- speech and no input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("speech", "category"),
    [
        ("Dobrý den, kde je moje objednávka? Ještě mi nedorazila.", "admin"),
        ("chtěl bych vrátit zboží a dostat peníze zpět", "admin"),
        ("Jak se nastavuje ten výrobek, nefunguje mi wifi", "product"),
        ("Is this blender compatible with the old jug? How do I set it up?", "product"),
    ],
)
async def test_speech_is_classified(
    client: Client, store: Store, speech: str, category: str
) -> None:
    await route(client, SpeechResult=speech, Confidence="0.91")
    [row] = await interactions(store)
    assert (row.category, row.category_source) == (category, "speech")
    assert row.rule


async def test_no_input_uses_the_ivr_default(client: Client, store: Store) -> None:
    await route(client)  # the <Redirect> after the menu timed out: no Digits, no speech
    [row] = await interactions(store)
    assert (row.category, row.category_source) == ("admin", "no_input")


# -- signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    ["unsigned", "garbage", "other-token", "form-changed", "url-without-prefix", "query-changed"],
)
async def test_bad_signatures_are_refused_and_change_nothing(
    client: Client, store: Store, tamper: str
) -> None:
    from .conftest import twilio_signature

    form = {"CallSid": "CA0001", "From": CALLER, "Digits": "1"}
    path = ROUTE
    signature: str | None
    if tamper == "unsigned":
        response = await client.post(path, data=form)
    else:
        signature = {
            "garbage": "bm90IGEgc2lnbmF0dXJl",
            "other-token": twilio_signature(PUBLIC_URL + path, form, "another-token"),
            "form-changed": twilio_signature(PUBLIC_URL + path, {**form, "Digits": "2"}),
            "url-without-prefix": twilio_signature("https://switchboard.example" + path, form),
            "query-changed": twilio_signature(PUBLIC_URL + path + "?x=1", form),
        }[tamper]
        response = await client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status == 403
    assert await interactions(store) == []
    await assert_nothing_stored(store)


async def test_without_a_twilio_token_voice_webhooks_are_refused(
    app_with: Callable[..., Any], tmp_path: Path, clock: Clock
) -> None:
    client = await app_with(make_settings(tmp_path, twilio_auth_token=None), clock)
    with structlog.testing.capture_logs() as logs:
        response = await post_twilio(client, ROUTE, {"CallSid": "CA1", "Digits": "1"})
    assert response.status == 403
    assert any("TWILIO_AUTH_TOKEN" in str(entry.get("reason")) for entry in logs)
    await assert_nothing_stored(client.app[store_key])


# -- retries ----------------------------------------------------------------------------------


async def test_a_retried_webhook_gets_the_same_twiml_and_records_once(
    client: Client, store: Store, clock: Clock
) -> None:
    first = await route(client, Digits="1")
    clock.set(datetime(2026, 11, 23, 22, 0, tzinfo=PRAGUE))  # would now decide differently
    second = await route(client, Digits="1")
    assert first == second
    assert len(await interactions(store)) == 1


async def test_concurrent_duplicates_record_one_interaction(client: Client, store: Store) -> None:
    bodies = await asyncio.gather(*(route(client, "CA-dup", Digits="1") for _ in range(20)))
    assert len(set(bodies)) == 1
    assert len(await interactions(store)) == 1


async def test_a_retried_dial_status_does_not_dial_twice(client: Client, store: Store) -> None:
    _, action = dialled(await route(client, Digits="2"))
    first = await dial_status(client, action, "busy")
    second = await dial_status(client, action, "busy")
    assert first == second
    [row] = await interactions(store)
    assert row.destination == "partner"


# -- the database failing --------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_with_the_database_down_a_call_still_gets_a_safe_dial(
    app_with: Callable[..., Any], tmp_path: Path, clock: Clock
) -> None:
    url = f"postgresql+asyncpg://switchboard@127.0.0.1:{closed_port()}/switchboard"
    settings = make_settings(tmp_path, database_url=url, db_timeout_seconds=2.0)
    with structlog.testing.capture_logs() as logs:
        client = await app_with(settings, clock)
        number, _ = dialled(await route(client, "CA-outage", Digits="1"))
    assert number == HOTLINE  # the shipped routing: everything in-house
    unrecorded = [entry for entry in logs if entry["event"] == "contact.unrecorded"]
    assert len(unrecorded) == 1
    assert unrecorded[0]["provider_id"] == "CA-outage"
    assert unrecorded[0]["destination"] == "hotline"
    ready = await client.get("/readyz")
    assert ready.status == 503


async def test_a_locked_database_file_still_gets_the_caller_dialled(
    app_with: Callable[..., Any], tmp_path: Path, clock: Clock, store: Store
) -> None:
    settings = make_settings(tmp_path, db_timeout_seconds=0.5)
    client = await app_with(settings, clock, document_with(_full_cutover))
    await route(client, "CA-before", Digits="1")  # the last-known route is now in memory
    import sqlite3

    locker = sqlite3.connect(tmp_path / "switchboard.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        with structlog.testing.capture_logs() as logs:
            number, _ = dialled(await route(client, "CA-locked", Digits="1"))
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert number == PARTNER  # routed by the version in force, not a default
    assert [entry["provider_id"] for entry in logs if entry["event"] == "contact.unrecorded"] == [
        "CA-locked"
    ]
    rows = await interactions(store)
    assert [row.provider_id for row in rows] == ["CA-before"]


async def test_readiness_reports_the_loaded_version(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["version"] == 1
    assert (await client.get("/healthz")).status == 200


async def test_metrics_count_routed_contacts(client: Client) -> None:
    await route(client, Digits="1")
    body = await (await client.get("/metrics")).text()
    assert 'switchboard_contacts_routed_total{category="admin"' in body
