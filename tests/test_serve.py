"""`switchboard serve` as a real process: first start on an empty database, JSON logs,
one contact.routed line per call, and the CLI reading what the service recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from integrations.signing import HEADER, sign

from .conftest import Clock, make_settings, shipped_data, store_document, twilio_signature
from .smtp_sink import SmtpSink
from .test_chat import CHAT_SECRET, Receiver, chat
from .test_email import SECRET as EMAIL_SECRET
from .test_email import message

TOKEN = "serve-test-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


Popen = subprocess.Popen[bytes]


class Service(NamedTuple):
    base: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def serve_process(
    env: dict[str, str],
    port: int,
    log_path: Path,
    cwd: Path,
    command: Sequence[str] | None = None,
) -> Iterator[Popen]:
    """`switchboard serve` with *env* (or *command*, which execs it), once it listens on
    *port*; stopped (SIGTERM, then SIGKILL) after, unless the test killed it already. Its
    output is appended to *log_path*."""
    if command is None:
        command = [str(Path(sys.executable).with_name("switchboard")), "serve"]
    with log_path.open("a") as log:
        process = subprocess.Popen(list(command), env=env, stderr=log, stdout=log, cwd=cwd)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if process.poll() is not None:
                        pytest.fail(f"serve exited early:\n{log_path.read_text()}")
                    time.sleep(0.1)
            else:
                pytest.fail(f"serve did not listen within 30 s:\n{log_path.read_text()}")
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with serving(tmp_path) as running:
        yield running


@contextmanager
def serving(tmp_path: Path, **settings: str) -> Iterator[Service]:
    """``switchboard serve`` on a free loopback port, its database under *tmp_path*, with
    extra environment *settings*; stopped (SIGTERM, then killed) on exit."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "SWITCHBOARD_VAR_DIR": str(tmp_path / "var"),
        "SWITCHBOARD_PORT": str(port),
        "SWITCHBOARD_PUBLIC_URL": base,
        "SWITCHBOARD_LOG_FORMAT": "json",
        "TWILIO_AUTH_TOKEN": TOKEN,
        **settings,
    }
    log_path = tmp_path / "serve.log"
    with serve_process(env, port, log_path, tmp_path) as process:
        yield Service(base, env, log_path, process)


async def test_serve_routes_a_signed_call_and_logs_it_once(service: Service) -> None:
    base, env, log_path, _ = service
    form = {"CallSid": "CA-serve-1", "From": "+420601234567", "Digits": "2"}
    async with aiohttp.ClientSession() as session:
        ready = await session.get(f"{base}/readyz")
        assert ready.status == 200, await ready.text()
        assert (await ready.json())["version"] == 1  # config/routing.yaml loaded on first start
        for _ in range(2):  # Twilio retries: one interaction, one log line
            response = await session.post(
                f"{base}/webhooks/twilio/voice/route",
                data=form,
                headers={
                    "X-Twilio-Signature": twilio_signature(
                        f"{base}/webhooks/twilio/voice/route", form, TOKEN
                    ),
                    "X-Request-Id": "req-42",
                },
            )
            assert response.status == 200
            body = await response.text()
            # the real clock decides: hotline in office hours, else its fallback, the partner
            dialled = "hotline" if "<Number>+420222333444</Number>" in body else "partner"
            assert dialled == "hotline" or "<Number>+420800100200</Number>" in body
            assert response.headers["X-Request-Id"] == "req-42"

    listing = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).with_name("switchboard")), "interactions", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [record] = json.loads(listing.stdout)
    for key in (
        "id",
        "channel",
        "provider_id",
        "category",
        "side",
        "destination",
        "reason",
        "version",
        "received_at",
    ):
        assert key in record
    assert (record["provider_id"], record["category"], record["destination"]) == (
        "CA-serve-1",
        "product",
        dialled,
    )

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    routed = [line for line in lines if line["event"] == "contact.routed"]
    assert len(routed) == 1
    event = routed[0]
    assert event["request_id"] == "req-42"
    for key in (
        "channel",
        "category",
        "category_source",
        "side",
        "destination",
        "reason",
        "version",
        "latency_ms",
    ):
        assert key in event
    assert "+420601234567" not in log_path.read_text()  # the caller's number is never logged


