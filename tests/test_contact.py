"""The customer key of a phone number: what makes one customer sticky across calls and SMS."""

from __future__ import annotations

import pytest

from router.core.contact import phone_customer_key


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("+420601234567", "+420601234567"),
        (" +420 601 234 567 ", "+420601234567"),  # spacing is not identity
        ("sip:Agent@PBX.example", "sip:agent@pbx.example"),
        ("", ""),  # withheld
        ("anonymous", ""),
        ("+0601234567", ""),  # E.164 has no leading zero country code
        ("601234567", ""),  # national format: not a stable identity
        ("+1234567", ""),  # too short for E.164
        ("+1234567890123456", ""),  # too long for E.164
    ],
)
def test_a_phone_number_becomes_its_e164_form_or_nothing(number: str, key: str) -> None:
    assert phone_customer_key(number) == key
