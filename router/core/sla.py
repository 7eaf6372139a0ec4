"""Did the partner keep the contract? ``switchboard sla`` and ``GET /api/sla``.

Pure: what the store counts over a period (dials, forwards, partner feedback, the answered
dials' times to answer) and the routing document's ``sla:`` targets in, an :class:`Sla`
out. No I/O, no clock; the period is an argument. Like the report and staffing, the answer
is a pydantic model: the CLI reads the API's answer back into the model it renders locally,
and the OpenAPI schema is generated from it.

Every figure is measured per external destination and channel over the contacts *received*
in the period, against the targets of the routing in force now (``sla.<destination>.<channel>``).
What each figure counts, and nothing else:

* **answer rate, phone** — dials answered there / dials to the destination. A call makes one
  or two dials: the first to the destination decided (``first_destination``), and after it
  went unanswered one to its fallback. A dial counts once Twilio reported how it ended (the
  ``<Dial>`` action's ``DialCallStatus``, kept as ``dial_status`` for the first dial and
  ``fallback_status`` for the fallback's); it was answered when that status was
  ``completed`` or ``answered``, which is when the call's outcome became ``answered`` (a
  final outcome). A dial still ringing, or never reported, is not counted.
* **answer rate, email and chat** — forwards delivered to the destination / forwards sent to
  it. A forward is sent to a destination once its attempts there are over: delivered, failed
  for good, or moved on to the fallback (after repeated or permanent failures: that counts
  as sent to the first destination and not delivered there, and the fallback's own attempts
  count for the fallback). A forward still being retried where it is is not counted yet.
  Only the contacts of the channel count: a voicemail emailed to a mailbox is a call's.
* **time to answer, p80 (phone)** — the 80th percentile, by the nearest-rank method (the
  value at rank ⌈0.8 n⌉ of the n answered dials' times sorted ascending), of the seconds
  from the answered ``<Dial>`` being given to Twilio to the agent answering
  (``interactions.answer_seconds``, see :func:`router.core.calls.time_to_answer`). A call
  answered by the fallback counts for the fallback: the dial measured is the one to the
  destination assessed.
* **resolution rate** — the partner's feedback ``resolved`` / feedback received, for the
  contacts whose final destination (where they ended: the fallback after a fallback) is
  the destination.
* **average rating** — the mean of the ratings in that feedback (feedback without a rating
  does not count).

A figure with nothing to rest on is null and its verdict is ``no data`` (neither met nor
missed). Otherwise a rate or a rating is met when it is at least the target, a time to
answer when it is at most the target: a target met exactly is met.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from router.core.contact import Channel
from router.core.document import ForwardTargets, PhoneTargets, RoutingDocument
from router.core.figures_text import csv_text, notes_lines
from router.core.lifecycle import ForwardStatus, Outcome

__all__ = [
    "DEFAULT_SINCE",
    "AnswerTime",
    "DialTally",
    "FeedbackTally",
    "ForwardTally",
    "Sla",
    "SlaRow",
    "build_sla",
    "csv_filename",
    "nearest_rank",
    "render_csv",
    "render_table",
    "verdict",
]

#: The period assessed when no start is given: the last 30 days (CLI and API alike).
DEFAULT_SINCE = "30d"
#: The percentile of the time to answer, as the contract names it.
PERCENTILE = 80

Metric = Literal["answer_rate", "time_to_answer_p80", "resolution_rate", "average_rating"]
Verdict = Literal["met", "missed", "no data"]
_RESOLVED = "resolved"  # the partner's outcome that resolves a contact (router/web/partner.py)
_FALLBACK_STAGE = "fallback"  # an outbox row moved on to its fallback (router.core.delivery)


# -- what the store counts ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DialTally:
    """Calls that left the IVR menu, grouped: where they were dialled, what was heard."""

    first_destination: str  # the first dial's
    destination: str  # the fallback's after a fallback dial, else the first
    dial_status: str | None  # the first dial's DialCallStatus; None: not reported
    fallback_status: str | None  # the fallback dial's; None: no fallback dial reported
    outcome: str | None
    calls: int


@dataclass(frozen=True, slots=True)
class AnswerTime:
    """One answered dial's time to answer."""

    first_destination: str
    destination: str
    by_fallback: bool  # the fallback dial was the one answered
    seconds: float

    @property
    def answered_at(self) -> str:
        return self.destination if self.by_fallback else self.first_destination


@dataclass(frozen=True, slots=True)
class ForwardTally:
    """Forwards of email or chat contacts, grouped."""

    channel: str
    first_destination: str  # where the forward went first (the contact's decision)
    destination: str  # where it is now: the fallback once moved on
    stage: str  # primary | fallback
    status: str  # pending | delivered | failed
    forwards: int


@dataclass(frozen=True, slots=True)
class FeedbackTally:
    """Partner feedback reports, grouped by the contact's channel and final destination."""

    channel: str
    destination: str
    outcome: str
    rating: int | None
    reports: int


