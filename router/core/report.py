"""What contacts went where over a period, and what that cost: ``switchboard report`` and
``GET /api/report``.

Pure: the counts the store aggregates (channel, final and first destination, category,
outcome -> contacts) and the routing document's ``costs`` in, a :class:`Report` out. No I/O,
no clock; the period is an argument. The report is a pydantic model so that the CLI reads
the API's answer back into the very model it renders locally (one renderer, one shape), and
the OpenAPI schema is generated from it.

The billing rule lives here and nowhere else. A contact is **handled** by its *final*
destination when it reached someone there:

* a call: outcome ``answered`` (the ``<Dial>`` to the destination or to its fallback was
  answered). A call that rang out, went to voicemail, was abandoned in the IVR menu, or has
  no dial result yet was not handled: nobody at the destination talked to the caller.
* an email or a chat message: outcome ``delivered`` (the outbox handed it to the
  destination's mailbox or chat endpoint). A forward still waiting, moved to the fallback
  and not yet delivered, failed, or without an address was not handled. One delivered to the
  fallback is handled by the fallback, which is its final destination.

Only handled contacts cost anything: at an ``external`` destination the partner's price per
interaction of the channel (``costs.partner``), at an ``in_house`` one the staffed hour
divided by the contacts handled per hour (``costs.in_house``). The comparison prices the
same handled contacts at the in-house rate: what the work would have cost before
outsourcing. Money is computed in decimals and rounded to cents per destination and
channel; every sum is a sum of those rounded figures, so the printed numbers add up.

A figure that needs a price the document does not give is null, never a guess, and a note
says which price is missing; the other channels keep their figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from router.core.contact import Category, Channel
from router.core.document import Costs

__all__ = [
    "DEFAULT_SINCE",
    "HANDLED_OUTCOME",
    "CostComparison",
    "Count",
    "DestinationFigures",
    "Report",
    "ReportSection",
    "build_report",
    "is_handled",
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

Kind = Literal["external", "in_house", "unknown", "none"]
_CENT = Decimal("0.01")
_UNIT = Decimal("0.0001")  # in-house unit prices are divisions (22 / 12): keep 4 places
_NO_OUTCOME = "none"  # a row written without an outcome (none of ours does; never crash)


def is_handled(channel: str, outcome: str | None) -> bool:
    """Whether a contact of *channel* with *outcome* reached its final destination."""
    return outcome is not None and HANDLED_OUTCOME.get(channel) == outcome


@dataclass(frozen=True, slots=True)
class Count:
    """One group of interactions as the store aggregates them."""

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
        description="price per handled contact (per channel only; null in the total)"
    )
    cost: float | None = Field(description="handled x unit cost; null when a price is missing")


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


class Report(_View):
    since: str = Field(description="start of the period (inclusive), by received_at")
    until: str = Field(description="end of the period (exclusive)")
    prices_version: int = Field(
        description="the routing version whose costs section prices the report: the current one"
    )
    currency: str | None = Field(description="null: that version has no costs section")
    prices: dict[str, dict[str, float]] | None = Field(
        description="kind (external, in_house) -> channel -> price per handled contact"
    )
    channels: dict[str, ReportSection] = Field(description="phone, email, chat")
    total: ReportSection
    notes: list[str] = Field(description="why a figure is null, and other caveats")


# -- computing it ----------------------------------------------------------------------------


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def unit_prices(costs: Costs) -> dict[str, dict[str, Decimal]]:
    """kind -> channel -> price per handled contact; a channel without a price is absent."""
    hourly = Decimal(str(costs.in_house.hourly))
    partner, per_hour = costs.partner, costs.in_house.per_hour
    return {  # in the channels' own order (phone, email, chat), as every section is
        "external": {ch.value: Decimal(str(partner[ch])) for ch in Channel if ch in partner},
        "in_house": {ch.value: hourly / per_hour[ch] for ch in Channel if ch in per_hour},
    }


def _kind_of(name: str, kinds: Mapping[str, str]) -> Kind:
    if not name:
        return "none"
    kind = kinds.get(name)
    if kind == "external":
        return "external"
    if kind == "in_house":
        return "in_house"
    return "unknown"


@dataclass(slots=True)
class _Tally:
    contacts: int = 0
    handled: int = 0
    redirected_in: int = 0
    redirected_out: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


def _ordered(names: Iterable[str], kinds: Mapping[str, str]) -> list[str]:
    """Every destination of the current document and every other one named, by name; ""
    (no destination) last. The document's own are listed even without contacts, so the
    shape of a quiet week is the shape of a busy one."""
    seen = set(names)
    return sorted((seen | set(kinds)) - {""}) + ([""] if "" in seen else [])


def build_report(
    counts: Iterable[Count],
    *,
    kinds: Mapping[str, str],
    costs: Costs | None,
    prices_version: int,
    since: datetime,
    until: datetime,
) -> Report:
    """The report of *counts* (interactions received in [*since*, *until*)), priced with
    *costs* of routing version *prices_version*, whose destinations have *kinds* (name ->
    ``external`` | ``in_house``)."""
    counts = list(counts)
    channels = [c.value for c in Channel]
    channels += sorted({row.channel for row in counts} - set(channels))
    tallies: dict[str, dict[str, _Tally]] = {channel: {} for channel in channels}
    categories: dict[str, Counter[str]] = {channel: Counter() for channel in channels}
    for row in counts:
        per_destination = tallies[row.channel]
        final = per_destination.setdefault(row.destination, _Tally())
        final.contacts += row.contacts
        final.outcomes[row.outcome or _NO_OUTCOME] += row.contacts
        if is_handled(row.channel, row.outcome):
            final.handled += row.contacts
        if row.first_destination != row.destination:
            final.redirected_in += row.contacts
            per_destination.setdefault(
                row.first_destination, _Tally()
            ).redirected_out += row.contacts
        categories[row.channel][row.category] += row.contacts

    prices = unit_prices(costs) if costs is not None else None
    notes: list[str] = []
    if costs is None:
        notes.append(
            f"routing version {prices_version} has no costs section: contacts are counted, "
            "costs are null (add costs: to the routing document to price them)"
        )
    sections = {
        channel: _section(
            channel, tallies[channel], categories[channel], kinds, prices, prices_version, notes
        )
        for channel in channels
    }
    return Report(
        since=since.astimezone(UTC).isoformat(),
        until=until.astimezone(UTC).isoformat(),
        prices_version=prices_version,
        currency=costs.currency if costs is not None else None,
        prices=None
        if prices is None
        else {
            kind: {
                ch: float(price.quantize(_UNIT, rounding=ROUND_HALF_UP)) for ch, price in by.items()
            }
            for kind, by in prices.items()
        },
        channels=sections,
        total=_total(list(sections.values()), kinds, priced=prices is not None),
        notes=notes,
    )


def _section(
    channel: str,
    tallies: Mapping[str, _Tally],
    categories: Counter[str],
    kinds: Mapping[str, str],
    prices: Mapping[str, Mapping[str, Decimal]] | None,
    version: int,
    notes: list[str],
) -> ReportSection:
    lines: list[DestinationFigures] = []
    actual: Decimal | None = Decimal(0)
    for name in _ordered(tallies, kinds):
        tally = tallies.get(name, _Tally())
        kind = _kind_of(name, kinds)
        unit = None if prices is None else prices.get(kind, {}).get(channel)
        cost: Decimal | None
        if prices is None:
            cost = None
        elif tally.handled == 0:
            cost = Decimal(0)  # nothing handled costs nothing, whatever the price
        elif unit is None:
            cost = None
            notes.append(_missing_price(channel, name, kind, tally.handled, version))
        else:
            cost = _money(unit * tally.handled)
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
                unit_cost=None
                if unit is None
                else float(unit.quantize(_UNIT, rounding=ROUND_HALF_UP)),
                cost=_number(cost),
            )
        )
    handled = sum(line.handled for line in lines)
    in_house: Decimal | None = None
    if prices is not None:
        rate = prices["in_house"].get(channel)
        if handled == 0:
            in_house = Decimal(0)
        elif rate is not None:
            in_house = _money(rate * handled)
        else:
            notes.append(
                f"{channel}: no in-house rate (costs.in_house.per_hour.{channel}), so the "
                "all-in-house comparison is null"
            )
    return ReportSection(
        contacts=sum(line.contacts for line in lines),
        handled=handled,
        categories=_categories(categories),
        destinations=lines,
        cost=_comparison(actual if prices is not None else None, in_house),
    )


def _missing_price(channel: str, name: str, kind: Kind, handled: int, version: int) -> str:
    where = {
        "external": f"no partner price for {channel} (costs.partner.{channel})",
        "in_house": f"no in-house rate for {channel} (costs.in_house.per_hour.{channel})",
    }.get(kind, f"destination {name!r} is not in routing version {version}, so its kind is unknown")
    return f"{channel}: {where}: {handled} handled contact(s) at {name!r} are not costed"


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


def render_text(report: Report) -> str:
    """The report as ``switchboard report`` prints it."""
    lines = [
        f"contacts received from {report.since} until {report.until}",
        f"prices from the current routing version ({report.prices_version})"
        + (f", in {report.currency}" if report.currency else ": none (no costs section)"),
    ]
    if report.prices is not None:
        for kind, by_channel in report.prices.items():
            listed = ", ".join(f"{ch} {price:g}" for ch, price in by_channel.items())
            lines.append(f"  per handled contact, {kind}: {listed or 'no prices'}")
    for channel, section in report.channels.items():
        lines.append("")
        lines.extend(_section_text(channel, section, report.currency))
    lines.append("")
    lines.extend(_section_text("total", report.total, report.currency))
    if report.notes:
        lines.append("")
        lines.append("notes:")
        lines.extend(f"  - {note}" for note in report.notes)
    return "\n".join(lines)
