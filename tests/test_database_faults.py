"""The database going away (issue #15, SPEC §7), with real parts: the app on a real SQLite
file locked by another process, and on PostgreSQL servers of these tests' own that hang
(SIGSTOP) or are stopped and started again.

While the database cannot be written every webhook answers within SWITCHBOARD_DB_TIMEOUT
plus a margin: a call gets its safe TwiML from the routing in force and is logged in full
(``contact.unrecorded``); email, chat, SMS and the call status callback answer 503 with
Retry-After and keep nothing; /readyz says why it is not ready. Once the database is back,
everything works again without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from router.core.document import validate_document
from router.service.routing import cache_path
from router.service.versions import apply_document
from router.settings import Settings
from router.web.app import READY_FRESH_SECONDS
from router.web.appkeys import routing_key, store_key
from router.web.forwarded import RETRY_AFTER_SECONDS

from .conftest import (
    Clock,
    app_time,
    migrated_store,
    post_twilio,
    shipped_data,
    store_document,
)
from .conftest_pg import running_postgres
from .pg_server import PostgresServer
from .smtp_sink import SmtpSink
from .test_chat import CHAT_SECRET
from .test_email import email_settings, interactions
from .test_rollback import eventually
from .test_voice import closed_port, dialled
from .test_webhook_checks import post_chat_signed_at, post_mime_signed_at

Client = TestClient[Any, Any]

#: What an answer may take beyond SWITCHBOARD_DB_TIMEOUT: rendering, a busy test machine.
MARGIN = 1.0
PARTNER = "+420800100200"
HOTLINE = "+420222333444"
CALLER = "+420601234567"

#: Another process holding SQLite's write lock until its stdin closes.
LOCKER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
connection.execute("ROLLBACK")
"""


@contextlib.contextmanager
def locked_by_another_process(database: Path) -> Iterator[None]:
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert locker.stdin is not None and locker.stdout is not None
    try:
        assert locker.stdout.readline() == "locked\n"
        yield
    finally:
        locker.stdin.close()
        locker.wait(10)


def partner_takes_admin_calls(data: dict[str, Any]) -> dict[str, Any]:
    """The shipped document with admin calls cut over to the partner (so the safe <Dial>
    shows which version it came from), chat hand-offs to a closed port on loopback."""
    data["cutover"] = {"phone": {"admin": 100}}
    for destination in data["destinations"].values():
        destination["chat"] = f"http://127.0.0.1:{closed_port()}/chat"
    return data


class Answer:
    def __init__(self, response: ClientResponse, body: str, seconds: float) -> None:
        self.status = response.status
        self.retry_after = response.headers.get("Retry-After")
        self.body = body
        self.seconds = seconds


async def timed(request: Any) -> Answer:
    started = time.monotonic()
    response = await request
    body = await response.text()
    return Answer(response, body, time.monotonic() - started)


async def every_webhook(client: Client, tag: str) -> dict[str, Answer]:
    """One request to each webhook at once; the call's CallSid is ``CA-<tag>``."""
    call = {"CallSid": f"CA-{tag}", "From": CALLER, "To": "+420555000111"}
    other = {**call, "CallSid": f"CA-{tag}-dialled"}
    requests = {
        "voice": post_twilio(client, "/webhooks/twilio/voice", call),
        "route": post_twilio(client, "/webhooks/twilio/voice/route", {**call, "Digits": "1"}),
        "dial-status": post_twilio(
            client,
            "/webhooks/twilio/voice/dial-status?attempt=1&destination=partner",
            {**other, "DialCallStatus": "no-answer"},
        ),
        "status": post_twilio(
            client,
            "/webhooks/twilio/voice/status",
            {**other, "CallStatus": "completed", "CallDuration": "7"},
        ),
        "sms": post_twilio(
            client,
            "/webhooks/twilio/messaging",
            {"MessageSid": f"SM-{tag}", "From": CALLER, "Body": "Kde je objednávka?"},
        ),
        "chat": post_chat_signed_at(client, app_time(client)),
        "mime": post_mime_signed_at(client, app_time(client)),
    }
    answers = await asyncio.gather(*(timed(request) for request in requests.values()))
    return dict(zip(requests, answers, strict=True))


