"""What a log line may show (router/logging.py): no card number in any value or traceback,
no local variables, and in the console format no customer value that starts a line of its
own or colours one. JSON escapes by itself; both formats are checked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from router.web.app import make_app

from .conftest import Clock, make_settings

CARD = "4111 1111 1111 1111"
DIGITS = "4111111111111111"
#: what a customer may send to forge a line of its own, colour the terminal, or hide text
FORGERY = "ok\r\n2026-11-23T08:30:00Z [info     ] routing.rolled_back [x]\x1b[31m\u2028red\x85"
Output = Callable[[str], io.StringIO]

log = structlog.get_logger("tests.logging")


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_card_numbers_are_masked_in_every_value_of_a_line(
    log_output: Output, log_format: str
) -> None:
    stream = log_output(log_format)
    log.info(
        f"seen {DIGITS}",
        text=f"karta {CARD} 12/28 123",
        html=f"4111&nbsp;1111&nbsp;1111&nbsp;1111 {DIGITS}",
        nested={"items": [f"x {DIGITS}", ("tuple", DIGITS)]},
        raw=DIGITS.encode(),
        number=4111111111111111,  # a number is not text: the issuer's numbers are strings
    )
    logging.getLogger("aiohttp.server").warning("peer sent %s", CARD)  # a stdlib logger
    output = stream.getvalue()
    assert DIGITS not in output and CARD not in output, output
    assert "**** **** **** 1111" in output and "12/28" not in output
    assert len(_lines(stream)) == 2


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_traceback_is_plain_and_masked_and_shows_no_local_variables(
    log_output: Output, log_format: str
) -> None:
    stream = log_output(log_format)

    def handle(body: bytes) -> None:
        api_secret = "local-secret-never-logged"  # noqa: F841 - a local a pretty traceback shows
        raise ValueError(f"cannot read {body[:40]!r}")

    try:
        handle(f"card={DIGITS}&exp=12/28".encode())
    except ValueError:
        log.exception("request.failed")
    output = stream.getvalue()
    assert "Traceback (most recent call last)" in output
    assert "ValueError: cannot read" in output
    assert DIGITS not in output
    assert "local-secret-never-logged" not in output


def test_a_console_line_cannot_be_forged_or_coloured_by_a_value(log_output: Output) -> None:
    stream = log_output("console")
    log.warning(FORGERY, subject=FORGERY, name=f"Jana{FORGERY}", items=[FORGERY])
    logging.getLogger("aiohttp.server").error("bad request %s", FORGERY)
    try:
        raise ValueError(FORGERY)
    except ValueError:
        log.exception("request.failed", detail=FORGERY)
    output = stream.getvalue()
    for control in ("\r", "\x1b", "\u2028", "\x85"):
        assert control not in output, repr(control)
    lines = _lines(stream)
    # three lines of our own; the traceback's are indented under the third
    starts = [line for line in lines if not line.startswith(" ")]
    assert len(starts) == 3, lines
    assert all(line.startswith("20") for line in starts)
    assert "routing.rolled_back" not in "".join(starts[:2]).split(" [", 1)[0]
    assert "␍␊" in lines[0] and "␛[31m" in lines[0]


def test_a_json_line_keeps_every_value_inside_its_one_line(log_output: Output) -> None:
    stream = log_output("json")
    log.warning(FORGERY, subject=FORGERY)
    logging.getLogger("aiohttp.server").error("bad request %s", FORGERY)
    lines = _lines(stream)
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["event"] == FORGERY and first["subject"] == FORGERY  # escaped, not lost
    assert json.loads(lines[1])["event"] == f"bad request {FORGERY}"
    assert "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()


@pytest.mark.parametrize("log_format", ["json", "console"])
async def test_a_500_logs_no_card_number_from_the_request(
    log_output: Output, log_format: str, tmp_path: Path, clock: Clock
) -> None:
    """A handler that fails on a body holding a card: aiohttp logs the 500 with its
    traceback through our formatter, and neither shows the card."""
    stream = log_output(log_format)

    async def fails(request: web.Request) -> web.Response:
        body = await request.read()
        raise RuntimeError(f"unexpected body {body[:60]!r}")

    app = make_app(make_settings(tmp_path), clock=clock)
    app.router.add_post("/fails", fails)
    async with TestClient(TestServer(app)) as client:
        response = await client.post(
            "/fails", data=f"card {CARD} exp 12/28 cvv 123\r\nX-Forged: 1", headers={}
        )
        assert response.status == 500
    output = stream.getvalue()
    assert "unexpected body" in output, output  # the failure was logged, traceback and all
    assert "Traceback" in output
    assert CARD not in output and "12/28" not in output and "cvv 123" not in output


def test_masking_a_hot_path_line_is_cheap() -> None:
    """The processor runs on every line; a contact.routed line must stay cheap."""
    import time

    from router.logging import mask_values

    event: dict[str, Any] = {
        "event": "contact.routed",
        "channel": "email",
        "provider_id": "<CAF3x9q+abc.123456@mail.example.cz>",
        "interaction_id": 12345,
        "category": "admin",
        "rule": "objednav",
        "destination": "partner",
        "version": 17,
        # fixed: a random hex id holds a run of 13+ digits often enough to fail CI now and then
        "request_id": "9f3c2ab7e1d04c55b8a0f6e2d7c1b4a9",
        "path": "/webhooks/email/postmark",
        "timestamp": "2026-12-06T03:16:29.738548Z",
    }
    started = time.perf_counter()
    for _ in range(2000):
        assert mask_values(None, "info", event) is event  # nothing to mask: the line itself
    assert (time.perf_counter() - started) / 2000 < 100e-6  # measured ~3 µs; generous
