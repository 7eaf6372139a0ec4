"""Payment-card masking (SPEC §6): everything that decides what a card number is in free
text, and how it is hidden, lives here. Pure and fast; imports nothing from the project.

What counts as a card number
    13 to 19 digits that pass the Luhn check, written either as one run ("4111111111111111")
    or in groups of at least three digits separated by single spaces, no-break spaces or
    dashes ("4111 1111 1111 1111", "3782-822463-10005").

What does not
    * a run glued to a letter, ``_``, ``@``, ``/``, ``+`` or a decimal point: IBANs
      ("CZ65 0800 0000 1920 0014 5399"), parcel codes, ``+`` phone numbers ("+49 1512
      3456 7890"), account numbers ("123456-2000145399/0800"), amounts ("1234567890123,50");
    * a number starting with 0: no issuer uses major industry identifier 0 (ISO/IEC 7812),
      while ``00``-prefixed phone numbers and zero-padded order or parcel numbers do;
    * a digit group split in the middle: a 20-digit order number has no card inside it;
    * anything failing the Luhn check.

How it is masked
    Every digit but the last four becomes ``*``; separators stay: "4111 1111 1111 1111"
    becomes "**** **** **** 1111" and "4111111111111111" becomes "************1111". The
    text keeps its length (so single-byte charsets keep their byte offsets), and masking is
    idempotent: a masked number is never seen as a card again.
"""

from __future__ import annotations

import re

__all__ = ["luhn_valid", "mask_cards"]

_MIN_DIGITS = 13
_MAX_DIGITS = 19
_MIN_GROUP = 3  # in a grouped number every group has at least this many digits
_KEEP = 4  # trailing digits left visible

# One run of digit groups joined by single separators. The look-behinds make a run start
# only at its true beginning (never after a digit, a separator following a digit, or a
# mask), which together with the possessive quantifiers keeps the scan linear.
_RUN = re.compile(
    r"(?<![\w+/@*])(?<![0-9*][ \u00a0.,\-])"
    r"[0-9]++(?:[ \u00a0\-][0-9]++)*+"
    r"(?![\w@/]|[.,][0-9])"
)
_GROUP = re.compile(r"[0-9]+")


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


def _masked(text: str) -> str:
    digits = sum("0" <= char <= "9" for char in text)
    seen = 0
    out = []
    for char in text:
        if "0" <= char <= "9":
            seen += 1
            out.append("*" if seen <= digits - _KEEP else char)
        else:
            out.append(char)
    return "".join(out)


def _mask_run(run: str) -> str:
    groups = [(match.start(), match.end()) for match in _GROUP.finditer(run)]
    sizes = [end - start for start, end in groups]
    pieces: list[str] = []
    done = 0  # offset in *run* up to which pieces hold the output
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
                digits = "".join(run[start:end] for start, end in groups[index : last + 1])
                if digits[0] != "0" and luhn_valid(digits):
                    best = last  # the longest card starting at this group wins
        if best is None:
            index += 1
            continue
        start, end = groups[index][0], groups[best][1]
        pieces.append(run[done:start])
        pieces.append(_masked(run[start:end]))
        done = end
        index = best + 1
    if not pieces:
        return run
    pieces.append(run[done:])
    return "".join(pieces)


def mask_cards(text: str) -> str:
    """*text* with every payment-card number masked down to its last four digits."""
    if len(text) < _MIN_DIGITS:
        return text
    return _RUN.sub(lambda match: _mask_run(match.group()), text)
