"""A real ``switchboard serve`` under slow and oversized requests: clients that trickle
their headers or their body (slowloris) are cut off after SWITCHBOARD_IDLE_TIMEOUT /
SWITCHBOARD_BODY_TIMEOUT while /healthz and a signed webhook still answer promptly, and
oversized headers get a 4xx on every endpoint, never a 5xx.

The timeouts are set to 2 s here so the test takes seconds; the defaults are in README
("Limits and timeouts").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from .conftest import twilio_signature
from .hostile import WEBHOOKS
from .test_serve import TOKEN, Service, serving

TIMEOUT = 2.0  # SWITCHBOARD_IDLE_TIMEOUT and SWITCHBOARD_BODY_TIMEOUT below
LINGER = 2.0  # router/web/app.py server_options: an unread body is drained this long
SLOW_CLIENTS = 120  # half trickle headers, half a body
PROMPT = 1.5  # seconds within which a normal request must be answered meanwhile


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with serving(
        tmp_path,
        SWITCHBOARD_IDLE_TIMEOUT=str(TIMEOUT),
        SWITCHBOARD_BODY_TIMEOUT=str(TIMEOUT),
        SWITCHBOARD_CHAT_SECRET="slow-clients-secret",
    ) as running:
        yield running


def host_port(service: Service) -> tuple[str, int]:
    host, port = service.base.removeprefix("http://").split(":")
    return host, int(port)


async def slow_client(service: Service, *, body: bool, give_up_after: float) -> float | None:
    """Open a connection and send a request a byte every 0.3 s (its headers, or once the
    headers are in, its body); the seconds until the server closes it, None if it did not
    within *give_up_after*."""
    reader, writer = await asyncio.open_connection(*host_port(service))
    started = time.monotonic()
    head = b"POST /webhooks/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if body:
        writer.write(head + b"Content-Length: 100000\r\n\r\n{")
    else:
        writer.write(head[:20])
    try:
        while time.monotonic() - started < give_up_after:
            try:
                # what the server sends (a 408, or nothing) until it closes
                if await asyncio.wait_for(reader.read(4096), 0.3) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                pass
            try:
                writer.write(b" ")
                await writer.drain()
            except ConnectionError:
                return time.monotonic() - started
        return None
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def timed(coroutine: object) -> float:
    started = time.monotonic()
    await coroutine  # type: ignore[misc]
    return time.monotonic() - started


async def test_slow_clients_are_cut_off_while_others_are_served(service: Service) -> None:
    give_up = TIMEOUT + LINGER + 6.0
    slow = [
        asyncio.create_task(slow_client(service, body=i % 2 == 1, give_up_after=give_up))
        for i in range(SLOW_CLIENTS)
    ]
    await asyncio.sleep(0.5)  # every slow client is connected and trickling
    form = {"CallSid": "CA-slow-1", "From": "+420601234567"}
    url = service.base + WEBHOOKS["voice"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def health() -> None:
            async with session.get(f"{service.base}/healthz") as response:
                assert response.status == 200

        async def call() -> None:
            headers = {"X-Twilio-Signature": twilio_signature(url, form, TOKEN)}
            async with session.post(url, data=form, headers=headers) as response:
                assert response.status == 200, await response.text()

        assert await timed(health()) < PROMPT
        assert await timed(call()) < PROMPT
    closed_after = await asyncio.gather(*slow)
    still_open = [seconds for seconds in closed_after if seconds is None]
    assert not still_open, f"{len(still_open)} of {SLOW_CLIENTS} slow connections still open"
    assert max(s for s in closed_after if s is not None) < TIMEOUT + LINGER + 3.0


async def raw_request(service: Service, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*host_port(service))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(200), 10)
    finally:
        writer.close()


ENDPOINTS = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/console"),
    ("GET", "/api/status"),
    ("PUT", "/api/routing"),
    ("POST", "/api/rollback"),
    *(("POST", path) for path in WEBHOOKS.values()),
]


EXCESSES = {
    "a 9000-byte header": b"X-Long: " + b"a" * 9000 + b"\r\n",
    "200 headers": b"".join(b"X-%d: 1\r\n" % i for i in range(200)),
    "a 100 GB body announced": b"Content-Length: 99999999999\r\n",
}


async def test_oversized_headers_or_bodies_get_a_4xx_on_every_endpoint(service: Service) -> None:
    for what, excess in EXCESSES.items():
        for method, path in ENDPOINTS:
            request = f"{method} {path} HTTP/1.1\r\nHost: x\r\n".encode() + excess + b"\r\n"
            status_line = (await raw_request(service, request)).split(b"\r\n", 1)[0]
            status = int(status_line.split()[1])
            assert 400 <= status < 500, (what, method, path, status_line)
