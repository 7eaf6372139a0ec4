"""What contacts went where over a period, and what that cost: ``switchboard report`` and
``GET /api/report``.

Pure: the counts the store aggregates (local day, channel, final and first destination,
category, outcome -> contacts) and the price list in force on each day
(:mod:`router.core.prices`) in, a :class:`Report` out. No I/O,
no clock; the period is an argument. The report is a pydantic model so that the CLI reads
the API's answer back into the very model it renders locally (one renderer, one shape), and
the OpenAPI schema is generated from it. ``render_csv`` gives the per-destination figures,
``render_days_csv`` the per-day series, one table per file.

The billing rule lives here and nowhere else. A contact is **handled** by its *final*
destination when it reached someone there:

* a call: outcome ``answered`` (the ``<Dial>`` to the destination or to its fallback was
  answered). A call that rang out, went to voicemail, was abandoned in the IVR menu, or has
  no dial result yet was not handled: nobody at the destination talked to the caller.
* an email or a chat message: outcome ``delivered`` (the outbox handed it to the
  destination's mailbox or chat endpoint). A forward still waiting, moved to the fallback
  and not yet delivered, failed, or without an address was not handled. One delivered to the
  fallback is handled by the fallback, which is its final destination.

A voicemail is not handled: the caller talked to nobody at the destination (the partner's
invoice may bill it all the same; ``switchboard statement`` counts them apart for that).

Only handled contacts cost anything: at an ``external`` destination the partner's price per
interaction of the channel (``costs.partner``), at an ``in_house`` one the staffed hour
divided by the contacts handled per hour (``costs.in_house``), both taken from the routing
version in force on the contact's day (:mod:`router.core.prices` says which, and why). The
comparison prices the same handled contacts at the in-house rate: what the work would have
cost before outsourcing. Money is computed in decimals and rounded to cents per run of days
at one price for each destination and channel (the statement's lines); every sum is a sum
of those rounded figures, so the printed numbers add up.

A figure that needs a price the document does not give is null, never a guess, and a note
says which price is missing; the other channels keep their figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import partial

from pydantic import BaseModel, ConfigDict, Field

from router.core.contact import Category, Channel
from router.core.figures_text import csv_text, notes_lines
from router.core.prices import Kind, PriceList, PriceRun, kind_of, price_runs, unit_prices

__all__ = [
    "CSV_COLUMNS",
    "DAYS_CSV_COLUMNS",
    "DEFAULT_SINCE",
    "HANDLED_OUTCOME",
    "CostComparison",
    "Count",
    "DayCategories",
    "DestinationFigures",
    "PricePeriod",
    "Report",
    "ReportSection",
    "admin_share",
    "build_report",
    "csv_filename",
    "is_handled",
    "render_csv",
    "render_days_csv",
    "render_text",
]

#: The period of a report when no start is given: the last week (CLI and API alike).
DEFAULT_SINCE = "7d"

#: The outcome that makes a contact of each channel billable (see the module docstring).
HANDLED_OUTCOME: Mapping[str, str] = {
    Channel.PHONE.value: "answered",
    Channel.EMAIL.value: "delivered",
    Channel.CHAT.value: "delivered",
}

_UNIT = Decimal("0.0001")  # in-house unit prices are divisions (22 / 12): keep 4 places
_NO_OUTCOME = "none"  # a row written without an outcome (none of ours does; never crash)


def is_handled(channel: str, outcome: str | None) -> bool:
    """Whether a contact of *channel* with *outcome* reached its final destination."""
    return outcome is not None and HANDLED_OUTCOME.get(channel) == outcome


@dataclass(frozen=True, slots=True)
class Count:
    """One group of interactions as the store aggregates them."""

    day: date  # the local day (document timezone) they were received on
    channel: str
    destination: str  # final destination; "" for a call abandoned in the IVR menu
    first_destination: str  # the one decided first (differs after a fallback)
    category: str
    outcome: str | None
    contacts: int


# -- the view --------------------------------------------------------------------------------


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class DestinationFigures(_View):
    name: str = Field(description='"" counts the calls abandoned in the IVR menu (kind none)')
    kind: Kind = Field(description="from the current routing version; unknown: no longer in it")
    contacts: int = Field(description="contacts whose final destination this is")
    handled: int = Field(description="of those, the billable ones (answered, delivered)")
    redirected_in: int = Field(description="contacts that came here after another failed")
    redirected_out: int = Field(description="contacts first sent here that ended elsewhere")
    outcomes: dict[str, int] = Field(description="outcome -> contacts")
    unit_cost: float | None = Field(
        description="price per handled contact (per channel only; null in the total, and "
        "when the handled contacts' days had different prices)"
    )
    cost: float | None = Field(
        description="handled x the unit cost of each one's day; null when a price is missing"
    )


class CostComparison(_View):
    actual: float | None = Field(description="what the handled contacts cost where they went")
    all_in_house: float | None = Field(
        description="the same handled contacts at the in-house rate (before outsourcing)"
    )
    difference: float | None = Field(
        description="actual - all_in_house: negative when outsourcing saves money"
    )


class ReportSection(_View):
    contacts: int
    handled: int
    categories: dict[str, int] = Field(description="category -> contacts")
    destinations: list[DestinationFigures]
    cost: CostComparison


class DayCategories(_View):
    date: str = Field(description="a calendar day of the routing timezone (ISO 8601)")
    admin: int = Field(description="contacts received that day, every channel")
    product: int
    unknown: int


class PricePeriod(_View):
    first_day: str = Field(description="first day (ISO 8601, routing timezone) at these prices")
    last_day: str = Field(description="last day at these prices (inclusive)")
    versions: list[int] = Field(description="the routing versions in force on those days")
    currency: str | None = Field(description="null: those versions have no costs section")
    prices: dict[str, dict[str, float]] | None = Field(
        description="kind (external, in_house) -> channel -> price per handled contact"
    )


class Report(_View):
    since: str = Field(description="start of the period (inclusive), by received_at")
    until: str = Field(description="end of the period (exclusive)")
    prices_version: int = Field(
        description="the routing version in force on the period's last day (the current one "
        "for a period ending now); each day is priced by its own version: see price_periods"
    )
    currency: str | None = Field(description="null: that version has no costs section")
    prices: dict[str, dict[str, float]] | None = Field(
        description="kind (external, in_house) -> channel -> price per handled contact, "
        "of prices_version"
    )
    channels: dict[str, ReportSection] = Field(description="phone, email, chat")
    total: ReportSection
    notes: list[str] = Field(description="why a figure is null, and other caveats")
    timezone: str = Field(description="the routing timezone whose days price and count")
    price_periods: list[PricePeriod] = Field(
        description="the days of the period at each price list, in order"
    )
    days: list[DayCategories] = Field(
        description="contacts per day of the period by category (the first and the last "
        "day may be partial: the period need not start or end at midnight)"
    )


# -- computing it ----------------------------------------------------------------------------


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _unit(value: Decimal) -> float:
    return float(value.quantize(_UNIT, rounding=ROUND_HALF_UP))


@dataclass(slots=True)
class _Tally:
    contacts: int = 0
    handled: int = 0
    redirected_in: int = 0
    redirected_out: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    handled_on: Counter[date] = field(default_factory=Counter)


def _ordered(names: Iterable[str], kinds: Mapping[str, str]) -> list[str]:
    """Every destination of the current document and every other one named, by name; ""
    (no destination) last. The document's own are listed even without contacts, so the
    shape of a quiet week is the shape of a busy one."""
    seen = set(names)
    return sorted((seen | set(kinds)) - {""}) + ([""] if "" in seen else [])


@dataclass(frozen=True, slots=True)
class _Pricing:
    """Each day's price list, and the one currency the report's money is counted in."""

    days: Sequence[date]
    lists: Mapping[date, PriceList | None]
    currency: str | None

    @property
    def priced(self) -> bool:
        return self.currency is not None

    def price(
        self, day: date, kind: str, channel: str
    ) -> tuple[Decimal | None, str | None, int | None]:
        """(unit price, currency, version) of a handled contact on *day*; no price when the
        day's version has none or counts in another currency (money of two currencies is
        never added up)."""
        prices = self.lists.get(day)
        if prices is None:
            return None, None, None
        if prices.costs is None:
            return None, None, prices.version
        if prices.costs.currency != self.currency:
            return None, prices.costs.currency, prices.version
        return prices.unit_price(kind, channel), self.currency, prices.version

    def at_destination(
        self, day: date, *, name: str, channel: str
    ) -> tuple[Decimal | None, str | None, int | None]:
        """:meth:`price` at destination *name*, of its kind on *day*."""
        today = self.lists.get(day)
        return self.price(day, today.kind(name) if today else "unknown", channel)


def build_report(
    counts: Iterable[Count],
    *,
    current: PriceList,
    prices: Mapping[date, PriceList | None],
    days: Sequence[date],
    timezone: str,
    since: datetime,
    until: datetime,
) -> Report:
    """The report of *counts* (interactions received in [*since*, *until*), whose local
    *days* are these), each day priced with its own price list of *prices*; destinations
    are listed with their kinds in the *current* version."""
    counts = list(counts)
    kinds = current.kinds
    channels = [c.value for c in Channel]
    channels += sorted({row.channel for row in counts} - set(channels))
    tallies: dict[str, dict[str, _Tally]] = {channel: {} for channel in channels}
    categories: dict[str, Counter[str]] = {channel: Counter() for channel in channels}
    per_day: dict[date, Counter[str]] = {day: Counter() for day in days}
    for row in counts:
        per_destination = tallies[row.channel]
        final = per_destination.setdefault(row.destination, _Tally())
        final.contacts += row.contacts
        final.outcomes[row.outcome or _NO_OUTCOME] += row.contacts
        if is_handled(row.channel, row.outcome):
            final.handled += row.contacts
            final.handled_on[row.day] += row.contacts
        if row.first_destination != row.destination:
            final.redirected_in += row.contacts
            per_destination.setdefault(
                row.first_destination, _Tally()
            ).redirected_out += row.contacts
        categories[row.channel][row.category] += row.contacts
        per_day.setdefault(row.day, Counter())[row.category] += row.contacts

    last = prices.get(days[-1]) if days else None
    shown = last if last is not None else current
    pricing = _Pricing(days, prices, shown.costs.currency if shown.costs is not None else None)
    notes: list[str] = []
    if not pricing.priced:
        notes.append(
            f"routing version {shown.version} has no costs section: contacts are counted, "
            "costs are null (add costs: to the routing document to price them)"
        )
    sections = {
        channel: _section(channel, tallies[channel], categories[channel], kinds, pricing, notes)
        for channel in channels
    }
    return Report(
        since=since.astimezone(UTC).isoformat(),
        until=until.astimezone(UTC).isoformat(),
        prices_version=shown.version,
        currency=pricing.currency,
        prices=_price_table(shown),
        channels=sections,
        total=_total(list(sections.values()), kinds, priced=pricing.priced),
        notes=notes,
        timezone=timezone,
        price_periods=_price_periods(days, prices),
        days=[
            DayCategories(
                date=day.isoformat(),
                admin=counted[Category.ADMIN.value],
                product=counted[Category.PRODUCT.value],
                unknown=counted[Category.UNKNOWN.value],
            )
            for day, counted in sorted(per_day.items())
        ],
    )


def _price_table(prices: PriceList | None) -> dict[str, dict[str, float]] | None:
    if prices is None or prices.costs is None:
        return None
    return {
        kind: {channel: _unit(price) for channel, price in by.items()}
        for kind, by in unit_prices(prices.costs).items()
    }


def _price_periods(
    days: Sequence[date], prices: Mapping[date, PriceList | None]
) -> list[PricePeriod]:
    """The period's days cut where the prices (or their currency) change."""
    periods: list[PricePeriod] = []
    for day in days:
        today = prices.get(day)
        table = _price_table(today)
        currency = today.costs.currency if today is not None and today.costs else None
        version = [] if today is None else [today.version]
        previous = periods[-1] if periods else None
        if previous is not None and (previous.prices, previous.currency) == (table, currency):
            periods[-1] = previous.model_copy(
                update={
                    "last_day": day.isoformat(),
                    "versions": sorted({*previous.versions, *version}),
                }
            )
        else:
            periods.append(
                PricePeriod(
                    first_day=day.isoformat(),
                    last_day=day.isoformat(),
                    versions=version,
                    currency=currency,
                    prices=table,
                )
            )
    return periods


