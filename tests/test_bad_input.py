"""Issue #15's findings, one test each: a body or query that cannot be parsed is a 4xx with
a message and stores nothing, never a 500; each route has its own body limit (413); and a
Twilio form with a repeated parameter, signed as Twilio signs it, is accepted."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from integrations.signing import HEADER, sign
from router.settings import Settings
from router.store import Store

from .conftest import (
    PUBLIC_URL,
    TWILIO_TOKEN,
    Clock,
    app_time,
    invoke,
    post_twilio,
    twilio_signature,
)
from .hostile import (
    WEBHOOKS,
    Client,
    admin_token,
    error_of,
    hostile_settings,
    post_signed,
    stored,
)
from .smtp_sink import SmtpSink
from .test_chat import CHAT_SECRET, chat
from .test_email import mailgun_fields, message

DEEP = b"[" * 100_000
CALL = {"CallSid": "CA-junk-1", "From": "+420601234567", "To": "+420555000111"}


@pytest.fixture
def settings(tmp_path: Path, relay: SmtpSink) -> Settings:
    return hostile_settings(tmp_path, relay)


@pytest.fixture
async def app(settings: Settings, started_apps: Callable[[Settings], Any]) -> Client:
    client: Client = await started_apps(settings)
    return client


@pytest.fixture
async def watched(app: Client, store: Store) -> AsyncIterator[Store]:
    """The app's database; every test ends with nothing stored by a refused request."""
    before = await stored(store)
    yield store
    assert await stored(store) == before


async def refused(response: ClientResponse, status: int) -> str:
    assert response.status == status, await response.text()
    message = await error_of(response)
    assert message, "a refusal says why"
    return message


# -- bodies that cannot be parsed -------------------------------------------------------------


@pytest.mark.parametrize("webhook", ["voice", "voice-route", "voice-status", "messaging"])
async def test_a_twilio_form_that_is_not_utf8_is_a_400(
    app: Client, watched: Store, webhook: str
) -> None:
    response = await post_signed(
        app, webhook, b"CallSid=CA1&From=%FF%FE&Body=\xff", "application/x-www-form-urlencoded"
    )
    assert "not UTF-8" in await refused(response, 400)


@pytest.mark.parametrize("webhook", ["voice", "messaging"])
async def test_a_twilio_post_that_is_not_a_form_is_a_415(
    app: Client, watched: Store, webhook: str
) -> None:
    broken = b"--b\r\nContent-Disposition: form-data; name=CallSid\r\n\r\nCA1"  # no end
    response = await post_signed(app, webhook, broken, "multipart/form-data; boundary=b")
    assert "expected a form" in await refused(response, 415)


async def test_a_twilio_form_in_an_unknown_charset_is_a_415(app: Client, watched: Store) -> None:
    response = await post_signed(
        app, "voice", b"CallSid=CA1", "application/x-www-form-urlencoded; charset=x-no-such"
    )
    assert "UTF-8" in await refused(response, 415)


async def test_a_broken_multipart_to_sendgrid_with_a_valid_key_is_a_400(
    app: Client, watched: Store
) -> None:
    broken = b"--b\r\nContent-Disposition: form-data; name=from\r\n\r\nx@example.cz\r\n--c--"
    response = await post_signed(app, "sendgrid", broken, "multipart/form-data; boundary=b")
    assert "cannot be read" in await refused(response, 400)


async def test_a_multipart_without_a_boundary_to_sendgrid_is_a_400(
    app: Client, watched: Store
) -> None:
    response = await post_signed(app, "sendgrid", b"from=x", "multipart/form-data")
    await refused(response, 400)


@pytest.mark.parametrize(
    ("webhook", "status"), [("chat", 400), ("postmark", 400), ("partner", 400)]
)
async def test_json_nested_100000_deep_is_refused_as_not_json(
    app: Client, watched: Store, webhook: str, status: int
) -> None:
    response = await post_signed(app, webhook, DEEP, "application/json")
    assert "nested" in await refused(response, status)


@pytest.mark.parametrize("webhook", ["chat", "partner"])
async def test_json_that_is_not_utf8_is_a_400(app: Client, watched: Store, webhook: str) -> None:
    response = await post_signed(app, webhook, b'{"text": "\xff"}', "application/json")
    assert "UTF-8" in await refused(response, 400)


async def test_the_api_refuses_deep_json_with_422(
    app: Client, watched: Store, clock: Clock
) -> None:
    token = await admin_token(watched, clock())
    response = await app.post(
        "/api/rollback", data=DEEP, headers={"Authorization": f"Bearer {token}"}
    )
    assert "nested" in await refused(response, 422)


async def test_a_corrupt_gzip_body_is_a_400(app: Client, watched: Store) -> None:
    body = gzip.compress(message())[:10] + b"this is no deflate stream"
    response = await post_signed(
        app, "mime", body, "message/rfc822", headers={"Content-Encoding": "gzip"}
    )
    assert "cannot be read" in await refused(response, 400)