# -- the view --------------------------------------------------------------------------------


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class SlaRow(_View):
    destination: str = Field(description="an external destination of the routing in force")
    channel: Literal["phone", "email", "chat"]
    metric: Metric = Field(
        description="answer_rate and resolution_rate are shares 0-1, time_to_answer_p80 "
        "seconds, average_rating 1-5"
    )
    target: float = Field(description="the target, from sla: of the routing in force")
    measured: float | None = Field(description="the figure over the period; null: no data")
    count: int = Field(description="how many of `basis` the figure rests on")
    basis: str = Field(description="what is counted: dials, forwards, answered dials, reports")
    verdict: Verdict = Field(
        description="met: at least the target (at most, for a time); no data: nothing measured"
    )


class Sla(_View):
    since: str = Field(description="start of the period (inclusive), contacts received from")
    until: str = Field(description="end of the period (exclusive)")
    version: int = Field(description="the routing version in force, whose sla: targets these are")
    rows: list[SlaRow] = Field(
        description="one per destination, channel and target, in the document's order"
    )
    notes: list[str]


# -- computing it ------------------------------------------------------------------------------


def nearest_rank(values: Sequence[float], percentile: int = PERCENTILE) -> float | None:
    """The *percentile* of *values* by the nearest-rank method: the value at rank
    ⌈percentile/100 × n⌉ (from 1) of the values sorted ascending; None without values."""
    if not values:
        return None
    if not 0 < percentile <= 100:
        raise ValueError(f"a percentile is above 0 and at most 100, not {percentile}")
    rank = math.ceil(percentile * len(values) / 100)  # integers: no 0.8 * 10 = 8.000001
    return sorted(values)[rank - 1]


def verdict(metric: Metric, target: float, measured: float | None) -> Verdict:
    """Whether *measured* keeps *target*: a time at most it, anything else at least it."""
    if measured is None:
        return "no data"
    kept = measured <= target if metric == "time_to_answer_p80" else measured >= target
    return "met" if kept else "missed"


@dataclass(slots=True)
class _Ratio:
    hits: int = 0
    total: int = 0

    def add(self, hit: bool, count: int) -> None:
        self.total += count
        if hit:
            self.hits += count

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None


def _dial_ratios(dials: Iterable[DialTally]) -> dict[str, _Ratio]:
    ratios: dict[str, _Ratio] = {}
    for tally in dials:
        answered = tally.outcome == Outcome.ANSWERED.value
        if tally.dial_status is not None:
            # the first dial was the one answered only if no fallback was dialled after it
            first = ratios.setdefault(tally.first_destination, _Ratio())
            first.add(answered and tally.fallback_status is None, tally.calls)
        if tally.fallback_status is not None:
            ratios.setdefault(tally.destination, _Ratio()).add(answered, tally.calls)
    return ratios


def _forward_ratios(forwards: Iterable[ForwardTally]) -> dict[tuple[str, str], _Ratio]:
    ratios: dict[tuple[str, str], _Ratio] = {}

    def add(destination: str, channel: str, delivered: bool, count: int) -> None:
        ratios.setdefault((destination, channel), _Ratio()).add(delivered, count)

    for tally in forwards:
        if tally.stage == _FALLBACK_STAGE:
            # its attempts at the first destination are over, and none delivered
            add(tally.first_destination, tally.channel, False, tally.forwards)
        if tally.status != ForwardStatus.PENDING.value:
            delivered = tally.status == ForwardStatus.DELIVERED.value
            add(tally.destination, tally.channel, delivered, tally.forwards)
    return ratios


@dataclass(slots=True)
class _Feedback:
    resolved: _Ratio
    ratings: int = 0
    rating_sum: int = 0

    @property
    def average(self) -> float | None:
        return self.rating_sum / self.ratings if self.ratings else None


def _feedback(reports: Iterable[FeedbackTally]) -> dict[tuple[str, str], _Feedback]:
    found: dict[tuple[str, str], _Feedback] = {}
    for tally in reports:
        entry = found.setdefault((tally.destination, tally.channel), _Feedback(_Ratio()))
        entry.resolved.add(tally.outcome == _RESOLVED, tally.reports)
        if tally.rating is not None:
            entry.ratings += tally.reports
            entry.rating_sum += tally.rating * tally.reports
    return found


def _row(
    destination: str,
    channel: Channel,
    metric: Metric,
    target: float,
    measured: float | None,
    count: int,
    basis: str,
) -> SlaRow:
    return SlaRow(
        destination=destination,
        channel=channel.value,
        metric=metric,
        target=target,
        # judged on the exact figure, shown rounded: 0.89996 misses 0.9 though it prints 0.9
        measured=None if measured is None else round(measured, 4),
        count=count,
        basis=basis,
        verdict=verdict(metric, target, measured),
    )