def _runs_cost(runs: Sequence[PriceRun]) -> Decimal | None:
    total = Decimal(0)
    for run in runs:
        if run.amount is None:
            return None
        total += run.amount
    return total


def _section(
    channel: str,
    tallies: Mapping[str, _Tally],
    categories: Counter[str],
    kinds: Mapping[str, str],
    pricing: _Pricing,
    notes: list[str],
) -> ReportSection:
    lines: list[DestinationFigures] = []
    actual: Decimal | None = Decimal(0)
    for name in _ordered(tallies, kinds):
        tally = tallies.get(name, _Tally())
        kind = kind_of(name, kinds)
        cost: Decimal | None = None
        unit: Decimal | None = None
        if pricing.priced:
            lists = pricing.lists
            price = partial(pricing.at_destination, name=name, channel=channel)
            runs = price_runs(pricing.days, tally.handled_on, price)
            cost = _runs_cost(runs)
            unit = _line_unit(runs, channel, name, notes)
            for run in runs:
                if run.amount is None:
                    notes.append(_missing_price(channel, name, run, pricing, lists))
        actual = None if actual is None or cost is None else actual + cost
        lines.append(
            DestinationFigures(
                name=name,
                kind=kind,
                contacts=tally.contacts,
                handled=tally.handled,
                redirected_in=tally.redirected_in,
                redirected_out=tally.redirected_out,
                outcomes=dict(sorted(tally.outcomes.items())),
                unit_cost=None if unit is None else _unit(unit),
                cost=_number(cost),
            )
        )
    handled = sum(line.handled for line in lines)
    in_house: Decimal | None = None
    if pricing.priced:
        handled_on: Counter[date] = Counter()
        for tally in tallies.values():
            handled_on.update(tally.handled_on)
        runs = price_runs(
            pricing.days, handled_on, lambda day: pricing.price(day, "in_house", channel)
        )
        in_house = _runs_cost(runs)
        if in_house is None:
            notes.append(
                f"{channel}: no in-house rate (costs.in_house.per_hour.{channel}), so the "
                "all-in-house comparison is null"
            )
    return ReportSection(
        contacts=sum(line.contacts for line in lines),
        handled=handled,
        categories=_categories(categories),
        destinations=lines,
        cost=_comparison(actual if pricing.priced else None, in_house),
    )