# -- numbers out of range ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "limit=99999999999999999999",
        "limit=9223372036854775808",
        "since=99999999d",
        "since=0001-01-01T00:00:00%2B01:00",
    ],
)
async def test_an_out_of_range_interactions_filter_is_a_422(
    app: Client, watched: Store, clock: Clock, query: str
) -> None:
    token = await admin_token(watched, clock())
    response = await app.get(
        f"/api/interactions?{query}", headers={"Authorization": f"Bearer {token}"}
    )
    await refused(response, 422)


async def test_the_largest_limit_is_no_cap(app: Client, watched: Store, clock: Clock) -> None:
    token = await admin_token(watched, clock())
    response = await app.get(
        "/api/interactions?limit=9223372036854775807", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/routing?version=99999999999999999999",
        "/api/routing/history?limit=99999999999999999999",
        "/api/routing/diff?from=1&to=99999999999999999999",
        "/api/status?conversations=99999999999999999999",
        "/api/report?since=99999999d",
    ],
)
async def test_out_of_range_numbers_in_other_queries_are_422(
    app: Client, watched: Store, clock: Clock, path: str
) -> None:
    token = await admin_token(watched, clock())
    response = await app.get(path, headers={"Authorization": f"Bearer {token}"})
    await refused(response, 422)


