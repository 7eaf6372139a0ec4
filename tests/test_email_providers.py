"""Each provider's recorded payload (tests/payloads/) posted over HTTP to the real app, the
forward read back from a real SMTP server: the original message, plus our headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from integrations import email_inbound as inbound
from integrations.signing import sign

from .conftest import app_time
from .smtp_sink import SmtpSink
from .test_email import HOTLINE, MAILGUN_KEY, PARTNER, SECRET, email_settings

PAYLOADS = Path(__file__).parent / "payloads"
EML = sorted(path.name for path in PAYLOADS.glob("*.eml"))


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    return data


def multipart(name: str, **overrides: str) -> tuple[aiohttp.MultipartWriter, dict[str, Any]]:
    """The recorded form as a real multipart/form-data body; text fields that are not UTF-8
    go as the providers send them, in their own charset."""
    data = recorded(name)
    writer = aiohttp.MultipartWriter("form-data")
    parsed: dict[str, Any] = {}

    def add(key: str, body: bytes, content_type: str, filename: str | None = None) -> None:
        part = writer.append(body, {"Content-Type": content_type})
        if filename is None:
            part.set_content_disposition("form-data", name=key)
        else:
            part.set_content_disposition("form-data", name=key, filename=filename)

    for key, value in {**data["fields"], **overrides}.items():
        add(key, value.encode("utf-8"), "text/plain; charset=utf-8")
        parsed[key] = value
    for key, value in data.get("fields_base64", {}).items():
        raw = base64.b64decode(value)
        add(key, raw, "text/plain")
        parsed[key] = raw
    for key, upload in data.get("files", {}).items():
        content = base64.b64decode(upload["base64"])
        add(key, content, upload["content_type"], upload["filename"])
        parsed[key] = inbound.FormFile(upload["filename"], upload["content_type"], content)
    return writer, parsed


def mailgun_signature(now: int) -> dict[str, str]:
    timestamp, token = (
        str(now),
        hashlib.sha256(str(time.time_ns()).encode()).hexdigest(),
    )
    digest = hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256)
    return {"timestamp": timestamp, "token": token, "signature": digest.hexdigest()}


def without_our_headers(data: bytes) -> bytes:
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    return b"\n".join(line for line in lines if not line.startswith(b"X-Switchboard-"))


def headers_of(raw: bytes) -> list[tuple[str, str]]:
    """Every header but ours, in order; a rebuilt message's boundary is its own choice."""
    message: Message = message_from_bytes(raw)
    return [
        (key, value.split("boundary=")[0] if key == "Content-Type" else value)
        for key, value in ((k, str(v)) for k, v in message.items())
        if not key.startswith("X-Switchboard-")
    ]


@pytest.mark.parametrize("name", EML)
async def test_real_world_mime_is_forwarded_byte_for_byte(
    email_app: Callable[..., Any],
    tmp_path: Path,
    smtp: SmtpSink,
    name: str,
) -> None:
    client = await email_app(email_settings(tmp_path, smtp))
    raw = (PAYLOADS / name).read_bytes()
    response = await client.post(
        "/webhooks/email/mime",
        data=raw,
        headers={"X-Switchboard-Signature": sign(SECRET, raw, app_time(client))},
    )
    assert response.status == 200, await response.text()
    answer = await response.json()
    [received] = await smtp.wait_for(1)
    # SMTP normalises line endings and the final newline; every other byte is the original
    assert without_our_headers(received.data).rstrip(b"\n") == raw.replace(b"\r\n", b"\n").rstrip(
        b"\n"
    )
    forwarded = message_from_bytes(received.data)
    assert forwarded["X-Switchboard-Interaction"] == str(answer["interaction_id"])
    assert forwarded["X-Switchboard-Destination"] == answer["destination"]


@pytest.mark.parametrize(
    ("provider", "name"),
    [
        ("sendgrid", "sendgrid_parsed.json"),
        ("sendgrid", "sendgrid_raw.json"),
        ("mailgun", "mailgun_forward.json"),
        ("mailgun", "mailgun_mime.json"),
    ],
)
async def test_form_providers_are_forwarded_as_the_original_message(
    email_app: Callable[..., Any],
    tmp_path: Path,
    smtp: SmtpSink,
    provider: str,
    name: str,
) -> None:
    client = await email_app(email_settings(tmp_path, smtp))
    overrides = mailgun_signature(app_time(client)) if provider == "mailgun" else {}
    form, fields = multipart(name, **overrides)
    expected = (
        inbound.parse_sendgrid(fields) if provider == "sendgrid" else inbound.parse_mailgun(fields)
    )
    url = f"/webhooks/email/{provider}" + (f"?key={SECRET}" if provider == "sendgrid" else "")
    response = await client.post(url, data=form)
    assert response.status == 200, await response.text()
    [received] = await smtp.wait_for(1)
    assert headers_of(received.data) == headers_of(expected.raw)
    forwarded = message_from_bytes(received.data)
    assert forwarded["X-Switchboard-Category"] == (await response.json())["category"]
    original_parts = [p.get_payload(decode=True) for p in message_from_bytes(expected.raw).walk()]
    assert [p.get_payload(decode=True) for p in forwarded.walk()] == original_parts


