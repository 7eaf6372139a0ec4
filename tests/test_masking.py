"""Card masking (router/core/masking.py): what is a card number, what is not, and the invariants."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core.masking import luhn_valid, mask_cards


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("4111 1111 1111 1111", "**** **** **** 1111"),
        ("4111-1111-1111-1111", "****-****-****-1111"),
        ("4111111111111111", "************1111"),
        ("Karta: 4111 1111 1111 1111.", "Karta: **** **** **** 1111."),
        ("(5555 5555 5555 4444)", "(**** **** **** 4444)"),
        ("Amex 378282246310005, díky", "Amex ***********0005, díky"),
        ("Amex 3782 822463 10005", "Amex **** ****** *0005"),
        ("13 digits 4222222222222", "13 digits *********2222"),
        ("19 digits 6011000990139421237", "19 digits ***************1237"),
        ("Mir 2200 0000 0000 0004", "Mir **** **** **** 0004"),
        (
            "no-break 4111\u00a01111\u00a01111\u00a01111",
            "no-break ****\u00a0****\u00a0****\u00a01111",
        ),
        ("оплатил картой 5555555555554444!", "оплатил картой ************4444!"),
        (
            "two: 4111111111111111 and 5555-5555-5555-4444",
            "two: ************1111 and ****-****-****-4444",
        ),
        ("card 4111 1111 1111 1111 exp 12/27", "card **** **** **** 1111 exp 12/27"),
        ("order 2024 4111 1111 1111 1111", "order 2024 **** **** **** 1111"),
        ("4111 1111 1111 1111 12", "**** **** **** 1111 12"),
        ("line\n4111111111111111\nnext", "line\n************1111\nnext"),
    ],
)
def test_luhn_valid_card_numbers_are_masked_to_their_last_four_digits(
    text: str, masked: str
) -> None:
    assert mask_cards(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn-invalid
        "objednávka 2024001234",  # order number, too short
        "objednávka 12345678901234567890",  # too long, no whole-group card inside
        "tel. +420 777 123 456",
        "+49151234567893",  # Luhn-valid digits, but a '+' phone number
        "+49 151 2345 6789 3",
        "00420777123456",  # Luhn-valid, but no card starts with 0 (00-prefixed phone)
        "zásilka 0123456789015",  # Luhn-valid parcel number starting with 0
        "IBAN CZ65 0800 0000 1920 0014 5399",
        "IBAN CZ6508000000192000145399",
        "XX00 4111 1111 1111 1111",  # a card-like run glued to letters is part of a code
        "účet 123456-2000145399/0800",
        "částka 1234567890128,50 Kč",
        "ref 1234567890128.5",
        "kód ABC4111111111111111",
        "4111111111111111XYZ",
        "mail 4111111111111111@example.cz",
        "411111111117",  # Luhn-valid, 12 digits
        "41111111111111111115",  # Luhn-valid, 20 digits
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",  # single digits are not card groups
        "**** **** **** 1111",
    ],
)
def test_other_long_numbers_are_left_alone(text: str) -> None:
    assert mask_cards(text) == text


def test_the_luhn_check() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")


def test_masking_is_linear_even_for_long_digit_soups() -> None:
    texts = ["1 " * 200_000 + "x", "1-" * 200_000 + "1a", "9" * 400_000, "12 " * 100_000]
    started = time.perf_counter()
    for text in texts:
        mask_cards(text)
    assert time.perf_counter() - started < 5


# -- properties -----------------------------------------------------------------------------

noisy_text = st.text(alphabet=st.sampled_from("0123456789 -\u00a0.,+/*abcXYZ\nč"), max_size=120)


def _complete(prefix: str) -> str:
    return next(prefix + d for d in "0123456789" if luhn_valid(prefix + d))


cards = st.builds(
    _complete,
    st.builds(
        lambda first, rest: first + rest,
        st.sampled_from("123456789"),
        st.integers(min_value=11, max_value=17).flatmap(
            lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
        ),
    ),
)


@given(noisy_text)
def test_masking_is_idempotent(text: str) -> None:
    once = mask_cards(text)
    assert mask_cards(once) == once


@given(noisy_text)
def test_masking_only_turns_digits_into_stars(text: str) -> None:
    masked = mask_cards(text)
    assert len(masked) == len(text)
    assert all(a == b or (b == "*" and a.isdigit()) for a, b in zip(text, masked, strict=True))


@given(st.text(max_size=200))
def test_text_without_a_long_digit_run_never_changes(text: str) -> None:
    if sum("0" <= char <= "9" for char in text) < 13:
        assert mask_cards(text) == text


@given(cards, st.sampled_from(["", " ", "-"]))
def test_every_luhn_valid_card_is_masked(card: str, separator: str) -> None:
    groups = [card[i : i + 4] for i in range(0, len(card), 4)]
    if separator and len(groups[-1]) < 3:
        groups[-2:] = [groups[-2] + groups[-1]]
    written = separator.join(groups)
    masked = mask_cards(f"Platba kartou {written}, prosím o kontrolu.")
    assert masked.endswith(", prosím o kontrolu.")
    assert "".join(re.findall(r"[0-9]", masked)) == card[-4:]