def _line_unit(
    runs: Sequence[PriceRun], channel: str, name: str, notes: list[str]
) -> Decimal | None:
    """The one price of a destination's handled contacts on a channel; without any, the
    price of the period's last day. Several prices: None, and a note listing them."""
    billed = [run for run in runs if run.handled]
    units = {run.unit for run in billed}
    if not billed:
        return runs[-1].unit if runs else None
    if len(units) == 1:
        return units.pop()
    listed = "; ".join(
        f"{'no price' if run.unit is None else f'{_unit(run.unit):g}'} from {run.first_day} "
        f"to {run.last_day} ({run.handled} handled)"
        for run in billed
    )
    notes.append(
        f"{channel}: {name!r} was priced at several prices over the period ({listed}), so "
        "its unit cost is null"
    )
    return None


def _missing_price(
    channel: str,
    name: str,
    run: PriceRun,
    pricing: _Pricing,
    lists: Mapping[date, PriceList | None],
) -> str:
    today = lists.get(run.first_day)
    version = run.versions[-1] if run.versions else 0
    days = (
        f" on {run.first_day}"
        if run.first_day == run.last_day
        else f" from {run.first_day} to {run.last_day}"
    )
    uncosted = f"{run.handled} handled contact(s) at {name!r}{days} are not costed"
    if today is None:
        return f"{channel}: no routing version was in force{days}: {uncosted}"
    if today.costs is None:
        return f"{channel}: routing version {version} has no costs section: {uncosted}"
    if run.currency != pricing.currency:
        return (
            f"{channel}: routing version {version} prices in {run.currency}, not in "
            f"{pricing.currency}: {uncosted}"
        )
    kind = today.kind(name)
    where = {
        "external": f"no partner price for {channel} (costs.partner.{channel})",
        "in_house": f"no in-house rate for {channel} (costs.in_house.per_hour.{channel})",
    }.get(kind, f"destination {name!r} is not in routing version {version}, so its kind is unknown")
    return f"{channel}: {where}: {uncosted}"


