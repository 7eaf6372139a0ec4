"""`switchboard serve` as a real process: first start on an empty database, JSON logs,
one contact.routed line per call, and the CLI reading what the service recorded."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import aiohttp
import pytest

from .conftest import twilio_signature

TOKEN = "serve-test-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service(NamedTuple):
    base: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes]


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
    command = str(Path(sys.executable).with_name("switchboard"))
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [command, "serve"], env=env, stderr=log, stdout=log, cwd=tmp_path
        )
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
            yield Service(base, env, log_path, process)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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
