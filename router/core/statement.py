"""The month's statement of what the external destinations are owed: ``switchboard
statement`` and ``GET /api/statement``. It answers the shop's question "is the partner's
monthly invoice right?", line by line.

Pure: the handled contacts per local day, channel and destination (as the store counts
them) and the price list in force on each day (:mod:`router.core.prices`) in, a
:class:`Statement` out. No I/O, no clock; the month is an argument.

What is billed is the report's rule (:mod:`router.core.report`): a call answered, an email
or chat message delivered, at a destination that is ``external`` on the contact's day, at
that day's partner price for the channel (``costs.partner``). A voicemail is not a handled
call (nobody at the destination talked to the caller), so it is not billed; each line counts
the voicemails left for that destination apart, so an invoice that bills them can be
checked too.

The month is cut into **lines** where the price is constant: for each destination and
channel, the consecutive days at one price (and currency). A price change on the 15th gives
two lines, the 1st-14th at the old price and the 15th-30th at the new one. Money is in
decimals, each line's amount rounded to the cent (half up), and every total a sum of the
rounded lines, so the statement adds up as an invoice does. A line whose days have no price
(no ``costs`` section, or no partner price for the channel) has a null price and amount, and
a note says which price is missing; a total over such a line is null too, never a guess.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from router.core.contact import Channel
from router.core.figures_text import csv_text, notes_lines
from router.core.prices import CENT, PriceList, PriceRun, day_starts, price_runs
from router.core.report import is_handled

__all__ = [
    "CSV_COLUMNS",
    "DayHandled",
    "DestinationTotal",
    "Month",
    "Statement",
    "StatementLine",
    "StatementTotal",
    "build_statement",
    "csv_filename",
    "parse_month",
    "previous_month",
    "render_csv",
    "render_table",
]

_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_FIRST_YEAR, _LAST_YEAR = 1970, 9998


@dataclass(frozen=True, slots=True, order=True)
class Month:
    year: int
    month: int

    @property
    def text(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def days(self) -> list[date]:
        first = date(self.year, self.month, 1)
        following = self.next().first_day
        return [first + timedelta(days=n) for n in range((following - first).days)]

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def period(self, zone: tzinfo) -> tuple[datetime, datetime]:
        """[first local midnight, the next month's first local midnight) in *zone*."""
        starts = day_starts(self.days(), zone)
        return starts[0], starts[-1]


def parse_month(text: str) -> Month:
    """``"2026-11"`` -> November 2026; ValueError naming the accepted form otherwise."""
    match = _MONTH.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"invalid month {text!r}: expected YYYY-MM, such as 2026-11")
    year = int(match.group(1))
    if not _FIRST_YEAR <= year <= _LAST_YEAR:
        # beyond these a month's midnights in UTC leave the calendar Python can count
        raise ValueError(
            f"invalid month {text!r}: the year must be between {_FIRST_YEAR} and {_LAST_YEAR}"
        )
    return Month(year, int(match.group(2)))


def previous_month(now: datetime, zone: tzinfo) -> Month:
    """The month before the one *now* falls in, in *zone*: the last whole month."""
    today = now.astimezone(zone).date()
    return Month(today.year - (today.month == 1), (today.month - 2) % 12 + 1)


@dataclass(frozen=True, slots=True)
class DayHandled:
    """One group of a month's interactions as the store aggregates them."""

    day: date
    channel: str
    destination: str
    outcome: str | None
    contacts: int
    voicemails: int  # of those, calls with a voicemail recording


# -- the view --------------------------------------------------------------------------------


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class StatementLine(_View):
    destination: str
    channel: str
    first_day: str = Field(description="first day of the line (ISO 8601, routing timezone)")
    last_day: str = Field(description="last day of the line (inclusive)")
    handled: int = Field(description="billable contacts: calls answered, email/chat delivered")
    voicemails: int = Field(description="voicemails left for this destination (not billed)")
    unit_price: Decimal | None = Field(
        description="price per handled contact on these days; null: the version gives none"
    )
    amount: Decimal | None = Field(description="handled x unit price, rounded to the cent")
    currency: str | None
    versions: list[int] = Field(description="the routing versions in force on these days")


class DestinationTotal(_View):
    destination: str
    handled: int
    voicemails: int
    amount: Decimal | None = Field(description="the sum of its lines; null if one is null")


