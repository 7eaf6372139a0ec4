"""Each email provider's credential check on plain values: ``verify_*`` in
integrations/email_inbound.py gives None for a request that may post, else why not."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from integrations.email_inbound import (
    Form,
    MailgunSignature,
    mailgun_signature,
    verify_mailgun,
    verify_mime,
    verify_postmark,
    verify_sendgrid,
)
from integrations.signing import sign

SECRET = "email-webhook-secret"
KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
NOW = 1_790_000_000


def mailgun(timestamp: int, token: str = "a" * 50, key: str = KEY) -> MailgunSignature:
    digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return MailgunSignature(str(timestamp), token, digest)


@pytest.mark.parametrize(
    ("key", "password"),
    [(SECRET, None), (None, SECRET), (SECRET, "wrong"), ("wrong", SECRET)],
)
def test_sendgrid_may_post_with_the_secret_as_key_or_password(
    key: str | None, password: str | None
) -> None:
    assert verify_sendgrid(SECRET, key=key, password=password) is None


@pytest.mark.parametrize(
    ("key", "password"), [(None, None), ("wrong", None), (None, "wrong"), ("", ""), ("ž", None)]
)
def test_sendgrid_without_the_secret_is_refused(key: str | None, password: str | None) -> None:
    assert verify_sendgrid(SECRET, key=key, password=password) == "bad or missing key"


def test_postmark_needs_the_secret_as_its_basic_auth_password() -> None:
    assert verify_postmark(SECRET, password=SECRET) is None
    for password in (None, "", "wrong", SECRET + " "):
        assert verify_postmark(SECRET, password=password) is not None


def test_mime_is_signed_like_every_switchboard_webhook() -> None:
    raw = b"From: jana@example.cz\r\n\r\nhello"
    assert verify_mime(SECRET, raw, sign(SECRET, raw, NOW), NOW + 300) is None
    assert verify_mime(SECRET, raw, sign(SECRET, raw, NOW), NOW + 301) is not None
    assert verify_mime(SECRET, raw + b"!", sign(SECRET, raw, NOW), NOW) is not None
    assert verify_mime(SECRET, raw, "", NOW) == "signature missing"


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_mailgun_within_five_minutes_of_now_may_post(offset: int) -> None:
    assert verify_mailgun(KEY, mailgun(NOW + offset), NOW) is None


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_mailgun_more_than_five_minutes_off_is_refused(offset: int) -> None:
    assert verify_mailgun(KEY, mailgun(NOW + offset), NOW) == "timestamp more than 5 minutes off"


def test_a_forged_mailgun_signature_is_refused_before_its_time_is_read() -> None:
    assert verify_mailgun(KEY, mailgun(NOW, key="other"), NOW) == "bad signature"
    assert verify_mailgun(KEY, mailgun(NOW - 3600, key="other"), NOW) == "bad signature"
    assert verify_mailgun(KEY, MailgunSignature("", "", ""), NOW) == "bad signature"


def test_a_mailgun_timestamp_that_is_no_number_is_refused() -> None:
    signed = mailgun(NOW)
    odd = "+" + signed.timestamp  # a digest over it can be made; it is no plain unix time
    digest = hmac.new(KEY.encode(), (odd + signed.token).encode(), hashlib.sha256).hexdigest()
    assert verify_mailgun(KEY, MailgunSignature(odd, signed.token, digest), NOW) is not None


def test_the_signed_fields_are_read_from_a_mailgun_form() -> None:
    form: Form = {"timestamp": "1790000000", "token": b"tok", "signature": "abc", "from": "x"}
    assert mailgun_signature(form) == MailgunSignature("1790000000", "tok", "abc")
    assert mailgun_signature({}) == MailgunSignature("", "", "")