def _categories(counted: Mapping[str, int]) -> dict[str, int]:
    known = {category.value: counted.get(category.value, 0) for category in Category}
    return {**known, **{name: n for name, n in sorted(counted.items()) if name not in known}}


def _comparison(actual: Decimal | None, in_house: Decimal | None) -> CostComparison:
    difference = None if actual is None or in_house is None else actual - in_house
    return CostComparison(
        actual=_number(actual), all_in_house=_number(in_house), difference=_number(difference)
    )


def _sum(values: Iterable[float | None]) -> Decimal | None:
    """The exact sum of cent figures, None when any is unknown."""
    total = Decimal(0)
    for value in values:
        if value is None:
            return None
        total += Decimal(str(value))
    return total


def _total(
    sections: Sequence[ReportSection], kinds: Mapping[str, str], *, priced: bool
) -> ReportSection:
    by_name: dict[str, list[DestinationFigures]] = {}
    for section in sections:
        for line in section.destinations:
            by_name.setdefault(line.name, []).append(line)
    lines = []
    for name in _ordered(by_name, kinds):
        parts = by_name[name]
        outcomes: Counter[str] = Counter()
        for part in parts:
            outcomes.update(part.outcomes)
        lines.append(
            DestinationFigures(
                name=name,
                kind=parts[0].kind,
                contacts=sum(part.contacts for part in parts),
                handled=sum(part.handled for part in parts),
                redirected_in=sum(part.redirected_in for part in parts),
                redirected_out=sum(part.redirected_out for part in parts),
                outcomes=dict(sorted(outcomes.items())),
                unit_cost=None,  # a price is per channel
                cost=_number(_sum(part.cost for part in parts)) if priced else None,
            )
        )
    categories: Counter[str] = Counter()
    for section in sections:
        categories.update(section.categories)
    return ReportSection(
        contacts=sum(section.contacts for section in sections),
        handled=sum(section.handled for section in sections),
        categories=_categories(categories),
        destinations=lines,
        cost=_comparison(
            _sum(section.cost.actual for section in sections) if priced else None,
            _sum(section.cost.all_in_house for section in sections) if priced else None,
        ),
    )


