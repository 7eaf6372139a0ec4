"""How many agents the in-house hotline needs, hour by hour of the week: ``switchboard
staffing`` and ``GET /api/staffing``.

Pure: the recorded calls of a period (as the store reads them), the routing document in
force and a target in, a :class:`Staffing` out. No I/O, no clock; the period is an argument.
Like the report, the answer is a pydantic model, so the CLI reads the API's answer back into
the model it renders locally and the OpenAPI schema is generated from it.

What is counted, and why:

* **Which calls reach the hotline.** Every recorded call that left the IVR menu (a caller
  who hung up in the menu was never offered to anyone) is *replayed* through a routing
  document at the moment it arrived (``router.core.decide.place``: its category, its
  customer's bucket against the cut-over share, the destinations' opening hours and
  fallbacks). It is offered to the hotline when it lands on an ``in_house`` destination.
  Replaying, not scaling, because stickiness makes the split exact per customer and the
  hours decide per call: a share of 40 % does not send 40 % of every hour's calls in-house.
  Two documents are replayed: the one **in force** ("current": product calls plus whatever
  share of admin and unknown calls the cut-over still leaves in-house) and the same document
  with every share at 0 ("all in-house": the baseline routing, as before outsourcing,
  where a rollback returns). A call that rang out unanswered counts: it was offered.
* **Calls per hour.** Per hour of the week in the document's timezone: the calls that
  arrived in that hour over the period, divided by how often that hour occurred in it
  (4 for every hour over 28 days; daylight saving time moves an hour in and out). Both ends
  of the period are rounded down to whole hours of that timezone.
* **Handle time.** An answered call's handle time is its ``DialCallDuration``, the time
  connected to the destination that answered. A call recorded before that was kept (schema
  0006) has only its whole duration (``CallDuration``: menu and ringing included), which is
  used instead and overstates the handle time; a note counts such calls. Unanswered calls
  and voicemails have none. The average handle time of an hour is that of its own calls;
  an hour whose calls have no handle time takes the scenario's average over the period.
* **Agents.** Erlang C (``router.core.erlang``): the fewest agents that answer the target
  share of the offered calls within the target wait, with the occupancy, service level
  and average speed of answer they achieve. It assumes callers wait as long as it takes.
  Given a mean *patience*, Erlang A (``router.core.erlang_a``) instead: callers hang up
  after waiting that long on average, a hung-up call counts as not answered in time, and
  the share who hang up is reported. An hour without calls needs no agent. Agents are
  people on the phone: breaks, holidays and sick leave (shrinkage) come on top.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from router.core.contact import Category, Channel
from router.core.document import RoutingDocument
from router.core.erlang import agents_needed
from router.core.erlang_a import agents_needed_a
from router.core.figures_text import csv_text, notes_lines
from router.core.lifecycle import Outcome
from router.core.migration import rolled_back

__all__ = [
    "DEFAULT_SINCE",
    "DEFAULT_TARGET",
    "SCENARIOS",
    "WEEKDAYS",
    "RecordedCall",
    "Staffing",
    "StaffingError",
    "StaffingHour",
    "StaffingScenario",
    "Target",
    "build_staffing",
    "csv_filename",
    "parse_target",
    "render_csv",
    "render_table",
    "whole_hours",
]

#: The period looked at when no start is given: four whole weeks, each hour of the week 4 times.
DEFAULT_SINCE = "28d"
#: The share of calls to answer within the wait, as ``switchboard staffing --target`` takes it.
DEFAULT_TARGET = "80/20"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ScenarioName = Literal["current", "all_in_house"]
SCENARIOS: tuple[ScenarioName, ...] = ("current", "all_in_house")
_HOUR = timedelta(hours=1)
_TARGET = re.compile(r"([0-9]+(?:\.[0-9]+)?)/([0-9]+)s?")


class StaffingError(ValueError):
    """The question cannot be answered as asked (a period without a whole hour)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Answer *percent* % of calls within *seconds* seconds."""

    percent: float
    seconds: int

    @property
    def text(self) -> str:
        return f"{self.percent:g}/{self.seconds}"


def parse_target(text: str) -> Target:
    """``"80/20"`` -> 80 % within 20 s; ValueError naming the accepted form otherwise."""
    match = _TARGET.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"invalid target {text!r}: expected PERCENT/SECONDS, such as 80/20 "
            "(80 % of calls answered within 20 seconds)"
        )
    percent, seconds = float(match.group(1)), int(match.group(2))
    if not 0 < percent < 100:
        raise ValueError(
            f"invalid target {text!r}: the percentage must be above 0 and below 100 "
            "(no number of agents answers every call in time)"
        )
    return Target(percent, seconds)


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One recorded call that left the IVR menu, as staffing needs it."""

    category: Category
    bucket: float
    received_at: datetime
    outcome: str | None
    talk_seconds: int | None  # DialCallDuration of the answered <Dial>
    call_seconds: int | None  # CallDuration of the whole call (status callback)

    def handle_time(self) -> tuple[int | None, bool]:
        """The handle time in seconds, and whether it is the whole call's duration."""
        if self.outcome != Outcome.ANSWERED.value:
            return None, False
        if self.talk_seconds is not None:
            return self.talk_seconds, False
        return self.call_seconds, self.call_seconds is not None


