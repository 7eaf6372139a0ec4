"""Durations as operators write them: ``90s``, ``15m``, ``24h``, ``2d``.

Everything that reads or prints a duration (``--for``, ``guard.window``,
``guard.rollback_for``) goes through this module, so the CLI, the HTTP API and the routing
document accept exactly the same spellings. Pure functions, no I/O, no imports from the
rest of the package.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta

__all__ = ["format_duration", "parse_duration"]

_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"([0-9]+)([smhd])")
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
        raise ValueError(f"invalid duration {text!r}: expected {_EXAMPLES}")
    amount = int(match.group(1))
    if amount == 0:
        raise ValueError(f"invalid duration {text!r}: it must be longer than zero")
    try:
        return timedelta(seconds=amount * _UNIT_SECONDS[match.group(2)])
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too long") from None


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
    with contextlib.suppress(ValueError):
        return now - parse_duration(text)
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(_SPACED_OFFSET.sub(r"+\1", text.strip()))
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    raise ValueError("use an ISO 8601 time (2026-11-23T08:00:00+01:00) or a duration (24h, 7d)")