async def assert_outage_answered(
    client: Client, tag: str, budget: float, dialled_number: str
) -> None:
    """Every webhook answered in time, as SPEC §7 says, and /readyz not ready."""
    with structlog.testing.capture_logs() as logs:
        answers = await every_webhook(client, tag)
    late = {name: round(a.seconds, 2) for name, a in answers.items() if a.seconds > budget + MARGIN}
    assert late == {}, f"answered later than {budget} s + {MARGIN} s"
    assert {name: a.status for name, a in answers.items()} == {
        "voice": 200,
        "route": 200,
        "dial-status": 200,
        "status": 503,
        "sms": 503,
        "chat": 503,
        "mime": 503,
    }
    for name in ("status", "sms", "chat", "mime"):
        assert answers[name].retry_after == str(RETRY_AFTER_SECONDS), name
    number, _ = dialled(answers["route"].body)
    assert number == dialled_number  # the routing in force, not a default
    fallback = ET.fromstring(answers["dial-status"].body).find("Dial")
    assert fallback is not None  # the caller is still put through to the fallback
    [unrecorded] = [entry for entry in logs if entry["event"] == "contact.unrecorded"]
    assert unrecorded["provider_id"] == f"CA-{tag}"
    assert unrecorded["twiml"] == answers["route"].body  # logged in full, to record it later
    assert unrecorded["destination"] == "partner" and unrecorded["category"] == "admin"
    events = {entry["event"] for entry in logs}
    assert {"call.progress_unrecorded", "call.status_unrecorded", "contact.unavailable"} <= events

    started = time.monotonic()
    ready = await client.get("/readyz")
    assert time.monotonic() - started < budget + MARGIN
    assert ready.status == 503
    [problem] = (await ready.json())["problems"]
    assert problem.startswith("database cannot be written")


async def ready_again(client: Client, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while (response := await client.get("/readyz")).status != 200:
        assert time.monotonic() < deadline, await response.text()
        await asyncio.sleep(0.1)


async def assert_everything_works(client: Client, smtp: SmtpSink, tag: str) -> None:
    answers = await every_webhook(client, tag)
    assert {name: a.status for name, a in answers.items()} == dict.fromkeys(answers, 200)
    number, _ = dialled(answers["route"].body)
    assert number == PARTNER
    await smtp.wait_for(1)  # the outbox forwards the email accepted now


# -- SQLite: the file locked by another process ------------------------------------------------


async def test_a_sqlite_file_locked_by_another_process(
    tmp_path: Path, smtp: SmtpSink, clock: Clock, started_apps: Any
) -> None:
    timeout = 1.0
    settings = email_settings(tmp_path, smtp, chat_secret=CHAT_SECRET, db_timeout_seconds=timeout)
    await store_document(settings, partner_takes_admin_calls(shipped_data()), clock())
    client: Client = await started_apps(settings)
    assert (await client.get("/readyz")).status == 200

    with locked_by_another_process(tmp_path / "switchboard.db"):
        await assert_outage_answered(client, "locked", timeout, PARTNER)
        await assert_outage_answered(client, "still-locked", timeout, PARTNER)

    await ready_again(client)
    await assert_everything_works(client, smtp, "after")
    stored = {row.provider_id for row in await interactions(settings)}
    # nothing of the outage was kept (the chat and email posted then are new now)
    assert stored == {"CA-after", "CA-after-dialled", "SM-after", "m-fresh-1", "fresh-1@example.cz"}


async def test_readiness_probes_the_database_at_most_once_a_second(client: Client) -> None:
    """/readyz is asked often (every replica, every few seconds, maybe by several probes):
    concurrent and repeated asks within a second share one probe of the database."""
    group_commit = client.app[store_key].group_commit
    assert group_commit is not None
    before = group_commit.members  # each SQLite probe is one turn in the group commit
    answers = await asyncio.gather(*(client.get("/readyz") for _ in range(20)))
    assert {answer.status for answer in answers} == {200}
    assert (await client.get("/readyz")).status == 200
    assert group_commit.members == before + 1
    await asyncio.sleep(READY_FRESH_SECONDS)
    assert (await client.get("/readyz")).status == 200
    assert group_commit.members == before + 2


# -- PostgreSQL: a server that hangs, and one stopped and started again ----------------------


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this module's own: these tests stop it, which the session's shared one
    must never be."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_settings(
    own_postgres: PostgresServer, tmp_path: Path, smtp: SmtpSink, request: pytest.FixtureRequest
) -> Settings:
    url = own_postgres.create_database(request.node.name)
    return email_settings(tmp_path, smtp, chat_secret=CHAT_SECRET, database_url=url)


@contextlib.contextmanager
def frozen(server: PostgresServer) -> Iterator[None]:
    """The server stops answering but closes nothing, as behind a network black hole."""
    processes = server.processes()
    for pid in processes:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def cut_over_admin_calls(settings: Settings, client: Client, clock: Clock) -> int:
    """Store a routing change through a store of its own (as the CLI would) and wait for
    the app to route by it; its version."""
    data = partner_takes_admin_calls(shipped_data())
    async with migrated_store(settings.database_url) as store:
        row = await apply_document(
            store, validate_document(data), actor="test", reason="before the outage", now=clock()
        )
    assert row is not None
    await asyncio.wait_for(client.app[routing_key].wait_for(row.version), 5)
    return row.version