async def test_kill_9_under_load_loses_no_answered_call(service: Service, tmp_path: Path) -> None:
    """SPEC §7: a call answered with its <Dial> is on disk, even when the process dies at
    once. Calls arrive concurrently, so they share commits (group commit); the process is
    SIGKILLed mid-load, and every CallSid that got a <Dial> must be in the database."""
    base, _, _, process = service
    url = f"{base}/webhooks/twilio/voice/route"
    answered: list[str] = []
    sent = 0
    killed = asyncio.Event()
    enough = asyncio.Event()  # well into the load, with batches in flight

    async def caller(worker: int, session: aiohttp.ClientSession) -> None:
        nonlocal sent
        for n in range(2000):  # bounded: the kill comes long before
            if killed.is_set():
                return
            form = {"CallSid": f"CA-kill-{worker}-{n}", "From": "+420601234567", "Digits": "1"}
            sent += 1
            try:
                async with session.post(
                    url,
                    data=form,
                    headers={"X-Twilio-Signature": twilio_signature(url, form, TOKEN)},
                ) as response:
                    body = await response.text()
            except aiohttp.ClientError:
                return  # the process is gone
            if response.status == 200 and "<Dial" in body:
                answered.append(form["CallSid"])
                if len(answered) >= 150:
                    enough.set()

    async def kill_soon() -> None:
        await enough.wait()
        process.send_signal(signal.SIGKILL)
        killed.set()

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.wait_for(
            asyncio.gather(kill_soon(), *(caller(worker, session) for worker in range(12))),
            timeout=60,
        )
    await asyncio.to_thread(process.wait, 10)

    with sqlite3.connect(tmp_path / "serve.db") as connection:
        on_disk = {row[0] for row in connection.execute("SELECT provider_id FROM interactions")}
    assert len(answered) >= 150
    assert sent > len(answered)  # some were in flight when it died
    missing = [sid for sid in answered if sid not in on_disk]
    assert missing == []


