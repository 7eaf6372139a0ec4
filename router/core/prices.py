"""Which prices a day's contacts are billed at: the routing version in force on each local day
(``switchboard report``, ``switchboard statement``).

Pure: the routing versions (their number, creation time, ``costs`` and destination kinds)
and the period in, the price list of every day out. No I/O, no clock.

The rule, and why. Money is computed with the ``costs`` of the routing version **in force
on the contact's day**, a day being a calendar day of the document's timezone, and the
version in force on a day being the newest one created **before that day ended** (before
the next local midnight). So a price list applied at 10:00 on 15 November prices every
contact of 15 November, the ones of 08:00 included:

* a partner's price list changes on a calendar day ("from 15 November, 1.20 per call"), and
  the invoice bills whole days at one price; a version applied during the morning must not
  split a day into two prices the invoice never shows;
* the operator applies the new prices on the day they start, at whatever hour: that day is
  already priced right, without having to apply it at midnight;
* every cut-over, rollback and resume copies the ``costs`` unchanged, so the many versions
  of a migration day share one price and a day's price is well defined.

Days are cut at local midnight of the *current* document's timezone (a change of timezone
between versions is not modelled: it would move every boundary).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from router.core.contact import Channel
from router.core.document import Costs

__all__ = [
    "CENT",
    "MAX_DAYS",
    "Kind",
    "PriceList",
    "PriceRun",
    "TooManyDays",
    "day_starts",
    "in_force_by_day",
    "kind_of",
    "local_days",
    "money",
    "price_runs",
    "unit_prices",
]

Kind = Literal["external", "in_house", "unknown", "none"]
CENT = Decimal("0.01")


def money(value: Decimal) -> Decimal:
    """*value* rounded to the cent, half up (as an invoice rounds)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class PriceList:
    """What one routing version says about money: its ``costs`` (None: no costs section)
    and the kind (``external`` | ``in_house``) of each of its destinations."""

    version: int
    created_at: datetime
    costs: Costs | None
    kinds: Mapping[str, str]
    # computed once: a long report asks for them day after day
    units: Mapping[str, Mapping[str, Decimal]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        units = {} if self.costs is None else unit_prices(self.costs)
        object.__setattr__(self, "units", units)

    def kind(self, destination: str) -> Kind:
        return kind_of(destination, self.kinds)

    def unit_price(self, kind: str, channel: str) -> Decimal | None:
        """The price of one handled contact of *channel* at a destination of *kind*."""
        return self.units.get(kind, {}).get(channel)


def kind_of(name: str, kinds: Mapping[str, str]) -> Kind:
    """The kind of destination *name*: ``none`` for "" (a call abandoned in the IVR menu),
    ``unknown`` for a name the version does not hold."""
    if not name:
        return "none"
    kind = kinds.get(name)
    if kind == "external":
        return "external"
    if kind == "in_house":
        return "in_house"
    return "unknown"


def unit_prices(costs: Costs) -> dict[str, dict[str, Decimal]]:
    """kind -> channel -> price per handled contact; a channel without a price is absent.
    An in-house contact costs the staffed hour divided by the contacts handled per hour."""
    hourly = Decimal(str(costs.in_house.hourly))
    partner, per_hour = costs.partner, costs.in_house.per_hour
    return {  # in the channels' own order (phone, email, chat), as every section is
        "external": {ch.value: Decimal(str(partner[ch])) for ch in Channel if ch in partner},
        "in_house": {ch.value: hourly / per_hour[ch] for ch in Channel if ch in per_hour},
    }


#: The longest period counted day by day (ten years): what a report may cover.
MAX_DAYS = 3660


class TooManyDays(ValueError):
    """A period longer than :data:`MAX_DAYS` days."""


def local_days(since: datetime, until: datetime, zone: tzinfo) -> list[date]:
    """Every calendar day of *zone* that [*since*, *until*) touches, in order;
    :class:`TooManyDays` beyond :data:`MAX_DAYS`."""
    first, last = _local_date(since, zone), _local_date(until - timedelta(microseconds=1), zone)
    count = (last - first).days + 1
    if count > MAX_DAYS + 1:  # a period of MAX_DAYS days mostly touches one day more
        raise TooManyDays(
            f"the period touches {count} calendar days of {zone}; at most {MAX_DAYS} days "
            "(ten years) are counted day by day: ask for a shorter period"
        )
    return [first + timedelta(days=n) for n in range(count)]


def _local_date(moment: datetime, zone: tzinfo) -> date:
    try:
        return moment.astimezone(zone).date()
    except OverflowError:  # the first or last hours of the calendar, shifted out of it
        return moment.astimezone(UTC).date()


def day_starts(days: Sequence[date], zone: tzinfo) -> list[datetime]:
    """The moment each of *days* begins (local midnight; on a day whose midnight does not
    exist, the first moment after it), and after them the end of the last day: one more
    moment than days, in UTC. The store counts contacts between these."""
    moments = [*days, days[-1] + timedelta(days=1)] if days else []
    return [_midnight(day, zone) for day in moments]


def _midnight(day: date, zone: tzinfo) -> datetime:
    # where clocks jump at midnight, zoneinfo reads the missing 00:00 with the offset before
    # the jump: the moment of the jump, which is the day's first moment all the same
    # in UTC: Python subtracts and compares two times of one zone by their wall clocks,
    # which on a 25-hour day is an hour off
    try:
        return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    except OverflowError:  # a midnight of 1 January of the year 1 east of Greenwich
        return (
            datetime.min.replace(tzinfo=UTC) if day.year == 1 else datetime.max.replace(tzinfo=UTC)
        )


def in_force_by_day(
    lists: Iterable[PriceList], days: Sequence[date], zone: tzinfo
) -> dict[date, PriceList | None]:
    """The version in force on each of *days*: the newest created before the day ended.
    None for a day that ended before the first version (nothing could be routed then)."""
    ordered = sorted(lists, key=lambda item: (item.created_at, item.version))
    created = [item.created_at for item in ordered]
    result: dict[date, PriceList | None] = {}
    for day in days:
        end = _midnight(day + timedelta(days=1), zone)
        index = bisect_left(created, end)  # the versions created before *end*
        result[day] = ordered[index - 1] if index else None
    return result


@dataclass(frozen=True, slots=True)
class PriceRun:
    """Consecutive days at one price: one line of a statement."""

    first_day: date
    last_day: date
    unit: Decimal | None  # None: the version gives no price
    currency: str | None
    versions: tuple[int, ...]  # the versions in force on these days
    handled: int
    amount: Decimal | None  # unit x handled, to the cent; None when a price is missing


def price_runs(
    days: Sequence[date],
    handled: Mapping[date, int],
    price_of: Callable[[date], tuple[Decimal | None, str | None, int | None]],
) -> list[PriceRun]:
    """*days* cut into runs of consecutive days at one (price, currency), each priced and
    rounded to the cent on its own: an invoice's line. *price_of* gives a day's unit price,
    currency and version. A run without handled contacts costs 0, whatever its price."""
    runs: list[PriceRun] = []
    prices = [price_of(day) for day in days]
    start = 0
    for index in range(1, len(days) + 1):
        if index < len(days) and prices[index][:2] == prices[start][:2]:
            continue
        span = days[start:index]
        unit, currency, _ = prices[start]
        count = sum(handled.get(day, 0) for day in span)
        versions = sorted({v for _, _, v in prices[start:index] if v is not None})
        amount = money(Decimal(0)) if count == 0 else None if unit is None else money(unit * count)
        runs.append(PriceRun(span[0], span[-1], unit, currency, tuple(versions), count, amount))
        start = index
    return runs
