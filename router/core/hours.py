"""Opening hours: the ``hours`` value of a destination, parsed and asked "open now?".

This module owns the grammar of ``hours`` (SPEC §2) and nothing else: it knows no
timezones (the caller converts to the document's zone first), no clock (the time is an
argument) and no routing. Pure values and functions, no I/O.

Grammar::

    hours: always
    hours: {mon-fri: "08:00-12:00, 13:00-17:00", sat: "09:00-12:00",
            closed: ["2026-12-24", "2026-12-25"]}

* A key is one day (``mon`` … ``sun``) or a range of two different days (``mon-fri``).
  A range may wrap over the weekend: ``fri-mon`` is Friday, Saturday, Sunday and Monday.
  Day names are case-insensitive. Each weekday may be named by one key only, because
  ``{mon-fri: …, fri: …}`` could mean "replace" or "add" and we refuse to guess.
* A value is one or more ``HH:MM-HH:MM`` intervals joined by commas. The end must be after
  the start, ``24:00`` is allowed as an end (and only there), and intervals of one day may
  touch but not overlap. An interval never crosses midnight: ``22:00-06:00`` is written as
  ``22:00-24:00`` on one day and ``00:00-06:00`` on the next.
* ``closed`` lists ISO dates (``YYYY-MM-DD``) on which the destination is closed all day.
* A weekday no key names is closed; ``{}`` is never open.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from itertools import pairwise

__all__ = ["ALWAYS", "DAYS", "HoursError", "OpeningHours", "parse_hours"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()

Interval = tuple[int, int]  # [start, end) in minutes after local midnight; end <= 1440

_MINUTES_PER_DAY = 24 * 60
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FORM = "'always' or a mapping from days (mon … sun, or a range such as mon-fri) to hours"


class HoursError(ValueError):
    """Every problem of one ``hours`` value, as (sub-path, message) pairs.

    The sub-path is relative to the ``hours`` value: ``"mon-fri"``, ``"closed"``,
    ``"closed[1]"``, or ``""`` for the value as a whole.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(
            "\n".join(f"{path}: {message}" if path else message for path, message in problems)
        )


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """When a destination takes contacts, in local wall-clock time.

    ``week`` holds, for each weekday (Monday first), its sorted, non-overlapping intervals.
    """

    always: bool
    week: tuple[tuple[Interval, ...], ...]
    closed: frozenset[date]

    def is_open(self, local: datetime) -> bool:
        """Whether the destination is open at *local*, a wall-clock time of its zone.

        Only the fields (date, hour, minute) are read, so an aware datetime must already be
        converted to the document's zone; ``RoutingDocument.is_open`` does that.
        """
        if self.always:
            return True
        if local.date() in self.closed:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.week[local.weekday()])


ALWAYS = OpeningHours(always=True, week=((),) * 7, closed=frozenset())


def parse_hours(spec: object) -> OpeningHours:
    """Parse an ``hours`` value (see the module docstring); HoursError lists every problem."""
    if isinstance(spec, str) and spec.strip() == "always":
        return ALWAYS
    if not isinstance(spec, Mapping):
        raise HoursError([("", f"must be {_FORM}")])

    problems: list[tuple[str, str]] = []
    week: list[list[Interval]] = [[] for _ in DAYS]
    named_by: dict[int, str] = {}  # weekday -> the key that named it, to refuse a second one
    closed: frozenset[date] = frozenset()

    for key, value in spec.items():
        if not isinstance(key, str):
            problems.append((str(key), "a day or a range of days must be a string such as mon"))
            continue
        if key == "closed":
            closed = _parse_closed(value, problems)
            continue
        try:
            days = _parse_days(key)
        except ValueError as error:
            problems.append((key, str(error)))
            days = []
        try:
            intervals = _parse_intervals(value)
        except HoursError as error:
            problems.extend((key, message) for _, message in error.problems)
            intervals = []
        for day in days:
            if day in named_by:
                problems.append((key, f"{DAYS[day]} is already named by {named_by[day]}"))
                continue
            named_by[day] = key
            week[day] = intervals

    if problems:
        raise HoursError(problems)
    return OpeningHours(always=False, week=tuple(tuple(d) for d in week), closed=closed)