def build_sla(
    document: RoutingDocument,
    *,
    version: int,
    since: datetime,
    until: datetime,
    dials: Iterable[DialTally],
    answer_times: Iterable[AnswerTime],
    forwards: Iterable[ForwardTally],
    feedback: Iterable[FeedbackTally],
) -> Sla:
    """The service levels of routing version *version* (*document*) measured over the
    contacts received in [*since*, *until*)."""
    notes: list[str] = []
    rows: list[SlaRow] = []
    if not document.sla:
        notes.append(
            f"routing version {version} has no sla section: there are no targets to assess "
            "(add sla: to the routing document)"
        )
    dialled = _dial_ratios(dials)
    delivered = _forward_ratios(forwards)
    reported = _feedback(feedback)
    times: dict[str, list[float]] = {}
    for answer in answer_times:
        times.setdefault(answer.answered_at, []).append(answer.seconds)

    for destination, per_channel in (document.sla or {}).items():
        for channel in Channel:
            targets = per_channel.targets(channel)
            if targets is None:
                continue
            if channel is Channel.PHONE:
                answers = dialled.get(destination, _Ratio())
                answer_basis = "dials"
            else:
                answers = delivered.get((destination, channel.value), _Ratio())
                answer_basis = "forwards"
            said = reported.get((destination, channel.value), _Feedback(_Ratio()))
            if targets.answer_rate is not None:
                rows.append(
                    _row(
                        destination,
                        channel,
                        "answer_rate",
                        targets.answer_rate,
                        answers.value,
                        answers.total,
                        answer_basis,
                    )
                )
            rows.extend(_time_rows(destination, channel, targets, times.get(destination, [])))
            if targets.resolution_rate is not None:
                rows.append(
                    _row(
                        destination,
                        channel,
                        "resolution_rate",
                        targets.resolution_rate,
                        said.resolved.value,
                        said.resolved.total,
                        "reports",
                    )
                )
            if targets.average_rating is not None:
                rows.append(
                    _row(
                        destination,
                        channel,
                        "average_rating",
                        targets.average_rating,
                        said.average,
                        said.ratings,
                        "ratings",
                    )
                )
    return Sla(
        since=since.astimezone(UTC).isoformat(),
        until=until.astimezone(UTC).isoformat(),
        version=version,
        rows=rows,
        notes=notes,
    )


def _time_rows(
    destination: str, channel: Channel, targets: ForwardTargets, seconds: Sequence[float]
) -> list[SlaRow]:
    if not isinstance(targets, PhoneTargets):
        return []
    target = targets.time_to_answer_seconds
    if target is None:
        return []
    return [
        _row(
            destination,
            channel,
            "time_to_answer_p80",
            target,
            nearest_rank(seconds),
            len(seconds),
            "answered dials",
        )
    ]


# -- output ------------------------------------------------------------------------------------

_LABELS: dict[str, str] = {
    "answer_rate": "answer rate",
    "time_to_answer_p80": "time to answer p80",
    "resolution_rate": "resolution rate",
    "average_rating": "average rating",
}


def _figure(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric in ("answer_rate", "resolution_rate"):
        return f"{value * 100:.1f}%"
    if metric == "time_to_answer_p80":
        return f"{value:g} s"
    return f"{value:.2f}"


def render_table(sla: Sla) -> str:
    """The service levels as ``switchboard sla`` prints them."""
    lines = [
        f"partner service levels from {sla.since} until {sla.until}",
        f"targets of routing version {sla.version} (the routing in force)",
        "",
    ]
    if sla.rows:
        header = (
            f"{'destination':12} {'channel':7} {'metric':19} {'target':>8} {'measured':>9} "
            f"{'based on':>20}  verdict"
        )
        lines.append(header)
        for row in sla.rows:
            basis = f"{row.count} {row.basis}"
            lines.append(
                f"{row.destination:12} {row.channel:7} {_LABELS[row.metric]:19} "
                f"{_figure(row.metric, row.target):>8} {_figure(row.metric, row.measured):>9} "
                f"{basis:>20}  {row.verdict}"
            )
    elif not sla.notes:
        lines.append("(no targets in the sla section)")
    lines.extend(notes_lines(sla.notes, gap=bool(sla.rows)))
    return "\n".join(lines).rstrip("\n")


CSV_COLUMNS = (
    "destination",
    "channel",
    "metric",
    "target",
    "measured",
    "count",
    "basis",
    "verdict",
)


def render_csv(sla: Sla) -> str:
    """One line per destination, channel and target (RFC 4180; an empty cell for null)."""
    values = (row.model_dump() for row in sla.rows)
    return csv_text(CSV_COLUMNS, ([row[c] for c in CSV_COLUMNS] for row in values))


def csv_filename(sla: Sla) -> str:
    """``sla-2026-10-24-2026-11-23.csv``: the period's UTC dates."""
    since = datetime.fromisoformat(sla.since).date().isoformat()
    until = datetime.fromisoformat(sla.until).date().isoformat()
    return f"sla-{since}-{until}.csv"
