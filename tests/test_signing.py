"""X-Switchboard-Signature on plain values."""

from __future__ import annotations

import pytest

from integrations.signing import sign, verify

NOW = 1_790_000_000


def test_a_signature_verifies_within_five_minutes() -> None:
    header = sign("secret", b'{"a": 1}', NOW)
    assert verify("secret", b'{"a": 1}', header, NOW + 299) is None
    assert verify("secret", b'{"a": 1}', header, NOW + 301) is not None
    assert verify("secret", b'{"a": 2}', header, NOW) is not None
    assert verify("other", b'{"a": 1}', header, NOW) is not None


@pytest.mark.parametrize(
    "header", ["", "t=abc,v1=00", f"t={NOW}", f"t={NOW},v1=é", f"t={NOW},v1=\udcff", "garbage"]
)
def test_malformed_headers_are_refused_not_crashed_on(header: str) -> None:
    assert verify("secret", b"body", header, NOW) is not None


def test_twilio_signatures_are_checked_as_twilio_signs_them() -> None:
    """One HMAC for the URL as called; Twilio's own variants (port added or removed) still
    pass through the library's full check; anything else, non-ASCII junk included, fails."""
    from twilio.request_validator import RequestValidator

    from integrations.twilio_voice import signature_valid

    token, url = "tok", "https://sb.example/webhooks/twilio/voice/route?x=1"
    form = {"CallSid": "CA1", "Digits": "1"}
    validator = RequestValidator(token)
    assert signature_valid(token, url, form, validator.compute_signature(url, form))
    with_port = "https://sb.example:443/webhooks/twilio/voice/route?x=1"
    assert signature_valid(token, url, form, validator.compute_signature(with_port, form))
    assert not signature_valid(
        token, url, form, RequestValidator("other").compute_signature(url, form)
    )
    assert not signature_valid(
        token, url, {**form, "Digits": "2"}, validator.compute_signature(url, form)
    )
    assert not signature_valid(token, url, form, "čšř")
    assert not signature_valid(token, url, form, "")