async def test_kill_9_under_mixed_load_loses_no_contact_and_forwards_each_once(
    tmp_path: Path, relay: SmtpSink, clock: Clock
) -> None:
    """SPEC §7 for forwards: emails and chats arrive concurrently while the outbox forwards
    them over SMTP and HTTP; the process is SIGKILLed mid-load and started again. Every
    contact answered 2xx is in the database, every forward is delivered after the restart,
    and each once, except a forward in flight at the kill (sent, its delivery not yet
    recorded): that one may arrive twice, with the same Message-ID and interaction id."""
    receiver = Receiver()
    relay.mailbox.data_delay = receiver.delays["partner"] = receiver.delays["hotline"] = 0.02
    chat_app = web.Application()
    chat_app.router.add_post("/chat/{name}", receiver.handle)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database = tmp_path / "serve.db"
    env = {
        **os.environ,
        "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "SWITCHBOARD_VAR_DIR": str(tmp_path / "var"),
        "SWITCHBOARD_PORT": str(port),
        "SWITCHBOARD_PUBLIC_URL": base,
        "SWITCHBOARD_LOG_FORMAT": "json",
        "SWITCHBOARD_SMTP_HOST": "127.0.0.1",
        "SWITCHBOARD_SMTP_PORT": str(relay.port),
        "SWITCHBOARD_SMTP_SECURITY": "none",
        "SWITCHBOARD_EMAIL_WEBHOOK_SECRET": EMAIL_SECRET,
        "SWITCHBOARD_CHAT_SECRET": CHAT_SECRET,
        # a short lease, so what was in flight at the kill is sent again soon after the
        # restart (the sends are cut at 3/4 of it)
        "SWITCHBOARD_OUTBOX_LEASE": "3",
        "SWITCHBOARD_SMTP_TIMEOUT": "2",
        "SWITCHBOARD_CHAT_TIMEOUT": "2",
        "SWITCHBOARD_OUTBOX_BASE_DELAY": "0.1",
        "SWITCHBOARD_OUTBOX_MAX_DELAY": "0.5",
    }
    log_path = tmp_path / "serve.log"
    answered: dict[str, int] = {}  # provider id -> interaction id, for every 2xx
    killed = asyncio.Event()
    enough = asyncio.Event()

    async def post(session: aiohttp.ClientSession, n: int) -> None:
        if n % 2:
            provider_id = f"kill-{n}@example.cz"  # the Message-ID, without its brackets
            raw = message(subject=f"Objednávka {n} nedorazila", message_id=f"<{provider_id}>")
            path, body = "/webhooks/email/mime", raw
            headers = {"Content-Type": "message/rfc822"}
            headers[HEADER] = sign(EMAIL_SECRET, body, int(time.time()))
        else:
            provider_id = f"kill-{n}"
            text = "Kde je moje objednávka?" if n % 4 else "Jak nastavit ten výrobek?"
            body = json.dumps(chat(text, f"conv-{n}", message_id=provider_id)).encode()
            path = "/webhooks/chat"
            headers = {"Content-Type": "application/json"}
            headers[HEADER] = sign(CHAT_SECRET, body, int(time.time()))
        async with session.post(base + path, data=body, headers=headers) as response:
            if 200 <= response.status < 300:
                answered[provider_id] = (await response.json())["interaction_id"]
                if len(answered) >= 100:
                    enough.set()

    async def sender(worker: int, session: aiohttp.ClientSession, process: Popen) -> None:
        for n in range(worker, 150, 10):  # 150 contacts, ten at a time
            if killed.is_set():
                return
            try:
                await post(session, n)
            except aiohttp.ClientError:
                return  # the process is gone

    async def kill_soon(process: Popen) -> None:
        await enough.wait()
        process.send_signal(signal.SIGKILL)
        killed.set()

    async with TestServer(chat_app, host="127.0.0.1") as chat_server:
        data = shipped_data()
        for name in ("partner", "hotline"):
            data["destinations"][name]["chat"] = str(chat_server.make_url(f"/chat/{name}"))
        data["cutover"] = {"chat": {"admin": 50}, "email": {"admin": 50}}
        settings = make_settings(tmp_path, database_url=env["SWITCHBOARD_DATABASE_URL"])
        await store_document(settings, data, clock())

        with serve_process(env, port, log_path, tmp_path) as process:
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                await asyncio.wait_for(
                    asyncio.gather(
                        kill_soon(process), *(sender(w, session, process) for w in range(10))
                    ),
                    timeout=60,
                )
            await asyncio.to_thread(process.wait, 10)

        with sqlite3.connect(database) as connection:
            on_disk = dict(connection.execute("SELECT provider_id, id FROM interactions"))
            in_flight = {
                interaction_id
                for (interaction_id,) in connection.execute(
                    "SELECT interaction_id FROM outbox "
                    "WHERE status = 'pending' AND claimed_until IS NOT NULL"
                )
            }
        assert len(answered) >= 100
        assert {key: on_disk.get(key) for key in answered} == answered  # nothing acknowledged lost

        with serve_process(env, port, log_path, tmp_path):
            deadline = time.monotonic() + 30
            while True:
                with sqlite3.connect(database) as connection:
                    statuses = dict(
                        connection.execute("SELECT status, count(*) FROM outbox GROUP BY status")
                    )
                if set(statuses) == {"delivered"}:
                    break
                assert time.monotonic() < deadline, statuses
                await asyncio.sleep(0.1)

    with sqlite3.connect(database) as connection:
        forwarded = {
            interaction_id: kind
            for interaction_id, kind in connection.execute(
                "SELECT interaction_id, kind FROM outbox"
            )
        }
    assert set(answered.values()) <= set(forwarded)
    emails: dict[int, list[str]] = {}
    for item in relay.mailbox.received:
        interaction = int(item.message["X-Switchboard-Interaction"])
        emails.setdefault(interaction, []).append(str(item.message["Message-ID"]))
    chats: Counter[int] = Counter(
        handoff["interaction_id"] for handoffs in receiver.received.values() for handoff in handoffs
    )
    arrivals = Counter({interaction: len(ids) for interaction, ids in emails.items()}) + chats
    assert set(arrivals) == set(forwarded)  # every forward arrived
    twice = {interaction for interaction, count in arrivals.items() if count > 1}
    assert twice <= in_flight, (twice, in_flight)  # only a forward in flight at the kill
    assert max(arrivals.values()) <= 2
    # a repeated email is the same message: its Message-ID is the one the customer sent
    assert all(len(set(emails.get(interaction, []))) <= 1 for interaction in twice)
    assert receiver.bad_signatures == 0