class StatementTotal(_View):
    handled: int
    voicemails: int
    amount: Decimal | None = Field(description="the sum of every line; null if one is null")


class Statement(_View):
    month: str = Field(description="YYYY-MM")
    timezone: str = Field(description="the routing timezone whose days and month are counted")
    since: str = Field(description="the month's first moment (UTC, ISO 8601)")
    until: str = Field(description="the next month's first moment (exclusive)")
    currency: str | None = Field(description="of every amount; null when none or several")
    lines: list[StatementLine] = Field(
        description="per external destination and channel, the days at one price"
    )
    destinations: list[DestinationTotal]
    total: StatementTotal
    notes: list[str] = Field(description="why a figure is null, and other caveats")


# -- computing it ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prices:
    lists: Mapping[date, PriceList | None]

    def partner(
        self, destination: str, channel: str, day: date
    ) -> tuple[Decimal | None, str | None, int | None]:
        today = self.lists.get(day)
        if today is None:
            return None, None, None
        if today.costs is None or today.kind(destination) != "external":
            return None, None, today.version
        return today.unit_price("external", channel), today.costs.currency, today.version


def _billed_here(row: DayHandled, lists: Mapping[date, PriceList | None]) -> bool:
    """Whether *row*'s destination was external (or not known at all) on its day."""
    today = lists.get(row.day)
    return today is None or today.kind(row.destination) in ("external", "unknown")


def build_statement(
    rows: Iterable[DayHandled],
    *,
    month: Month,
    prices: Mapping[date, PriceList | None],
    timezone: str,
    since: datetime,
    until: datetime,
) -> Statement:
    """The statement of *month* from its *rows*, each day priced by *prices*."""
    days = month.days()
    handled: dict[tuple[str, str], Counter[date]] = {}
    voicemails: dict[tuple[str, str], Counter[date]] = {}
    for row in rows:
        if not row.destination or not _billed_here(row, prices):
            continue
        key = (row.destination, row.channel)
        handled.setdefault(key, Counter())
        voicemails.setdefault(key, Counter())[row.day] += row.voicemails
        if is_handled(row.channel, row.outcome):
            handled[key][row.day] += row.contacts
    channel_order = {channel.value: n for n, channel in enumerate(Channel)}
    keys = sorted(
        (key for key in handled if sum(handled[key].values()) or sum(voicemails[key].values())),
        key=lambda key: (key[0], channel_order.get(key[1], len(channel_order)), key[1]),
    )
    partner = _Prices(prices)
    notes: list[str] = []
    lines: list[StatementLine] = []
    for destination, channel in keys:

        def price(
            day: date, destination: str = destination, channel: str = channel
        ) -> tuple[Decimal | None, str | None, int | None]:
            return partner.partner(destination, channel, day)

        for run in price_runs(days, handled[(destination, channel)], price):
            left = sum(voicemails[(destination, channel)][day] for day in _span(run))
            if not run.versions and not run.handled and not left:
                continue  # days before the first routing version: nothing to bill
            if run.amount is None:
                notes.append(_missing(destination, channel, run, prices))
            lines.append(
                StatementLine(
                    destination=destination,
                    channel=channel,
                    first_day=run.first_day.isoformat(),
                    last_day=run.last_day.isoformat(),
                    handled=run.handled,
                    voicemails=left,
                    unit_price=None if run.unit is None else _price(run.unit),
                    amount=run.amount,
                    currency=run.currency,
                    versions=list(run.versions),
                )
            )
    currencies = {line.currency for line in lines if line.currency is not None and line.handled}
    if len(currencies) > 1:
        notes.append(
            f"the lines are in several currencies ({', '.join(sorted(currencies))}): "
            "their totals are null"
        )
    several = len(currencies) > 1
    currency = currencies.pop() if len(currencies) == 1 else None
    by_destination: dict[str, list[StatementLine]] = {}
    for line in lines:
        by_destination.setdefault(line.destination, []).append(line)
    return Statement(
        month=month.text,
        timezone=timezone,
        since=since.astimezone(UTC).isoformat(),
        until=until.astimezone(UTC).isoformat(),
        currency=currency,
        lines=lines,
        destinations=[
            DestinationTotal(
                destination=name,
                handled=sum(line.handled for line in its),
                voicemails=sum(line.voicemails for line in its),
                amount=_sum(its, several=several),
            )
            for name, its in by_destination.items()
        ],
        total=StatementTotal(
            handled=sum(line.handled for line in lines),
            voicemails=sum(line.voicemails for line in lines),
            amount=_sum(lines, several=several),
        ),
        notes=notes,
    )