async def test_a_postgresql_server_that_hangs_costs_no_call_more_than_its_budget(
    own_postgres: PostgresServer, pg_settings: Settings, clock: Clock, started_apps: Any
) -> None:
    """A connection whose server stopped answering is given up at the deadline, not after
    a second wait for its clean-up (which took two budgets before)."""
    timeout = 2.0
    settings = replace(pg_settings, db_timeout_seconds=timeout)
    client: Client = await started_apps(settings)
    await cut_over_admin_calls(settings, client, clock)
    assert (await client.get("/readyz")).status == 200

    with frozen(own_postgres):
        await assert_outage_answered(client, "hung", timeout, PARTNER)

    await ready_again(client)
    route = await post_twilio(
        client,
        "/webhooks/twilio/voice/route",
        {"CallSid": "CA-back", "From": CALLER, "Digits": "1"},
    )
    assert route.status == 200
    assert "CA-back" in {row.provider_id for row in await interactions(settings)}


async def test_a_postgresql_server_stopped_and_started_again(
    own_postgres: PostgresServer,
    pg_settings: Settings,
    smtp: SmtpSink,
    clock: Clock,
    started_apps: Any,
) -> None:
    timeout = 1.0
    settings = replace(pg_settings, db_timeout_seconds=timeout)
    client: Client = await started_apps(settings)
    await cut_over_admin_calls(settings, client, clock)  # made before the outage: in force

    await asyncio.to_thread(own_postgres.halt)
    try:
        await assert_outage_answered(client, "stopped", timeout, PARTNER)
    finally:
        await asyncio.to_thread(own_postgres.restart)

    await ready_again(client)
    await assert_everything_works(client, smtp, "after")
    assert "CA-stopped" not in {row.provider_id for row in await interactions(settings)}

    # the listener subscribed again: a change reaches the service within a second
    listening = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
    deadline = time.monotonic() + 10
    while (await asyncio.to_thread(own_postgres.psql, listening)).strip() != "1":
        assert time.monotonic() < deadline, "the routing listener did not LISTEN again"
        await asyncio.sleep(0.2)
    async with migrated_store(settings.database_url) as store:
        data = shipped_data()
        changed = await apply_document(
            store, validate_document(data), actor="t", reason="after", now=clock()
        )
        assert changed is not None
        started = time.monotonic()
        await asyncio.wait_for(client.app[routing_key].wait_for(changed.version), 1.0)
    assert time.monotonic() - started < 1.0
    route = await post_twilio(
        client, "/webhooks/twilio/voice/route", {"CallSid": "CA-new", "From": CALLER, "Digits": "1"}
    )
    number, _ = dialled(await route.text())
    assert number == HOTLINE  # the change made after the outage is the one in force


async def test_a_replica_started_while_postgresql_is_stopped_routes_by_the_cached_version(
    own_postgres: PostgresServer,
    pg_settings: Settings,
    clock: Clock,
    started_apps: Any,
    log_output: Callable[[str], io.StringIO],
) -> None:
    """Issue #18: a replica starting during an outage routes by the version the replicas
    last saw (cached in the var dir they share), and /metrics says which one."""
    settings = replace(pg_settings, db_timeout_seconds=1.0)
    first = await started_apps(settings)
    version = await cut_over_admin_calls(settings, first, clock)
    assert version == 2  # the shipped document was version 1
    cached = json.loads(cache_path(settings.var_dir).read_text(encoding="utf-8"))
    assert cached["version"] == 2

    await asyncio.to_thread(own_postgres.halt)
    try:
        replica: Client = await started_apps(settings)
        ready = await replica.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["version"] == 2
        scraped = await (await replica.get("/metrics")).text()
        assert "switchboard_routing_version 2.0" in scraped.splitlines()
        # version 2 sends admin calls to the partner; the shipped document, to the hotline
        route = await post_twilio(
            replica,
            "/webhooks/twilio/voice/route",
            {"CallSid": "CA-cold-start", "From": CALLER, "Digits": "1"},
        )
        assert route.status == 200
        assert dialled(await route.text())[0] == PARTNER
        logs = log_output("json")
        await asyncio.sleep(2.0)  # twenty tries of the routing follower, four outbox passes
    finally:
        await asyncio.to_thread(own_postgres.restart)

    async def back() -> bool:
        return (await replica.get("/readyz")).status == 200

    def events() -> list[str]:
        return [json.loads(line)["event"] for line in logs.getvalue().splitlines() if line]

    async def outboxes_back() -> bool:
        return events().count("outbox.available") == 2

    await eventually(back, within=10)
    await eventually(outboxes_back, within=10)
    # said once when it went, not every 100 ms or every pass (the first app said it before
    # the capture, the replica's worker maybe after); its return once by each app
    assert events().count("database.unavailable") == 0, events()
    assert events().count("outbox.unavailable") <= 1, events()
    assert events().count("database.available") == 2, events()
