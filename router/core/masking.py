"""Payment-card masking (SPEC §6): everything that decides what a card number is in free
text or HTML, and how it is hidden, lives here. Pure and fast; imports nothing from the
project.

What counts as a card number
    13 to 19 decimal digits that pass the Luhn check, written either as one run
    ("4111111111111111") or in groups of at least three digits, the groups separated by one
    to three separator characters: spaces of any width (no-break, thin, figure, ideographic
    …), tabs, line breaks (a wrapped line) and dashes of any kind ("4111 1111 1111 1111",
    "3782-822463-10005", "4111 – 1111 – 1111 – 1111"). Invisible characters (soft hyphen,
    zero-width space and joiners, bidi marks, word joiner, BOM) are ignored wherever they
    stand, so "4111\\u200b1111…" is a card too. In HTML (:func:`mask_cards_in_html`) the same
    rules apply to the text a reader sees: character references are decoded (``&nbsp;``,
    ``&#160;``, ``&#xA0;``, ``&#32;``, ``&shy;``, even digits written as ``&#52;``),
    inline tags between groups are ignored (``4111 <b>1111</b> 1111 1111``) and block tags
    end a number (a table cell is not glued to the next one).

What follows a card number
    An expiry date and a card security code right after a card number are masked too: up
    to two items, at most one of each, each after one to four separators or punctuation
    (``,;:()|``) and an optional label (exp, expiry, valid thru, platnost, cvv, cvc, cid,
    security code, kód, …). An expiry is a month 1–12, ``/``, ``.`` or ``-``, and a year
    of two or four digits ("12/28", "1/2028", "exp 12/28"); a code is three or four digits
    that do not start a longer number. "4111 1111 1111 1111 12/28 123" becomes
    "**** **** **** 1111 **/** ***". Nothing else is touched: a date, a three-digit number
    or "cvv 123" with no card number before it stays as it is.

What does not count
    * a run glued at its start to a letter, ``_``, ``@``, ``/``, ``+`` or a decimal point:
      IBANs ("CZ65 0800 0000 1920 0014 5399"), parcel codes, ``+`` phone numbers ("+49
      1512 3456 7890");
    * a group glued at its end to a letter, ``_``, ``@``, ``/`` or a decimal point: it is
      part of what it is glued to, an account number ("123456-2000145399/0800"), an
      amount ("1234567890123,50"), a date; the groups before it are read on their own
      ("4111 1111 1111 1111 12/28" is a card and an expiry date);
    * a number starting with 0: no issuer uses major industry identifier 0 (ISO/IEC 7812),
      while ``00``-prefixed phone numbers and zero-padded order or parcel numbers do;
    * a digit group split in the middle: a 20-digit order number has no card inside it;
    * anything failing the Luhn check.

How it is masked
    Every digit but the last four becomes ``*``; separators stay: "4111 1111 1111 1111"
    becomes "**** **** **** 1111" and "4111111111111111" becomes "************1111". Text
    keeps its length (so single-byte charsets keep their byte offsets), but for a digit
    written as a character reference: in HTML, or text holding ``&`` or ``<`` (read as
    HTML too), that reference becomes one ``*``, so the markup stays valid and every other
    character stays as it was. Masking is idempotent: a masked number is never seen as a
    card again.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from bisect import bisect_right
from collections.abc import Callable

__all__ = [
    "MASKED_IDENTIFIER",
    "identifier_without_cards",
    "luhn_valid",
    "mask_cards",
    "mask_cards_in_html",
    "may_hold_a_card",
]

_MIN_DIGITS = 13
_MAX_DIGITS = 19
_MIN_GROUP = 3  # in a grouped number every group has at least this many digits
_KEEP = 4  # trailing digits left visible
_STAR = "*"

# What may stand between two digit groups (a character class body): whitespace that is not
# a paragraph break, and every dash.
_SEP = "\t\n\r \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\\-\u2010-\u2015\u2212\ufe58\ufe63\uff0d"
# Invisible characters a reader does not see: soft hyphen, combining grapheme joiner,
# Arabic letter mark, Mongolian vowel separator, zero-width space/joiners, bidi marks,
# embeddings, overrides and isolates, word joiner and invisible operators, BOM.
_INVISIBLE = "\u00ad\u034f\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
_INVISIBLES = re.compile(f"[{_INVISIBLE}]+")

# One run of digit groups joined by one to three separators. The look-behinds make a run
# start only at its true beginning (never after a digit, separators following a digit, or a
# mask), which with the possessive quantifiers keeps the scan linear.
_RUN = re.compile(
    r"(?<![\w+/@*])"
    rf"(?<![\d*][{_SEP}.,])(?<![\d*][{_SEP}]{{2}})(?<![\d*][{_SEP}]{{3}})"
    rf"\d++(?:[{_SEP}]{{1,3}}+\d++)*+"
)
_GROUP = re.compile(r"\d+")
# The precheck of every text: in its UTF-8 bytes, every ASCII digit or separator and every
# byte of a non-ASCII character (which may be a digit, a separator or invisible) becomes
# "1", anything else "0"; a card number then shows as 13 "1"s in a row at least. A C-speed
# translate and find, about 20 times cheaper than a regular expression scan, and what
# nearly every log line and text fails at once.
_MAYBE = bytes(
    0x31 if chr(byte) in "0123456789\t\n\r -" or byte >= 0x80 else 0x30 for byte in range(256)
)
_MAYBE_RUN = b"1" * _MIN_DIGITS
# what, right after a run, glues it to something else (a code, an amount, an account)
_GLUED = re.compile(r"[\w@/]|[.,]\d")

_LABEL = (
    r"(?:exp(?:iry|ires|iration)?(?:\s(?:date|dat[eu]m))?|expires?|valid(?:\sthru|\sthrough"
    r"|\suntil|\sto)?|g[üu]ltig(?:\sbis)?|platnost|platnos[tť]|platn[áa]\sdo|wa[żz]na\sdo"
    r"|срок(?:\sдействия)?|cvv2?|cvc2?|cid|csc|cav2|security\scode|k[óo]d|код)"
)
_AFTER_CARD = re.compile(
    rf"[{_SEP},;:()|]{{1,4}}+(?:{_LABEL}\.?[{_SEP}]{{0,2}}:?[{_SEP}]{{0,2}})?"
    r"(?:(?P<expiry>(?:0?[1-9]|1[0-2]) ?[/.\-] ?(?:20)?\d\d)(?!\d|[/.\-]\d)"
    rf"|(?P<code>\d{{3,4}})(?!\d|[/.,\-]\d|[{_SEP}]{{1,3}}\d{{3}}|\w))",
    re.IGNORECASE,
)

# HTML: tags (an inline one is invisible, a block one ends a number), comments and
# declarations (invisible), character references (decoded), invisible characters.
_HTML_TOKEN = re.compile(
    r"<(?P<tag>/?[A-Za-z][A-Za-z0-9:-]*)(?:[\s/][^<>]*+)?>"
    r"|<[!?][^<>]*+>"
    r"|&(?:#[0-9]{1,7};?|#[xX][0-9a-fA-F]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};"
    # a legacy reference without ';' ("&nbsp1111"): letters only, so no digit is taken in
    r"|[A-Za-z]{2,31})"
    rf"|[{_INVISIBLE}]+"
)
_INLINE_TAGS = frozenset(
    {
        *("a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em"),
        *("font", "i", "ins", "kbd", "mark", "nobr", "q", "s", "samp", "small", "span"),
        *("strike", "strong", "sub", "sup", "time", "tt", "u", "var", "wbr"),
    }
)
_LINE_BREAK = "\n"  # <br>: a line break, which may stand between groups like a wrapped line
_BLOCK_END = "\u2029"  # any other tag: no separator, so no number runs across it
_TAG = re.compile(r"<[^<>]*+>")


def luhn_valid(digits: str) -> bool:
    """True when the ASCII digit string *digits* passes the Luhn (mod 10) check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _ascii(digits: str) -> str:
    # \d matches every decimal digit (fullwidth, Arabic-Indic, …); int() reads each of them
    return digits if digits.isascii() else "".join(str(int(char)) for char in digits)