# -- text --------------------------------------------------------------------------------------


def _amount(value: float | None, currency: str | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.2f} {currency}" if currency else f"{value:,.2f}"


def _section_text(title: str, section: ReportSection, currency: str | None) -> list[str]:
    lines = [f"{title}: {section.contacts} contact(s), {section.handled} handled"]
    shown = [d for d in section.destinations if d.contacts or d.redirected_out]
    if shown:
        lines.append(
            f"  {'destination':14} {'kind':9} {'contacts':>8} {'handled':>8} "
            f"{'unit':>8} {'cost':>10}  outcomes"
        )
    for line in shown:
        name = line.name or "(none)"
        unit = "" if line.unit_cost is None else f"{line.unit_cost:g}"
        cost = "n/a" if line.cost is None else f"{line.cost:,.2f}"
        moved = []
        if line.redirected_in:
            moved.append(f"{line.redirected_in} redirected here")
        if line.redirected_out:
            moved.append(f"{line.redirected_out} redirected away")
        outcomes = ", ".join(f"{outcome} {n}" for outcome, n in line.outcomes.items())
        extra = "; ".join([item for item in (outcomes, *moved) if item])
        lines.append(
            f"  {name:14} {line.kind:9} {line.contacts:>8} {line.handled:>8} "
            f"{unit:>8} {cost:>10}  {extra}"
        )
    lines.append(
        "  categories: " + ", ".join(f"{name} {n}" for name, n in section.categories.items())
    )
    comparison = section.cost
    verdict = ""
    if comparison.difference is not None and comparison.difference < 0:
        verdict = f" (outsourcing saves {_amount(-comparison.difference, currency)})"
    elif comparison.difference is not None and comparison.difference > 0:
        verdict = f" (outsourcing costs {_amount(comparison.difference, currency)} more)"
    lines.append(
        f"  cost {_amount(comparison.actual, currency)}; all in-house "
        f"{_amount(comparison.all_in_house, currency)}; difference "
        f"{_amount(comparison.difference, currency)}{verdict}"
    )
    return lines


def admin_share(day: DayCategories) -> float | None:
    """admin / (admin + product): the share the 80/20 rule of thumb speaks of (contacts no
    rule could place, unknown, are left out); None on a day without either."""
    decided = day.admin + day.product
    return None if decided == 0 else day.admin / decided


