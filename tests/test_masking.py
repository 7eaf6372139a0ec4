"""Card masking (router/core/masking.py): what is a card number, what is not, and the invariants."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core.masking import (
    MASKED_IDENTIFIER,
    identifier_without_cards,
    luhn_valid,
    mask_cards,
    mask_cards_in_html,
)


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
        ("card 4111 1111 1111 1111 exp 12/27", "card **** **** **** 1111 exp **/**"),
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


# -- separators and invisible characters -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "thin\u20094111\u20091111\u20091111\u20091111",
            "thin\u2009****\u2009****\u2009****\u20091111",
        ),
        ("narrow 4111\u202f1111\u202f1111\u202f1111", "narrow ****\u202f****\u202f****\u202f1111"),
        (
            "en dash 4111\u20131111\u20131111\u20131111",
            "en dash ****\u2013****\u2013****\u20131111",
        ),
        ("spaced 4111 - 1111 - 1111 - 1111", "spaced **** - **** - **** - 1111"),
        ("two spaces 4111  1111  1111  1111", "two spaces ****  ****  ****  1111"),
        ("tab 4111\t1111\t1111\t1111", "tab ****\t****\t****\t1111"),
        ("wrapped 4111 1111\r\n1111 1111 end", "wrapped **** ****\r\n**** 1111 end"),
        ("zwsp 4111\u200b1111\u200b1111\u200b1111", "zwsp ****\u200b****\u200b****\u200b1111"),
        ("shy 41\u00ad11 1111 1111 11\u00ad11", "shy **\u00ad** **** **** 11\u00ad11"),
        ("joiner 4111\u20601111\u200d1111\ufeff1111", "joiner ****\u2060****\u200d****\ufeff1111"),
        ("fullwidth \uff14" + "\uff11" * 15, "fullwidth " + "*" * 12 + "\uff11" * 4),
        # a chat widget or a plain-text part may send references or markup as they are
        ("chat 4111&nbsp;1111&nbsp;1111&nbsp;1111", "chat ****&nbsp;****&nbsp;****&nbsp;1111"),
        ("chat 4111 <b>1111</b> 1111 1111 &amp; x", "chat **** <b>****</b> **** 1111 &amp; x"),
    ],
)
def test_any_common_separator_or_invisible_character_between_the_digits_is_seen_through(
    text: str, masked: str
) -> None:
    assert mask_cards(text) == masked


# -- the expiry date and the security code after a card number -----------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("4111 1111 1111 1111 12/28 123", "**** **** **** 1111 **/** ***"),
        ("4111111111111111 12/28", "************1111 **/**"),
        ("4111 1111 1111 1111, exp 12/28, cvv 123", "**** **** **** 1111, exp **/**, cvv ***"),
        ("4111 1111 1111 1111 exp. 1/2028 CVC: 1234", "**** **** **** 1111 exp. */**** CVC: ****"),
        (
            "4111 1111 1111 1111 cvv2 123 valid thru 12 / 28",
            "**** **** **** 1111 cvv2 *** valid thru ** / **",
        ),
        (
            "karta 4111-1111-1111-1111 platnost 12.28 kód 123.",
            "karta ****-****-****-1111 platnost **.** kód ***.",
        ),
        ("4111 1111 1111 1111 (12/28) 123", "**** **** **** 1111 (**/**) ***"),
        ("4111 1111 1111 1111\n12/28\n123\nthanks", "**** **** **** 1111\n**/**\n***\nthanks"),
    ],
)
def test_an_expiry_date_and_security_code_right_after_a_card_are_masked(
    text: str, masked: str
) -> None:
    assert mask_cards(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "exp 12/28 cvv 123",  # no card number before them
        "dodáno 12/28, objednávka 123",
        "datum 12.10.2026 v 10:30",
        "splatnost 1/2028",
        "objednávka 2024001234 ze dne 12/10",
        "tel. +420 777 123 456, 12/28",
        "IBAN CZ65 0800 0000 1920 0014 5399 12/28 123",
        "+49 151 2345 6789 3 12/28",
    ],
)
def test_dates_and_short_numbers_without_a_card_before_them_stay(text: str) -> None:
    assert mask_cards(text) == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # the next card is not taken for a security code: both are masked whole
        ("4111 1111 1111 1111 5555 5555 5555 4444", "**** **** **** 1111 **** **** **** 4444"),
        # a date after a card that is more than an expiry is left
        ("4111 1111 1111 1111 12/28/2026", "**** **** **** 1111 12/28/2026"),
        ("4111 1111 1111 1111 at 10:30", "**** **** **** 1111 at 10:30"),
        ("4111 1111 1111 1111 order 12345", "**** **** **** 1111 order 12345"),
        ("4111 1111 1111 1111 1234567", "**** **** **** 1111 1234567"),
        ("4111 1111 1111 1111 13/28", "**** **** **** 1111 13/28"),
        ("4111 1111 1111 1111 123,50 Kč", "**** **** **** 1111 123,50 Kč"),
        ("4111 1111 1111 1111\n2026-01-01 10:30", "**** **** **** 1111\n2026-01-01 10:30"),
        ("4111 1111 1111 1111 12-28-2026", "**** **** **** 1111 12-28-2026"),
    ],
)
def test_only_an_expiry_date_or_code_after_a_card_is_masked(text: str, masked: str) -> None:
    assert mask_cards(text) == masked


# -- HTML ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "masked"),
    [
        ("4111&nbsp;1111&nbsp;1111&nbsp;1111", "****&nbsp;****&nbsp;****&nbsp;1111"),
        ("<p>4111&#160;1111&#xA0;1111&#32;1111</p>", "<p>****&#160;****&#xA0;****&#32;1111</p>"),
        (
            "4111&NonBreakingSpace;1111&ensp;1111&thinsp;1111",
            "****&NonBreakingSpace;****&ensp;****&thinsp;1111",
        ),
        ("4111&nbsp1111&nbsp1111&nbsp1111", "****&nbsp****&nbsp****&nbsp1111"),  # legacy, no ';'
        ("4111&ndash;1111&#8209;1111&#x2d;1111", "****&ndash;****&#8209;****&#x2d;1111"),
        (
            "4111 <b>1111</b> 1111 <span style='x'>1111</span>",
            "**** <b>****</b> **** <span style='x'>1111</span>",
        ),
        ("41<!-- x -->11 1111 1111 1111", "**<!-- x -->** **** **** 1111"),
        ("4111&shy;1111&zwj;1111&#x200B;1111", "****&shy;****&zwj;****&#x200B;1111"),
        ("&#52;&#x31;11111111111111", "************1111"),  # digits written as references
        ("4111 1111<br>1111 1111", "**** ****<br>**** 1111"),
        (
            "4111&nbsp;1111&nbsp;1111&nbsp;1111 exp&nbsp;12/28 <i>cvv</i> 123",
            "****&nbsp;****&nbsp;****&nbsp;1111 exp&nbsp;**/** <i>cvv</i> ***",
        ),
        ('<input value="4111111111111111">', '<input value="************1111">'),
        ("<td>4111111111111111</td><td>1234</td>", "<td>************1111</td><td>1234</td>"),
    ],
)
def test_card_numbers_in_html_are_masked_as_a_reader_sees_them(markup: str, masked: str) -> None:
    assert mask_cards_in_html(markup) == masked


@pytest.mark.parametrize(
    "markup",
    [
        "<td>4111</td><td>1111</td><td>1111</td><td>1111</td>",  # four cells, not one number
        "IBAN CZ<b>65 0800 0000 1920 0014 5399</b>",
        "<p>objednávka 2024001234</p><p>12/28</p>",
        "tel.&nbsp;+420&nbsp;777&nbsp;123&nbsp;456",
        "&amp;4111111111111111x",  # glued to a letter
        "<a href='tel:+49151234567893'>call</a>",
        "**** **** **** 1111",
    ],
)
def test_html_without_a_card_number_is_left_alone(markup: str) -> None:
    assert mask_cards_in_html(markup) == markup


def test_masked_html_reads_as_the_masked_text_of_the_original() -> None:
    from html.parser import HTMLParser

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.tags: list[str] = []

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)

    def read(markup: str) -> tuple[str, list[str]]:
        parser = Text()
        parser.feed(markup)
        parser.close()
        return "".join(parser.parts), parser.tags

    original = (
        "<html><body><p>Karta 4111&nbsp;1111&nbsp;<b>1111</b>&#160;1111, exp&nbsp;12/28</p>"
        "<table><tr><td>tel. 777 123 456</td><td>&copy; 2026</td></tr></table></body></html>"
    )
    text, tags = read(mask_cards_in_html(original))
    original_text, original_tags = read(original)
    assert tags == original_tags
    assert text == mask_cards(original_text)
    assert "4111" not in text and "**/**" in text


def test_html_masking_is_linear_even_for_tag_and_reference_soups() -> None:
    texts = ["1<b>" * 100_000, "1&nbsp;" * 100_000 + "x", "<a" * 200_000, "&#4" * 100_000]
    started = time.perf_counter()
    for text in texts:
        mask_cards_in_html(text)
    assert time.perf_counter() - started < 5


noisy_html = st.lists(
    st.sampled_from(
        [
            *("4", "1", "0", "5", " ", "-", "/", "x", "\u00ad", "*"),
            *("&nbsp;", "&#160;", "<b>", "</b>", "<p>", "&amp;", "&#x31;"),
        ]
    ),
    max_size=60,
).map("".join)


@given(noisy_html)
def test_html_masking_is_idempotent_and_only_turns_digits_into_stars(markup: str) -> None:
    once = mask_cards_in_html(markup)
    assert mask_cards_in_html(once) == once
    digit_or_star = re.compile(r"&#x31;|[0-9*]")
    assert digit_or_star.sub("#", once) == digit_or_star.sub("#", markup)


separators = st.sampled_from([" ", "-", "\u00a0", "\u2009", "\u2013", " - ", "\u200b", "\t"])


@given(cards, separators)
def test_every_luhn_valid_card_is_masked_with_any_separator(card: str, separator: str) -> None:
    groups = [card[i : i + 4] for i in range(0, len(card), 4)]
    if len(groups[-1]) < 3:
        groups[-2:] = [groups[-2] + groups[-1]]
    masked = mask_cards(f"Karta {separator.join(groups)} 12/28 123, díky.")
    assert "".join(re.findall(r"[0-9]", masked)) == card[-4:]
    html_masked = mask_cards_in_html(f"<p>Karta {'&nbsp;'.join(groups)}</p>")
    assert "".join(re.findall(r"[0-9]", html_masked)) == card[-4:]


def test_an_identifier_holding_a_card_becomes_its_keyed_hash_and_others_stay() -> None:
    card_id = "x-4111111111111111-x@example.cz"
    stored = identifier_without_cards(card_id, b"key")
    assert stored.startswith(MASKED_IDENTIFIER) and "4111" not in stored
    assert identifier_without_cards(card_id, b"key") == stored  # stable: redeliveries match
    assert identifier_without_cards(card_id, b"other") != stored  # keyed: no table of cards
    assert identifier_without_cards(stored, b"key") == stored  # a stored one stays as it is
    for plain in ("chat-1", "order-4111111111111112", "SM0123456789012345678901234567890a"):
        assert identifier_without_cards(plain, b"key") == plain