def whole_hours(since: datetime, until: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """[*since*, *until*) cut to whole hours of *zone*: both ends rounded down to the hour,
    so "the last 28 days" is 28 x 24 whole hours, each hour of the week 4 times, and the
    hour in progress is left for the next run."""
    first = since.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    last = until.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    first_utc, last_utc = first.astimezone(UTC), last.astimezone(UTC)
    if first_utc >= last_utc:
        raise StaffingError(
            f"the period from {since.astimezone(UTC).isoformat()} to "
            f"{until.astimezone(UTC).isoformat()} holds no whole hour"
        )
    return first_utc, last_utc


# -- the view --------------------------------------------------------------------------------


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class StaffingHour(_View):
    weekday: str = Field(description="mon ... sun, in the routing document's timezone")
    hour: int = Field(ge=0, le=23, description="the hour starting at HH:00 local time")
    occurrences: int = Field(description="how often this hour of the week occurred in the period")
    calls: int = Field(description="calls offered in this hour over the whole period")
    calls_per_hour: float | None = Field(
        description="calls / occurrences: the offered rate (null: the hour never occurred)"
    )
    aht_seconds: float | None = Field(description="average handle time of these calls")
    erlangs: float | None = Field(description="offered traffic: calls per hour x AHT / 3600")
    agents: int | None = Field(description="the fewest agents that meet the target (Erlang C)")
    occupancy: float | None = Field(description="erlangs / agents; null without agents")
    service_level: float | None = Field(
        description="share of calls answered within the target wait with these agents"
    )
    asa_seconds: float | None = Field(
        description="average wait of the calls with these agents (Erlang A: of all callers, "
        "those who hang up too)"
    )
    abandoned: float | None = Field(
        description="Erlang A: share of the calls whose callers hang up while waiting"
    )


class StaffingScenario(_View):
    description: str
    calls: int = Field(description="calls offered to the in-house destinations in the period")
    timed_calls: int = Field(description="of those, answered calls with a handle time")
    aht_seconds: float | None = Field(description="their average handle time")
    peak_agents: int | None = Field(description="the most agents any hour of the week needs")
    agent_hours: int | None = Field(
        description="agents summed over the 168 hours of the week: staffed hours a week"
    )
    hours: list[StaffingHour] = Field(description="every hour of the week, mon 00 first")


class StaffingTarget(_View):
    percent: float = Field(description="share of calls to answer within the wait, %")
    seconds: int = Field(description="the wait, seconds")


class Staffing(_View):
    since: str = Field(description="start of the period (inclusive), rounded down to a whole hour")
    until: str = Field(description="end of the period (exclusive), rounded down to a whole hour")
    timezone: str = Field(description="the routing document's timezone: hours are local")
    version: int = Field(description="the routing version in force, replayed as current")
    target: StaffingTarget
    model: Literal["erlang_c", "erlang_a"] = Field(
        description="erlang_c: callers wait as long as it takes; erlang_a: they hang up after "
        "patience_seconds on average"
    )
    patience_seconds: float | None = Field(description="Erlang A: callers' mean patience")
    destinations: list[str] = Field(description="the in-house destinations, staffed as one")
    scenarios: dict[ScenarioName, StaffingScenario] = Field(
        description="current: the routing in force; all_in_house: every share at 0 (baseline)"
    )
    notes: list[str]


_DESCRIPTIONS: dict[ScenarioName, str] = {
    "current": "calls the in-house destinations get under the routing in force",
    "all_in_house": "every call routed by baseline, as before outsourcing (all shares at 0)",
}


# -- computing it ------------------------------------------------------------------------------


def _slot(moment: datetime, zone: tzinfo) -> tuple[int, int]:
    local = moment.astimezone(zone)
    return local.weekday(), local.hour


def _occurrences(since: datetime, until: datetime, zone: tzinfo) -> Counter[tuple[int, int]]:
    seen: Counter[tuple[int, int]] = Counter()
    moment = since
    while moment < until:
        seen[_slot(moment, zone)] += 1
        moment += _HOUR
    return seen


def build_staffing(
    calls: Iterable[RecordedCall],
    document: RoutingDocument,
    *,
    version: int,
    since: datetime,
    until: datetime,
    target: Target,
    patience: float | None = None,
) -> Staffing:
    """The staffing of the in-house destinations of *document* (routing version *version*)
    for the *calls* received in [*since*, *until*) (whole hours of the document's timezone,
    see :func:`whole_hours`), to answer *target*; with Erlang A when callers' mean
    *patience* (seconds) is given, else Erlang C."""
    if patience is not None and not (patience > 0 and math.isfinite(patience)):
        raise StaffingError(f"the patience must be a positive number of seconds, not {patience}")
    # imported here, as impact previews do: deciding pulls in the classifier's module
    from router.core.decide import place

    calls = list(calls)
    zone = document.zone
    in_house = [name for name in document.destinations if not document.is_external(name)]
    occurrences = _occurrences(since, until, zone)
    notes: list[str] = []
    scenarios: dict[ScenarioName, StaffingScenario] = {}
    replays: tuple[tuple[ScenarioName, RoutingDocument], ...] = (
        ("current", document),
        ("all_in_house", rolled_back(document)),
    )
    for name, replayed in replays:
        offered = [
            call
            for call in calls
            if place(Channel.PHONE, call.category, call.bucket, replayed, call.received_at)[1]
            in in_house
        ]
        scenarios[name] = _scenario(name, offered, occurrences, zone, target, patience, notes)
    if len(occurrences) < len(WEEKDAYS) * 24:
        notes.append(
            f"the period covers {len(occurrences)} of the 168 hours of the week: the others "
            "have no figures (look at 7 days or more)"
        )
    return Staffing(
        since=since.astimezone(UTC).isoformat(),
        until=until.astimezone(UTC).isoformat(),
        timezone=document.timezone,
        version=version,
        target=StaffingTarget(percent=target.percent, seconds=target.seconds),
        model="erlang_c" if patience is None else "erlang_a",
        patience_seconds=patience,
        destinations=in_house,
        scenarios=scenarios,
        notes=notes,
    )


def _mean(values: Sequence[int]) -> float | None:
    return sum(values) / len(values) if values else None


def _scenario(
    name: ScenarioName,
    offered: Sequence[RecordedCall],
    occurrences: Counter[tuple[int, int]],
    zone: tzinfo,
    target: Target,
    patience: float | None,
    notes: list[str],
) -> StaffingScenario:
    per_slot: dict[tuple[int, int], list[RecordedCall]] = {}
    for call in offered:
        per_slot.setdefault(_slot(call.received_at, zone), []).append(call)
    timed: list[int] = []
    whole_call = 0
    for call in offered:
        seconds, is_whole_call = call.handle_time()
        if seconds is not None:
            timed.append(seconds)
            whole_call += is_whole_call
    overall = _mean(timed)
    if whole_call:
        notes.append(
            f"{name}: {whole_call} answered call(s) have no talk time (DialCallDuration, kept "
            "since schema 0006); their whole duration (CallDuration, with the menu and the "
            "ringing) is used, which overstates the handle time"
        )
    if offered and overall is None:
        notes.append(
            f"{name}: no offered call has a handle time (none was answered with a duration "
            "recorded): the traffic and the agents are unknown"
        )
    hours = [
        _hour(
            day,
            hour,
            per_slot.get((day, hour), []),
            occurrences[(day, hour)],
            overall,
            target,
            patience,
        )
        for day in range(len(WEEKDAYS))
        for hour in range(24)
    ]
    agents = [hour.agents for hour in hours if hour.agents is not None]
    known = bool(agents) and (overall is not None or not offered)
    return StaffingScenario(
        description=_DESCRIPTIONS[name],
        calls=len(offered),
        timed_calls=len(timed),
        aht_seconds=None if overall is None else round(overall, 1),
        peak_agents=max(agents) if known else None,
        agent_hours=sum(agents) if known else None,
        hours=hours,
    )


def _hour(
    day: int,
    hour: int,
    calls: Sequence[RecordedCall],
    occurrences: int,
    overall_aht: float | None,
    target: Target,
    patience: float | None,
) -> StaffingHour:
    times = [s for s in (call.handle_time()[0] for call in calls) if s is not None]
    aht = _mean(times) if times else overall_aht
    rate = len(calls) / occurrences if occurrences else None
    result = None
    if rate is not None and calls and aht is not None and aht > 0:
        erlangs, share = rate * aht / 3600, target.percent / 100
        result = (
            agents_needed(erlangs, aht, share, target.seconds)
            if patience is None
            else agents_needed_a(erlangs, aht, patience, share, target.seconds)
        )
    return StaffingHour(
        weekday=WEEKDAYS[day],
        hour=hour,
        occurrences=occurrences,
        calls=len(calls),
        calls_per_hour=None if rate is None else round(rate, 4),
        aht_seconds=None if not calls or aht is None else round(aht, 1),
        # an hour that occurred without calls needs nobody; one with calls of unknown
        # handle time needs an unknown number
        erlangs=round(result.traffic, 4) if result else 0.0 if rate == 0 else None,
        agents=result.agents if result else 0 if rate == 0 else None,
        occupancy=round(result.occupancy, 4) if result else None,
        service_level=round(result.service_level, 4) if result else None,
        asa_seconds=round(result.asa, 1) if result and math.isfinite(result.asa) else None,
        abandoned=round(result.abandoned, 4) if result and patience is not None else None,
    )


# -- output ------------------------------------------------------------------------------------


def _cell(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def render_table(staffing: Staffing) -> str:
    """The staffing as ``switchboard staffing`` prints it: the hours with calls in either
    scenario, side by side, and each scenario's totals."""
    target = staffing.target
    lines = [
        f"in-house staffing ({', '.join(staffing.destinations) or 'no in-house destination'}) "
        f"from {staffing.since} until {staffing.until}",
        f"hours in {staffing.timezone}; routing version {staffing.version}; target "
        f"{target.percent:g} % of calls answered within {target.seconds} s ({_model(staffing)})",
        "",
    ]
    current, all_in = staffing.scenarios["current"], staffing.scenarios["all_in_house"]
    erlang_a = staffing.patience_seconds is not None
    columns = f"{'calls/h':>8} {'AHT s':>6} {'erlangs':>8} {'agents':>6} {'occ':>6} {'SL':>6}"
    columns += f" {'hang up':>7}" if erlang_a else ""
    width = len(columns)
    lines.append(f"{'':12}{'current shares':^{width}}   {'all in-house':^{width}}")
    lines.append(f"{'hour':12}{columns}   {columns}")
    shown = 0
    for now, before in zip(current.hours, all_in.hours, strict=True):
        if not (now.calls or before.calls):
            continue
        shown += 1
        lines.append(
            f"{now.weekday} {now.hour:02d}-{(now.hour + 1) % 24:02d}  "
            f"{_row(now, erlang_a)}   {_row(before, erlang_a)}"
        )
    if not shown:
        lines.append("(no calls reached the in-house destinations in the period)")
    lines.append("")
    for label, scenario in (("current shares", current), ("all in-house", all_in)):
        lines.append(
            f"{label}: {scenario.calls} call(s), {scenario.timed_calls} with a handle time, "
            f"AHT {_cell(scenario.aht_seconds, '.1f')} s; peak "
            f"{_cell(scenario.peak_agents, 'd')} agent(s), "
            f"{_cell(scenario.agent_hours, 'd')} agent-hours a week"
        )
    lines.extend(notes_lines(staffing.notes))
    return "\n".join(lines)


def _model(staffing: Staffing) -> str:
    if staffing.patience_seconds is None:
        return "Erlang C"
    return f"Erlang A, callers' mean patience {staffing.patience_seconds:g} s"


def _row(hour: StaffingHour, erlang_a: bool) -> str:
    row = (
        f"{_cell(hour.calls_per_hour, '8.2f'):>8} {_cell(hour.aht_seconds, '6.0f'):>6} "
        f"{_cell(hour.erlangs, '8.3f'):>8} {_cell(hour.agents, '6d'):>6} "
        f"{_percent(hour.occupancy):>6} {_percent(hour.service_level):>6}"
    )
    return row + (f" {_percent(hour.abandoned):>7}" if erlang_a else "")


CSV_COLUMNS = (
    "scenario",
    "weekday",
    "hour",
    "occurrences",
    "calls",
    "calls_per_hour",
    "aht_seconds",
    "erlangs",
    "agents",
    "occupancy",
    "service_level",
    "asa_seconds",
    "abandoned",
)


def render_csv(staffing: Staffing) -> str:
    """One line per scenario and hour of the week (RFC 4180; empty cells for null)."""
    return csv_text(
        CSV_COLUMNS,
        (
            [name, *(values[c] for c in CSV_COLUMNS[1:])]
            for name, scenario in staffing.scenarios.items()
            for values in (hour.model_dump() for hour in scenario.hours)
        ),
    )


def csv_filename(staffing: Staffing) -> str:
    """``staffing-2026-10-26-2026-11-23.csv``: the period's UTC dates."""
    since = datetime.fromisoformat(staffing.since).date().isoformat()
    until = datetime.fromisoformat(staffing.until).date().isoformat()
    return f"staffing-{since}-{until}.csv"
