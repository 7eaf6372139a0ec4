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