async def test_postmark_json_is_forwarded_as_the_original_message(
    email_app: Callable[..., Any],
    tmp_path: Path,
    smtp: SmtpSink,
) -> None:
    client = await email_app(email_settings(tmp_path, smtp))
    payload = recorded("postmark.json")
    expected = inbound.parse_postmark(payload)
    basic = base64.b64encode(f"postmark:{SECRET}".encode()).decode()
    response = await client.post(
        "/webhooks/email/postmark", json=payload, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status == 200, await response.text()
    [received] = await smtp.wait_for(1)
    assert headers_of(received.data) == headers_of(expected.raw)
    assert (
        message_from_bytes(received.data)["Message-ID"]
        == message_from_bytes(expected.raw)["Message-ID"]
    )


# -- a customer's CR/LF cannot add a header to the forward -------------------------------------

INJECTED = "\r\nBcc: thief@evil.example\r\nX-Injected: yes\n"
#: plain ASCII (kept as it is, no encoded word to hide the break in) and with a card (the
#: Subject is rewritten masked toward the partner)
SUBJECTS = [f"Where is my order{INJECTED}", f"Platba kartou 4111 1111 1111 1111 neprošla{INJECTED}"]
NAMES = [f"Jana{INJECTED}Novak", f"Jana{INJECTED}Nováková"]


def _injection_posts(client: Any, n: int) -> list[tuple[str, dict[str, Any]]]:
    """The *n*th hostile subject and display name through every provider's own fields."""
    mailgun = mailgun_signature(app_time(client))
    SUBJECT, NAME = SUBJECTS[n], NAMES[n]
    encoded_crlf = "=?utf-8?q?Platba_4111_1111_1111_1111=0D=0ABcc:_thief@evil.example?="
    raw = (
        f"From: Jana <jana@example.cz>\r\nTo: podpora@eshop.example\r\n"
        f"Subject: {encoded_crlf}\r\nMessage-ID: <inject-mime-{n}@example.cz>\r\n\r\n"
        "Kde je moje objednávka? Platba neprošla.\r\n"
    ).encode()
    basic = base64.b64encode(f"postmark:{SECRET}".encode()).decode()
    return [
        (
            f"/webhooks/email/sendgrid?key={SECRET}",
            {"data": {"from": f"{NAME} <jana@example.cz>", "subject": SUBJECT, "text": "x"}},
        ),
        (
            "/webhooks/email/mailgun",
            {"data": {**mailgun, "from": f"{NAME} <jana@example.cz>", "subject": SUBJECT}},
        ),
        (
            "/webhooks/email/postmark",
            {
                "json": {
                    "From": "jana@example.cz",
                    "FromName": NAME,
                    "Subject": SUBJECT,
                    "TextBody": "Kde je moje objednávka?",
                    "MessageID": f"inject-postmark-{n}",
                },
                "headers": {"Authorization": f"Basic {basic}"},
            },
        ),
        (
            "/webhooks/email/mime",
            {
                "data": raw,
                "headers": {"X-Switchboard-Signature": sign(SECRET, raw, app_time(client))},
            },
        ),
    ]


@pytest.mark.parametrize("destination", ["hotline", "partner"])
async def test_cr_lf_in_a_subject_or_display_name_adds_no_header_to_the_forward(
    email_app: Callable[..., Any], tmp_path: Path, smtp: SmtpSink, destination: str
) -> None:
    """Sent through each provider's webhook to the hotline (the message as it came) and to
    the partner (the Subject rewritten with its card masked), and read from what the SMTP
    server received."""
    share = 100 if destination == "partner" else 0
    client = await email_app(
        email_settings(tmp_path, smtp), cutover={"email": {"admin": share, "unknown": share}}
    )
    posts = [post for n in range(len(SUBJECTS)) for post in _injection_posts(client, n)]
    for url, request in posts:
        response = await client.post(url, **request)
        assert response.status == 200, (url, await response.text())
        assert (await response.json())["destination"] == destination
    received = await smtp.wait_for(len(posts))
    for forward in received:
        assert forward.rcpt_tos == [HOTLINE if destination == "hotline" else PARTNER]
        head = forward.data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        fields = [line.split(b":", 1)[0].strip().lower() for line in head.splitlines()]
        assert b"bcc" not in fields and b"x-injected" not in fields, head
        subjects = forward.message.get_all("Subject")
        assert subjects is not None and len(subjects) == 1
        assert destination == "hotline" or "4111 1111 1111" not in str(subjects[0])
