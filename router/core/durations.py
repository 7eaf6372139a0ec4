"""Durations as operators write them: ``90s``, ``15m``, ``24h``, ``2d``.

Everything that reads or prints a duration (``--for``, ``guard.window``,
``guard.rollback_for``) goes through this module, so the CLI, the HTTP API and the routing
document accept exactly the same spellings. Pure functions, no I/O, no imports from the
rest of the package.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["MAX_DURATION", "format_duration", "parse_duration", "parse_since"]

_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"([0-9]+)([smhd])")
#: The longest duration accepted: a century. Anything longer is a typo, and a time that far
#: from now (``now - 99999999d``) is outside what a datetime can hold (OverflowError).
MAX_DURATION = timedelta(days=36_500)
_EXAMPLES = "a positive whole number and one unit s, m, h or d, such as 90s, 15m, 24h or 2d"


def parse_duration(text: str) -> timedelta:
    """``"15m"`` -> ``timedelta(minutes=15)``; ValueError naming the accepted form otherwise.

    One number and one unit only: ``1h30m`` is refused rather than half-understood, and
    ``90m`` is the way to write it.
    """
    # A ValueError (never a TypeError) for every bad input, because pydantic validators
    # only turn ValueErrors into per-path problems.
    if not isinstance(text, str):
        raise ValueError(f"a duration must be a string: {_EXAMPLES}")
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid duration {_shown(text)}: expected {_EXAMPLES}")
    digits = match.group(1).lstrip("0")
    if not digits:
        raise ValueError(f"invalid duration {_shown(text)}: it must be longer than zero")
    # compared before int(): a number thousands of digits long is refused, not converted
    seconds = int(digits) * _UNIT_SECONDS[match.group(2)] if len(digits) <= 12 else None
    if seconds is None or seconds > MAX_DURATION.total_seconds():
        longest = format_duration(MAX_DURATION)
        raise ValueError(f"invalid duration {_shown(text)}: longer than {longest}")
    return timedelta(seconds=seconds)


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def format_duration(duration: timedelta) -> str:
    """The shortest spelling that :func:`parse_duration` reads back to *duration*.

    The largest unit that divides it exactly: 86400 s -> ``1d``, 5400 s -> ``90m``,
    90 s -> ``90s``. A duration that is not a positive whole number of seconds cannot be
    written this way and is a ValueError.
    """
    if duration <= timedelta(0) or duration.microseconds:
        raise ValueError(
            f"{duration!r} cannot be written as a duration: "
            "it must be a positive whole number of seconds"
        )
    seconds = duration.days * 86_400 + duration.seconds  # exact, unlike total_seconds()
    for unit, size in _UNIT_SECONDS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds is a multiple of 1 s")


# A '+' in a URL query arrives as a space (form encoding): "2026-11-23T08:00:00 01:00".
_SPACED_OFFSET = re.compile(r" (\d{2}:?\d{2})$")


def parse_since(text: str, now: datetime) -> datetime:
    """A moment given as ISO 8601 (UTC when it has no offset) or as a duration back from
    *now* ("24h", "7d"); ValueError with a hint otherwise."""
    if _DURATION.fullmatch(text.strip()):
        return now - parse_duration(text)  # its ValueError says what is wrong with it
    try:
        moment = datetime.fromisoformat(_SPACED_OFFSET.sub(r"+\1", text.strip()))
    except ValueError:
        raise ValueError(
            "use an ISO 8601 time (2026-11-23T08:00:00+01:00) or a duration (24h, 7d)"
        ) from None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    try:
        # 0001-01-01T00:00+01:00 is a datetime, but not one in UTC: comparing it with
        # another time, or storing it, overflows
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{_shown(text)} is outside the years 1 to 9999 in UTC") from None
    return moment