def _span(run: PriceRun) -> list[date]:
    return [
        run.first_day + timedelta(days=n) for n in range((run.last_day - run.first_day).days + 1)
    ]


def _price(unit: Decimal) -> Decimal:
    """A price as written in a price list: at least to the cent (1.10), more when it has more
    places (0.125)."""
    cents = unit.quantize(CENT)
    return cents if cents == unit else unit.normalize()


def _sum(lines: Sequence[StatementLine], *, several: bool) -> Decimal | None:
    """The sum of the rounded lines; None when one is unknown or the currencies differ."""
    if several:
        return None
    total = Decimal("0.00")
    for line in lines:
        if line.amount is None:
            return None
        total += line.amount
    return total


def _missing(
    destination: str, channel: str, run: PriceRun, prices: Mapping[date, PriceList | None]
) -> str:
    today = prices.get(run.first_day)
    days = f"from {run.first_day} to {run.last_day}"
    uncosted = f"{run.handled} handled contact(s) at {destination!r} {days} are not costed"
    if today is None:
        return f"{channel}: no routing version was in force {days}: {uncosted}"
    if today.costs is None:
        return f"{channel}: routing version {today.version} has no costs section: {uncosted}"
    if today.kind(destination) == "unknown":
        return (
            f"{channel}: destination {destination!r} is not in routing version "
            f"{today.version}, so its kind is unknown: {uncosted}"
        )
    return (
        f"{channel}: no partner price for {channel} (costs.partner.{channel}) in routing "
        f"version {today.version}: {uncosted}"
    )


# -- text and CSV ------------------------------------------------------------------------------


def _money(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def render_table(statement: Statement) -> str:
    """The statement as ``switchboard statement`` prints it."""
    currency = statement.currency or ""
    lines = [
        f"statement {statement.month} ({statement.timezone}): handled contacts at external "
        f"destinations, from {statement.since} until {statement.until}",
        "priced per day by the routing version in force that day; voicemails are not billed",
        "",
        f"{'destination':14} {'channel':7} {'from':10} {'to':10} {'handled':>8} "
        f"{'voicemails':>10} {'unit price':>10} {'amount':>12}  versions",
    ]
    if not statement.lines:
        lines.append("  (nothing handled at an external destination this month)")
    for line in statement.lines:
        unit = "n/a" if line.unit_price is None else str(line.unit_price)
        versions = ", ".join(str(v) for v in line.versions)
        lines.append(
            f"{line.destination:14} {line.channel:7} {line.first_day:10} {line.last_day:10} "
            f"{line.handled:>8} {line.voicemails:>10} {unit:>10} {_money(line.amount):>12}  "
            f"{versions}"
        )
    lines.append("")
    for total in statement.destinations:
        lines.append(
            f"{total.destination + ' total':47} {total.handled:>8} {total.voicemails:>10} "
            f"{'':>10} {_money(total.amount):>12}  {currency}"
        )
    lines.append(
        f"{'total':47} {statement.total.handled:>8} {statement.total.voicemails:>10} "
        f"{'':>10} {_money(statement.total.amount):>12}  {currency}"
    )
    lines.extend(notes_lines(statement.notes))
    return "\n".join(lines)


#: ``statement --format csv``: one row per line, to hold against the invoice's lines
CSV_COLUMNS = (
    "destination",
    "channel",
    "from",
    "to",
    "handled",
    "unit_price",
    "amount",
    "currency",
    "voicemails",
)


def render_csv(statement: Statement) -> str:
    """One row per line (RFC 4180; empty cells for null)."""
    return csv_text(
        CSV_COLUMNS,
        (
            [
                line.destination,
                line.channel,
                line.first_day,
                line.last_day,
                line.handled,
                line.unit_price,
                line.amount,
                line.currency,
                line.voicemails,
            ]
            for line in statement.lines
        ),
    )


def csv_filename(statement: Statement) -> str:
    """``statement-2026-11.csv``"""
    return f"statement-{statement.month}.csv"