def _cards(text: str, groups: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (first, last) group indexes of each card among *groups* of one run."""
    sizes = [end - start for start, end in groups]
    cards = []
    index = 0
    while index < len(groups):
        best = None
        count = 0
        for last in range(index, len(groups)):
            if last > index and min(sizes[index], sizes[last]) < _MIN_GROUP:
                break  # in a grouped number every group is long
            count += sizes[last]
            if count > _MAX_DIGITS:
                break
            if count >= _MIN_DIGITS:
                digits = _ascii("".join(text[start:end] for start, end in groups[index : last + 1]))
                if digits[0] != "0" and luhn_valid(digits):
                    best = last  # the longest card starting at this group wins
        if best is None:
            index += 1
            continue
        cards.append((index, best))
        index = best + 1
    return cards


def _hidden(text: str) -> list[int]:
    """The offsets in *text* of every digit to hide: all but the last four of each card
    number, and the expiry date and security code right after it."""
    hidden: list[int] = []
    for run in _RUN.finditer(text):
        start, end = run.span()
        if end - start < _MIN_DIGITS:
            continue
        groups = [match.span() for match in _GROUP.finditer(text, start, end)]
        if _GLUED.match(text, end):
            # the last group belongs to what it is glued to ("… 1111 12/28", "… 1111
            # 123,50 Kč", the account in "123456-2000145399/0800"); the groups before it
            # may still be a card
            groups.pop()
        cards = _cards(text, groups)
        for number, (first, last) in enumerate(cards):
            digits = [
                offset for begin, stop in groups[first : last + 1] for offset in range(begin, stop)
            ]
            hidden.extend(digits[:-_KEEP])
            limit = groups[cards[number + 1][0]][0] if number + 1 < len(cards) else len(text)
            hidden.extend(_expiry_and_code(text, groups[last][1], limit))
    return hidden


def _expiry_and_code(text: str, position: int, limit: int) -> list[int]:
    """The digits of an expiry date and a security code right after a card ending at
    *position*, neither reaching past *limit* (the next card of the run)."""
    hidden: list[int] = []
    seen: set[str] = set()
    for _ in range(2):
        match = _AFTER_CARD.match(text, position)
        if match is None or match.end() > limit:
            break
        kind = "expiry" if match.group("expiry") is not None else "code"
        if kind in seen:
            break
        seen.add(kind)
        start, end = match.span(kind)
        hidden.extend(offset for offset in range(start, end) if text[offset].isdigit())
        position = end
    return hidden


def _starred(text: str, spans: list[tuple[int, int]]) -> str:
    """*text* with each (start, end) span of *spans* (sorted, disjoint) replaced by ``*``."""
    pieces = []
    position = 0
    for start, end in spans:
        pieces.append(text[position:start])
        pieces.append(_STAR)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


class _View:
    """Text as a reader sees it, and where each of its characters came from in the
    original: tokens (invisible characters, tags, character references) are replaced by
    what they show, and the text between them is kept as it is (one segment each)."""

    __slots__ = ("origins", "starts", "text")

    def __init__(
        self, original: str, tokens: re.Pattern[str], shown: Callable[[re.Match[str]], str | None]
    ) -> None:
        pieces: list[str] = []
        self.starts: list[int] = []  # where each segment starts in the view
        # its span in the original; verbatim segments map one to one
        self.origins: list[tuple[int, int, bool]] = []
        length = 0
        position = 0  # how far the original is in the view
        for token in tokens.finditer(original):
            replacement = shown(token)
            if replacement is None:
                continue  # not a token after all: stays in the verbatim text around it
            start, end = token.span()
            if start > position:
                self.starts.append(length)
                self.origins.append((position, start, True))
                pieces.append(original[position:start])
                length += start - position
            if replacement:
                self.starts.append(length)
                self.origins.append((start, end, False))
                pieces.append(replacement)
                length += len(replacement)
            position = end
        if position < len(original):
            self.starts.append(length)
            self.origins.append((position, len(original), True))
            pieces.append(original[position:])
        self.text = "".join(pieces)

    def origin(self, offset: int) -> tuple[int, int]:
        """The span of the original that the view's character at *offset* shows."""
        segment = bisect_right(self.starts, offset) - 1
        start, end, verbatim = self.origins[segment]
        if verbatim:
            start += offset - self.starts[segment]
            return start, start + 1
        return start, end


def _masked_view(original: str, view: _View) -> str:
    hidden = _hidden(view.text)
    if not hidden:
        return original
    return _starred(original, sorted({view.origin(offset) for offset in hidden}))


def _invisible(token: re.Match[str]) -> str:
    return ""


def may_hold_a_card(text: str) -> bool:
    """False when :func:`mask_cards` would certainly leave *text* as it is (cheap)."""
    if len(text) < _MIN_DIGITS:
        return False
    return _MAYBE_RUN in text.encode("utf-8", "surrogatepass").translate(_MAYBE)


def mask_cards(text: str) -> str:
    """*text* with every payment-card number masked down to its last four digits, and an
    expiry date and security code right after it masked whole. Text with ``&`` or ``<``
    is also read as HTML: a chat widget or a plain-text part may carry "4111&nbsp;1111…"."""
    masked = _mask_plain(text)
    if ("&" in masked or "<" in masked) and len(masked) >= _MIN_DIGITS:
        return _mask_html(masked)
    return masked


#: how an identifier that held a card number starts once stored (its keyed hash follows)
MASKED_IDENTIFIER = "masked-"
_HASHED_IDENTIFIER = re.compile(f"{MASKED_IDENTIFIER}[0-9a-f]{{64}}")


def identifier_without_cards(identifier: str, key: bytes) -> str:
    """*identifier* as it may be stored: an id the customer's side chose (a chat message or
    conversation id, an email's Message-ID or References) that holds a card number becomes
    its keyed hash. Masking it would not do: the id must stay unique (a redelivery is
    recognised by it) and a reply must still find its thread, so every spelling of one id
    maps to one stable value, and without *key* nobody can search the hashes for a card."""
    if _HASHED_IDENTIFIER.fullmatch(identifier) or mask_cards(identifier) == identifier:
        return identifier  # stored already (chat hands its ids through twice), or no card
    digest = hmac.new(key, identifier.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return MASKED_IDENTIFIER + digest.hexdigest()


def _mask_plain(text: str) -> str:
    if not may_hold_a_card(text):
        return text
    if _INVISIBLES.search(text) is not None:
        return _masked_view(text, _View(text, _INVISIBLES, _invisible))
    hidden = _hidden(text)
    if not hidden:
        return text
    return _starred(text, [(offset, offset + 1) for offset in sorted(hidden)])


def _shown_in_html(token: re.Match[str]) -> str | None:
    """What a reader of the HTML sees of *token*: nothing, a break, or its characters."""
    value = token.group()
    tag = token.group("tag")
    if tag is not None:
        name = tag.lstrip("/").lower()
        if name in _INLINE_TAGS:
            return ""
        return _LINE_BREAK if name == "br" else _BLOCK_END
    if value.startswith("<"):
        return ""  # a comment, doctype or processing instruction
    if value.startswith("&"):
        decoded = html.unescape(value)
        if decoded == value:
            return None  # "&" followed by something that is no character reference
        return _INVISIBLES.sub("", decoded)
    return ""  # invisible characters


def mask_cards_in_html(markup: str) -> str:
    """The HTML *markup* with card numbers masked as :func:`mask_cards` does, in the text a
    reader sees (references decoded, inline tags ignored) and in attribute values; only
    digits become ``*`` (a digit's character reference too), the markup stays as it was."""
    if len(markup) < _MIN_DIGITS:
        return markup
    return _mask_html(markup)


def _mask_html(markup: str) -> str:
    masked = _masked_view(markup, _View(markup, _HTML_TOKEN, _shown_in_html))
    # attribute values (a link or a form field may carry a number), each tag on its own
    return _TAG.sub(lambda tag: _mask_plain(tag.group()), masked)