def _versions(numbers: Sequence[int]) -> str:
    if not numbers:
        return "no routing version"
    if len(numbers) == 1:
        return f"version {numbers[0]}"
    return f"versions {numbers[0]}-{numbers[-1]}"


def _price_lines(prices: Mapping[str, Mapping[str, float]] | None, indent: str) -> list[str]:
    if prices is None:
        return [f"{indent}no costs section"]
    return [
        f"{indent}per handled contact, {kind}: "
        + (", ".join(f"{ch} {price:g}" for ch, price in by_channel.items()) or "no prices")
        for kind, by_channel in prices.items()
    ]


def render_text(report: Report) -> str:
    """The report as ``switchboard report`` prints it."""
    lines = [
        f"contacts received from {report.since} until {report.until}",
        f"prices in force on each contact's day ({report.timezone}); on the last day routing "
        f"version {report.prices_version}"
        + (f", in {report.currency}" if report.currency else ": none (no costs section)"),
    ]
    if len(report.price_periods) > 1:
        for period in report.price_periods:
            lines.append(
                f"  {period.first_day} to {period.last_day} ({_versions(period.versions)})"
                + (f", in {period.currency}" if period.currency else "")
            )
            lines.extend(_price_lines(period.prices, "    "))
    elif report.prices is not None:
        lines.extend(_price_lines(report.prices, "  "))
    for channel, section in report.channels.items():
        lines.append("")
        lines.extend(_section_text(channel, section, report.currency))
    lines.append("")
    lines.extend(_section_text("total", report.total, report.currency))
    lines.append("")
    lines.append(f"per day ({report.timezone}; admin share = admin / (admin + product)):")
    lines.append(f"  {'day':10} {'admin':>7} {'product':>7} {'unknown':>7} {'admin share':>12}")
    for day in report.days:
        share = admin_share(day)
        shown = "-" if share is None else f"{100 * share:.0f} %"
        lines.append(
            f"  {day.date:10} {day.admin:>7} {day.product:>7} {day.unknown:>7} {shown:>12}"
        )
    lines.extend(notes_lines(report.notes))
    return "\n".join(lines)


#: ``report --format csv``: one row per channel (and "total") and destination, then one
#: "(all)" row per channel with the comparison with all in-house.
CSV_COLUMNS = (
    "channel",
    "destination",
    "kind",
    "contacts",
    "handled",
    "redirected_in",
    "redirected_out",
    "unit_cost",
    "cost",
    "all_in_house",
    "difference",
    "currency",
)
#: ``report --format csv --per-day``
DAYS_CSV_COLUMNS = ("date", "admin", "product", "unknown", "contacts", "admin_share")


def _cents(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def render_csv(report: Report) -> str:
    """The per-destination figures, one table (RFC 4180; empty cells for null)."""
    rows: list[list[object]] = []
    for channel, section in [*report.channels.items(), ("total", report.total)]:
        for line in section.destinations:
            rows.append(
                [
                    channel,
                    line.name,
                    line.kind,
                    line.contacts,
                    line.handled,
                    line.redirected_in,
                    line.redirected_out,
                    line.unit_cost,
                    _cents(line.cost),
                    "",
                    "",
                    report.currency,
                ]
            )
        rows.append(
            [
                channel,
                "(all)",
                "",
                section.contacts,
                section.handled,
                "",
                "",
                "",
                _cents(section.cost.actual),
                _cents(section.cost.all_in_house),
                _cents(section.cost.difference),
                report.currency,
            ]
        )
    return csv_text(CSV_COLUMNS, rows)


def render_days_csv(report: Report) -> str:
    """The per-day series: contacts per day by category, and the admin share (0-1)."""
    rows = []
    for day in report.days:
        contacts = day.admin + day.product + day.unknown
        share = admin_share(day)
        shown = None if share is None else f"{share:.4f}"
        rows.append([day.date, day.admin, day.product, day.unknown, contacts, shown])
    return csv_text(DAYS_CSV_COLUMNS, rows)


def csv_filename(report: Report, *, per_day: bool = False) -> str:
    """``report-2026-11-16-2026-11-23.csv`` (``report-days-…`` per day): the period's UTC
    dates."""
    since = datetime.fromisoformat(report.since).date().isoformat()
    until = datetime.fromisoformat(report.until).date().isoformat()
    return f"report{'-days' if per_day else ''}-{since}-{until}.csv"