def _parse_days(key: str) -> list[int]:
    """``"mon"`` -> [0]; ``"mon-fri"`` -> [0..4]; ``"fri-mon"`` -> [4, 5, 6, 0]."""
    names = [part.strip().lower() for part in key.split("-")]
    unknown = [name for name in names if name not in DAYS]
    if len(names) > 2 or unknown:
        raise ValueError(
            f"not a day or a range of days: {key!r} (use mon, tue, wed, thu, fri, sat, sun, "
            "or a range such as mon-fri)"
        )
    first = DAYS.index(names[0])
    if len(names) == 1:
        return [first]
    last = DAYS.index(names[1])
    if first == last:
        # "mon-mon" may mean one day or the whole week; a typo is likelier than either.
        raise ValueError(f"a range needs two different days: {key!r}")
    span = (last - first) % 7  # wraps over the weekend: fri-mon is 3 days after fri
    return [(first + offset) % 7 for offset in range(span + 1)]


def _parse_intervals(value: object) -> list[Interval]:
    """``"08:00-12:00, 13:00-17:00"`` -> [(480, 720), (780, 1020)]; HoursError otherwise."""
    if not isinstance(value, str):
        raise HoursError([("", "must be a string of HH:MM-HH:MM intervals joined by commas")])
    if not value.strip():
        raise HoursError([("", "no intervals: leave the day out to keep it closed")])
    problems: list[tuple[str, str]] = []
    intervals: list[Interval] = []
    for part in value.split(","):
        text = part.strip()
        bounds = [bound.strip() for bound in text.split("-")]
        if len(bounds) != 2:
            problems.append(("", f"not an HH:MM-HH:MM interval: {text!r}"))
            continue
        start, end = _parse_time(bounds[0]), _parse_time(bounds[1])
        if start is None or end is None:
            problems.append(("", f"not an HH:MM-HH:MM interval of valid times: {text!r}"))
        elif start == _MINUTES_PER_DAY:
            problems.append(("", f"an interval cannot start at 24:00: {text!r}"))
        elif end <= start:
            problems.append(
                ("", f"the end must be after the start: {text!r} (split a night across two days)")
            )
        else:
            intervals.append((start, end))
    intervals.sort()
    for (start_a, end_a), (start_b, end_b) in pairwise(intervals):
        if start_b < end_a:
            problems.append(
                (
                    "",
                    f"intervals {_clock(start_a)}-{_clock(end_a)} and "
                    f"{_clock(start_b)}-{_clock(end_b)} overlap",
                )
            )
    if problems:
        raise HoursError(problems)
    return intervals


def _parse_time(text: str) -> int | None:
    """``"08:30"`` -> 510, ``"24:00"`` -> 1440; None when it is not a time of day."""
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    if minute > 59 or hour > 24 or (hour == 24 and minute != 0):
        return None
    return hour * 60 + minute


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_closed(value: object, problems: list[tuple[str, str]]) -> frozenset[date]:
    if not isinstance(value, list | tuple):
        problems.append(("closed", "must be a list of ISO dates such as 2026-12-24"))
        return frozenset()
    dates: set[date] = set()
    for index, item in enumerate(value):
        # YAML reads an unquoted 2026-12-24 as a date already; a datetime is a date too but
        # "closed from 10:00" is not something this list can say, so it is refused.
        if isinstance(item, date) and not isinstance(item, datetime):
            dates.add(item)
            continue
        parsed = None
        if isinstance(item, str) and _ISO_DATE.fullmatch(item.strip()):
            try:
                parsed = date.fromisoformat(item.strip())
            except ValueError:
                parsed = None
        if parsed is None:
            problems.append((f"closed[{index}]", f"not an ISO date (YYYY-MM-DD): {item!r}"))
        else:
            dates.add(parsed)
    return frozenset(dates)
