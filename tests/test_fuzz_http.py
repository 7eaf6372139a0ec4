"""Every inbound webhook of the real app, fuzzed over HTTP: bodies almost right and wholly
wrong, in the right and wrong content types, signed as the provider signs them (so the
parsers behind the signature check are reached). Whatever arrives, the answer is never a
5xx, a 4xx says why, and a 4xx leaves the database as it was.

Fewer examples than test_fuzz_parsers.py (each is a request and three queries); a soak
runs many more (tests/fuzzing.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from router.settings import Settings
from router.store import Store, create_engine
from router.web.app import make_app

from .conftest import PUBLIC_URL, TWILIO_TOKEN, Clock
from .fuzzing import examples, json_bytes, junk_bytes, junk_text, raw_emails
from .hostile import (
    TWILIO,
    WEBHOOKS,
    Client,
    error_of,
    hostile_settings,
    mailgun_signed,
    post_signed,
    stored,
)
from .smtp_sink import SmtpSink
from .test_fuzz_parsers import CHAT, MAILGUN_FIELDS, POSTMARK, SENDGRID_FIELDS, TWILIO_FIELDS

FORM = "application/x-www-form-urlencoded"
BOUNDARY = b"fuzz-boundary"
MULTIPART = "multipart/form-data; boundary=" + BOUNDARY.decode()


@contextmanager
def running_app(settings: Settings) -> Iterator[tuple[asyncio.AbstractEventLoop, Client, Store]]:
    """The real app and a second connection to its database, on a loop of the test's own:
    Hypothesis drives the examples synchronously, each one run to completion on it."""

    async def started() -> Client:
        client: Client = TestClient(TestServer(make_app(settings, clock=Clock())))
        await client.start_server()
        return client

    loop = asyncio.new_event_loop()
    engine = create_engine(settings.database_url)
    client = loop.run_until_complete(started())
    try:
        yield loop, client, Store(engine)
    finally:
        loop.run_until_complete(client.close())
        loop.run_until_complete(engine.dispose())
        loop.close()


# -- bodies ---------------------------------------------------------------------------------------


def urlencoded(pairs: list[tuple[str, bytes]]) -> bytes:
    return b"&".join(
        quote_from_bytes(name.encode("utf-8", "surrogatepass")).encode()
        + b"="
        + quote_from_bytes(value).encode()
        for name, value in pairs
    )


def multipart(pairs: list[tuple[str, bytes, str | None]]) -> bytes:
    """A multipart/form-data body; a filename makes the field an upload."""
    out = b""
    for name, value, filename in pairs:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += b"--" + BOUNDARY + b"\r\nContent-Disposition: "
        out += disposition.encode("utf-8", "surrogatepass") + b"\r\n\r\n" + value + b"\r\n"
    return out + b"--" + BOUNDARY + b"--\r\n"


def field_values() -> st.SearchStrategy[bytes]:
    return st.one_of(
        junk_text(60).map(lambda t: t.encode("utf-8", "surrogatepass")),
        junk_bytes(100),
        raw_emails(),
        json_bytes(),
    )


CONTENT_TYPES = st.sampled_from(
    [FORM, FORM + "; charset=utf-8", FORM + "; charset=x-no-such", MULTIPART,
     "multipart/form-data", "application/json", "message/rfc822", "text/plain", ""]
)  # fmt: skip


@st.composite
def request_for(draw: st.DrawFn, webhook: str) -> tuple[bytes, str, dict[str, str]]:
    """(body, content type, form it signs) for *webhook*: mostly the provider's own kind of
    body, sometimes anything in any content type."""
    if draw(st.integers(0, 4)) == 0:
        return draw(junk_bytes(600)), draw(CONTENT_TYPES), {}
    if webhook in TWILIO:
        pairs = draw(st.lists(st.tuples(TWILIO_FIELDS, junk_text(40)), max_size=10))
        if draw(st.booleans()):
            pairs.append(("CallSid", "CA" + draw(st.text("0123456789abcdef", max_size=8))))
        encoded = [(name, value.encode("utf-8", "surrogatepass")) for name, value in pairs]
        return urlencoded(encoded), FORM, {"pairs": json.dumps(pairs)}
    if webhook in ("sendgrid", "mailgun"):
        names = SENDGRID_FIELDS if webhook == "sendgrid" else MAILGUN_FIELDS
        fields = draw(
            st.lists(
                st.tuples(names, field_values(), st.one_of(st.none(), junk_text(20))),
                max_size=8,
            )
        )
        if draw(st.booleans()):
            return multipart(fields), MULTIPART, {}
        return urlencoded([(name, value) for name, value, _ in fields]), FORM, {}
    if webhook == "postmark":
        return draw(json_bytes(POSTMARK)), "application/json", {}
    if webhook == "mime":
        return draw(raw_emails()), "message/rfc822", {}
    if webhook == "chat":
        return draw(json_bytes(CHAT)), "application/json", {}
    feedback = {
        "interaction_id": st.one_of(st.integers(-(2**70), 2**70), junk_text(10)),
        "outcome": st.sampled_from(["resolved", "escalated", "x", ""]),
        "rating": st.one_of(st.integers(-10, 10), st.floats()),
        "comment": junk_text(100),
    }
    return draw(json_bytes(st.fixed_dictionaries(feedback))), "application/json", {}


def twilio_signature(path: str, pairs_json: str) -> str:
    """Twilio's signature over the form as it will arrive (every value of a repeated name),
    or a bad one when the text cannot be signed (lone surrogates)."""
    pairs = [tuple(pair) for pair in json.loads(pairs_json)] if pairs_json else []
    try:
        validator = RequestValidator(TWILIO_TOKEN)
        return str(validator.compute_signature(PUBLIC_URL + path, MultiDict(pairs)))
    except UnicodeEncodeError:
        return "unsignable"


# -- the property ---------------------------------------------------------------------------


async def answered_sanely(
    app: Client, store: Store, webhook: str, body: bytes, content_type: str, signs: dict[str, str]
) -> None:
    before = await stored(store)
    headers: dict[str, str] = {}
    if webhook in TWILIO:
        signature = twilio_signature(WEBHOOKS[webhook], signs.get("pairs", ""))
        headers["X-Twilio-Signature"] = signature
    if webhook == "mailgun" and content_type == FORM:
        # Mailgun signs fields inside the body: put a valid signature in front of the junk
        signed = mailgun_signed(app, token=hashlib.sha256(body).hexdigest())
        body = urlencoded([(k, v.encode()) for k, v in signed.items()]) + b"&" + body
    response = await post_signed(app, webhook, body, content_type, headers=headers)
    assert response.status < 500, (response.status, await response.text())
    if response.status >= 400:
        assert await error_of(response), "a refusal says why"
        assert await stored(store) == before, "a refused request stored something"


@pytest.mark.parametrize("webhook", list(WEBHOOKS))
def test_no_webhook_answers_5xx_and_a_refusal_stores_nothing(
    tmp_path: Path, relay: SmtpSink, webhook: str
) -> None:
    with running_app(hostile_settings(tmp_path, relay)) as (loop, app, store):

        @given(request_for(webhook))
        @examples(12)
        def case(request: tuple[bytes, str, dict[str, str]]) -> None:
            loop.run_until_complete(answered_sanely(app, store, webhook, *request))

        case()