async def test_a_rollback_for_longer_than_a_century_is_a_422(
    app: Client, watched: Store, clock: Clock
) -> None:
    token = await admin_token(watched, clock())
    response = await app.post(
        "/api/rollback",
        json={"reason": "junk", "for": "99999999d"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert "longer than 36500d" in await refused(response, 422)


async def test_a_revert_to_a_version_beyond_the_database_integer_is_a_422(
    app: Client, watched: Store, clock: Clock
) -> None:
    token = await admin_token(watched, clock())
    response = await app.post(
        "/api/routing/revert",
        json={"version": 10**20, "reason": "junk"},
        headers={"Authorization": f"Bearer {token}"},
    )
    await refused(response, 422)


@pytest.mark.parametrize("duration", ["²", "99999999999999999999999", "1" * 5000])
async def test_a_call_duration_twilio_never_sends_is_a_400(
    app: Client, watched: Store, duration: str
) -> None:
    form = {**CALL, "CallStatus": "completed", "CallDuration": duration}
    response = await post_twilio(app, "/webhooks/twilio/voice/status", form)
    assert "CallDuration" in await refused(response, 400)


@pytest.mark.parametrize("stamp", ["9" * 400, "1" * 5000, "²"])
async def test_a_signature_timestamp_no_clock_shows_is_refused_as_a_bad_signature(
    app: Client, watched: Store, stamp: str
) -> None:
    body = json.dumps(chat("Kde je moje objednávka?")).encode()
    headers = {"Content-Type": "application/json", HEADER: f"t={stamp},v1=00"}
    response = await app.post("/webhooks/chat", data=body, headers=headers)
    assert "t=" in await refused(response, 403)


@pytest.mark.parametrize("stamp", ["9" * 400, "²"])
async def test_a_mailgun_timestamp_no_clock_shows_is_refused(
    app: Client, watched: Store, stamp: str
) -> None:
    # signed over the bad timestamp: the signature is right, the time is not
    fields = mailgun_fields(stamp, "tok-junk")  # type: ignore[arg-type]
    response = await app.post(
        "/webhooks/email/mailgun", data={**fields, "body-mime": message().decode()}
    )
    assert "timestamp" in await refused(response, 403)


async def test_a_twilio_post_with_a_made_up_host_port_is_refused_not_failed(
    tmp_path: Path, relay: SmtpSink, started_apps: Callable[[Settings], Any]
) -> None:
    """Without SWITCHBOARD_PUBLIC_URL the signed URL is the request's own; a Host header
    whose port is not a number made twilio's validator raise on a bad signature."""
    client: Client = await started_apps(hostile_settings(tmp_path, relay, public_url=None))
    response = await client.post(
        WEBHOOKS["voice"],
        data=CALL,
        headers={"Host": "switchboard.example:notaport", "X-Twilio-Signature": "bad"},
    )
    await refused(response, 403)


# -- Twilio signs every value of a repeated parameter -----------------------------------------


async def test_a_form_with_a_repeated_parameter_signed_as_twilio_signs_it_is_accepted(
    app: Client, watched: Store
) -> None:
    """RequestValidator sorts the names and appends every value of a repeated one; the
    form must be verified with all of them, not one per name."""
    path = WEBHOOKS["voice"]
    pairs = [*CALL.items(), ("StirVerstat", "TN-Validation-Passed-A"), ("StirVerstat", "B")]
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(
        PUBLIC_URL + path, MultiDict(pairs)
    )
    response = await app.post(path, data=pairs, headers={"X-Twilio-Signature": signature})
    assert response.status == 200, await response.text()
    assert "<Gather" in await response.text()


async def test_a_repeated_parameter_still_has_to_be_signed(app: Client, watched: Store) -> None:
    path = WEBHOOKS["voice"]
    pairs = [*CALL.items(), ("StirVerstat", "A"), ("StirVerstat", "B")]
    signature = twilio_signature(PUBLIC_URL + path, dict(pairs))  # one value: not Twilio's
    response = await app.post(path, data=pairs, headers={"X-Twilio-Signature": signature})
    await refused(response, 403)


# -- per-route body limits --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("webhook", "size"),
    [("voice", 65_537), ("messaging", 65_537), ("chat", 262_145), ("partner", 262_145)],
)
async def test_a_body_over_its_routes_limit_is_a_413_before_it_is_read(
    app: Client, watched: Store, webhook: str, size: int
) -> None:
    body = b"x" * size
    response = await post_signed(app, webhook, body, "application/x-www-form-urlencoded")
    assert "larger than" in await refused(response, 413)


async def test_a_chunked_body_over_the_limit_is_a_413_once_it_passes_it(
    app: Client, watched: Store
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):  # 20 x 16 KiB = 320 KiB, no Content-Length
            yield b" " * 16_384

    body = json.dumps(chat("Kde je moje objednávka?")).encode()
    headers = {"Content-Type": "application/json", HEADER: sign(CHAT_SECRET, body, app_time(app))}
    response = await app.post("/webhooks/chat", data=chunks(), headers=headers)
    assert "larger than 262144 bytes" in await refused(response, 413)


async def test_an_email_may_be_far_larger_than_a_chat_message(app: Client, store: Store) -> None:
    raw = message(attachment=b"%PDF" + b"0" * 2_000_000, message_id="<big-1@example.cz>")
    response = await post_signed(app, "mime", raw, "message/rfc822")
    assert response.status == 200, await response.text()
    assert (await stored(store)).interactions == 1


async def test_a_routing_document_may_be_larger_than_other_api_bodies(
    app: Client, store: Store, clock: Clock
) -> None:
    token = await admin_token(store, clock())
    auth = {"Authorization": f"Bearer {token}"}
    current = await app.get("/api/routing", headers=auth)
    document = await current.json()
    prompt = "Dobrý den. " * 30_000  # about 330 kB: over the 256 KiB of other API bodies
    document["ivr"]["prompts"]["cs-CZ"] = prompt
    response = await app.put(
        "/api/routing", json=document, headers={**auth, "If-Match": current.headers["ETag"]}
    )
    assert response.status == 200, await response.text()
    too_big = await app.post("/api/classify", json={"text": prompt[:100_000] * 3}, headers=auth)
    assert (await error_of(too_big)).startswith("the body is larger than")


@pytest.mark.parametrize(
    "command", [["interactions"], ["config", "history"]], ids=["interactions", "history"]
)
def test_the_clis_limit_has_no_cap_even_beyond_the_database_integer(
    env: dict[str, str], command: list[str]
) -> None:
    """SPEC §5: ``--limit`` has no upper cap; one the driver cannot bind was a traceback."""
    result = invoke(env, *command, "--limit", "9" * 20, "--format", "json")
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.output), list)


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/webhooks/twilio/voice/recorded?destination=hotline", {"CallSid": "CA1\r\nBcc: x@y"}),
        ("/webhooks/twilio/voice/recorded?destination=hot%0D%0Aline", {"CallSid": "CA1"}),
        (
            "/webhooks/twilio/voice/dial-status?attempt=1&destination=hot%0Aline",
            {"CallSid": "CA1", "DialCallStatus": "busy"},
        ),
    ],
    ids=["line break in CallSid", "in destination", "in dial-status destination"],
)
async def test_a_line_break_where_a_voicemail_email_header_would_get_it_is_a_400(
    app: Client, watched: Store, path: str, fields: dict[str, str]
) -> None:
    """Found by the HTTP fuzzer: the voicemail email's headers carry the CallSid and the
    destination, and a line break in a header value made EmailMessage raise (a 500)."""
    response = await post_twilio(app, path, {"From": "+420601234567", **fields})
    await refused(response, 400)


async def test_feedback_on_an_interaction_beyond_the_database_integer_is_a_400(
    app: Client, watched: Store
) -> None:
    """Found by the HTTP fuzzer: the id reached the store, which cannot bind it."""
    body = json.dumps({"interaction_id": 10**20, "outcome": "resolved"}).encode()
    response = await post_signed(app, "partner", body, "application/json")
    assert "at most" in await refused(response, 400)


async def test_an_email_whose_message_id_has_8bit_bytes_is_stored(
    app: Client, store: Store
) -> None:
    """Found by the HTTP fuzzer: the parser kept the bytes as surrogates, which the
    database's UTF-8 refused (a 500); the id is now decoded like any 8-bit header."""
    raw = b"From: jana@example.cz\r\nMessage-ID: <\xff\xfe-1@example.cz>\r\n\r\nKde je objednavka?"
    response = await post_signed(app, "mime", raw, "message/rfc822")
    assert response.status == 200, await response.text()
    assert (await stored(store)).interactions == 1
