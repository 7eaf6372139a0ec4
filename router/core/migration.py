"""Cut-over, rollback, resume, plans, the guard and impact previews, as pure functions.

Every migration move is a function from one routing document to the next, so each change
is simply a new version and a rollback is just another document. State questions (is a
rollback in force? is its automatic return due? did the guard trip?) are answered from
values the caller read from the store; nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Annotated, Any, Protocol

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from router.core.contact import Category, Channel
from router.core.document import RoutingDocument, Share, document_data, validate_document
from router.core.durations import parse_duration
from router.core.jsondata import check_parsed
from router.core.problems import UNKNOWN_KEY, Problem, problems_of
from router.core.stored import return_point

Shares = Mapping[Channel, Mapping[Category, float]]


class MigrationError(ValueError):
    """A migration move that cannot be made (the message says why)."""


# -- documents ------------------------------------------------------------------------------


def with_shares(document: RoutingDocument, shares: Shares) -> RoutingDocument:
    """*document* with the named shares changed; every other share stays as it was."""
    data = copy.deepcopy(document_data(document))
    cutover: dict[str, dict[str, float]] = data.setdefault("cutover", {})
    for channel, categories in shares.items():
        row = cutover.setdefault(channel.value, {})
        for category, percent in categories.items():
            row[category.value] = percent
    return validate_document(data)


def cut_over(
    document: RoutingDocument,
    channel: Channel | None,
    category: Category | None,
    percent: float,
) -> RoutingDocument:
    """Set one share, or several with None meaning "all" channels or categories."""
    if not 0 <= percent <= 100:
        raise MigrationError(f"a share is a percentage from 0 to 100, not {percent:g}")
    channels = [channel] if channel is not None else list(Channel)
    categories = [category] if category is not None else list(Category)
    return with_shares(document, {ch: dict.fromkeys(categories, percent) for ch in channels})


def rolled_back(document: RoutingDocument, channel: Channel | None = None) -> RoutingDocument:
    """Every share of *channel* (or of all channels) at 0: new contacts follow baseline."""
    return cut_over(document, channel, None, 0)


def shares_of(document: RoutingDocument) -> dict[str, dict[str, float]]:
    """The full share matrix; whole percentages as integers, as people write them."""
    return {
        channel.value: {
            category.value: _compact(document.share(channel, category)) for category in Category
        }
        for channel in Channel
    }


def _compact(percent: float) -> float:
    return int(percent) if percent == int(percent) else percent


# -- rollback state -----------------------------------------------------------------------------


class VersionFacts(Protocol):
    """What the rollback logic needs to know of a stored version."""

    @property
    def version(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def restores(self) -> int | None: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def channel(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    """How a new rollback version is to be stored."""

    document: RoutingDocument
    restores: int  # the version that comes back on resume (the one before the rollback)
    expires_at: datetime | None


def plan_rollback(
    current: VersionFacts,
    document: RoutingDocument,
    channel: Channel | None,
    now: datetime,
    duration: timedelta | None,
) -> RollbackPlan:
    """The rollback of *current*. Rolling back during a timed rollback keeps its return
    point, so ``resume`` brings back the routing from before the incident."""
    restores = return_point(current.version, current.kind, current.restores, current.expires_at)
    if duration is not None and duration <= timedelta(0):
        raise MigrationError("a rollback's --for must be a positive duration")
    expires_at = now + duration if duration is not None else None
    return RollbackPlan(rolled_back(document, channel), restores, expires_at)


def rollback_in_force(current: VersionFacts) -> VersionFacts | None:
    """The rollback that is in force now: the current version, if it is one."""
    return current if current.kind == "rollback" else None


def return_due(current: VersionFacts, now: datetime) -> bool:
    """True when *current* is a timed rollback whose time is up."""
    return (
        current.kind == "rollback"
        and current.expires_at is not None
        and current.restores is not None
        and current.expires_at <= now
    )


@dataclass(frozen=True, slots=True)
class CancelledReturn:
    rollback: int
    would_have_ended: datetime
    cancelled_by: int
    actor: str
    reason: str


def cancelled_return(history: Sequence[VersionFacts], now: datetime) -> CancelledReturn | None:
    """A timed rollback whose automatic return was cancelled by a later change and whose
    period has not run out yet (newest-first *history*): status shows it so nobody waits
    for a return that will not come."""
    for index, record in enumerate(history):
        if record.kind != "rollback":
            continue
        if index == 0 or record.expires_at is None or record.expires_at <= now:
            return None
        later = history[index - 1]
        if later.kind == "resume":  # ended on purpose (by hand), nothing was cancelled
            return None
        return CancelledReturn(
            record.version, record.expires_at, later.version, later.actor, later.reason
        )
    return None


# -- plans ---------------------------------------------------------------------------------


PLAN_PATH = "(plan)"  # the path of a problem with the plan as a whole


def _moment(value: object) -> object:
    # YAML reads an unquoted time as a datetime and a quoted one (and JSON's) as a string;
    # Python's ISO 8601 reader is the one the rest of Switchboard uses.
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValueError(f"give a time with its UTC offset (e.g. {value}T08:00:00+01:00)")
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {value!r}") from None
    return value


def _with_offset(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("give the UTC offset (e.g. 2026-12-01T08:00:00+01:00)")
    return moment


def _step_reason(value: str) -> str:
    if not value.strip():
        raise ValueError("a step needs a reason (audit trail)")
    return value.strip()


_StepTime = Annotated[
    datetime, BeforeValidator(_moment), Field(strict=True), AfterValidator(_with_offset)
]
_StepReason = Annotated[str, Field(strict=True), AfterValidator(_step_reason)]
_StepShares = Annotated[
    dict[Channel, dict[Category, Share]],
    Field(min_length=1, description="channel -> category -> percent; only the shares named change"),
]


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One step of a plan file (SPEC §4): at *at*, the shares named in *cutover* change.

    The field types are the plan file's rules too: :func:`plan_adapter` validates a file against
    them.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")

    at: _StepTime
    reason: _StepReason
    cutover: _StepShares


#: A plan: one or more steps. Its JSON schema is what ``POST /api/plan`` publishes.
Plan = Annotated[list[PlanStep], Field(min_length=1)]


@cache
def plan_adapter() -> TypeAdapter[list[PlanStep]]:
    """The validator of a whole plan, built on first use: building it costs every command
    (a rollback too) several milliseconds at import."""
    return TypeAdapter(Plan)


class PlanInvalid(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


def parse_plan(text: str) -> list[PlanStep]:
    """A plan file: a YAML list of ``{at, reason, cutover}``; every problem by path."""
    try:
        data = yaml.safe_load(text)
        check_parsed(data)  # YAML aliases: a few lines can stand for billions of values
    except yaml.YAMLError as exc:
        raise PlanInvalid([Problem(PLAN_PATH, f"not YAML: {exc}")]) from exc
    except ValueError as exc:
        raise PlanInvalid([Problem(PLAN_PATH, str(exc))]) from None
    except RecursionError:
        raise PlanInvalid([Problem(PLAN_PATH, "nested too deeply")]) from None
    if not isinstance(data, list) or not data:
        raise PlanInvalid([Problem(PLAN_PATH, "expected a non-empty list of steps")])
    try:
        steps = plan_adapter().validate_python(data)
    except ValidationError as error:
        problems = problems_of(error, data, root=PLAN_PATH)
        raise PlanInvalid(sorted(problems, key=_typos_first)) from None
    return sorted(steps, key=lambda step: step.at)


def _typos_first(problem: Problem) -> tuple[int, bool]:
    """Step by step, an unknown key before the rest: a mistyped ``resaon`` explains the
    ``reason: required`` that follows it. (A stable sort keeps the rest in field order.)"""
    step = re.match(r"\[([0-9]+)\]", problem.path)
    return (int(step.group(1)) if step else -1, problem.message != UNKNOWN_KEY)


# -- the guard ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    """Contacts sent to external destinations on one channel within the guard window."""

    channel: Channel
    contacts: int
    failures: int

    @property
    def failure_rate(self) -> float:
        return self.failures / self.contacts if self.contacts else 0.0


def guard_trips(document: RoutingDocument, health: Iterable[ChannelHealth]) -> list[Channel]:
    """Channels to roll back automatically: enough external contacts, too many failed, and
    something left to roll back (a channel already at 0 % is not rolled back again)."""
    guard = document.guard
    if guard is None:
        return []
    tripped: list[Channel] = []
    for item in health:
        if item.contacts < guard.min_contacts or item.failure_rate <= guard.max_failure_rate:
            continue
        if all(document.share(item.channel, category) == 0 for category in Category):
            continue
        tripped.append(item.channel)
    return tripped


def parse_for(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise MigrationError(str(exc)) from exc


# -- impact preview ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recorded:
    """What replaying one recorded interaction needs: no text, no customer key."""

    channel: Channel
    category: Category
    bucket: float
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Impact:
    """Per channel and day, how many recorded contacts would go elsewhere, and where."""

    contacts: int
    moved: dict[str, dict[str, int]]  # channel -> day -> moved contacts
    moves: dict[str, dict[str, int]]  # channel -> "from -> to" -> contacts

    def as_json(self) -> dict[str, Any]:
        return {"contacts": self.contacts, "moved": self.moved, "moves": self.moves}


def impact(recorded: Iterable[Recorded], before: RoutingDocument, after: RoutingDocument) -> Impact:
    """Replay *recorded* contacts through both documents at their own times."""
    # imported here: deciding pulls in the classifier, which a rollback never needs

    moved: dict[str, Counter[str]] = {}
    moves: dict[str, Counter[str]] = {}
    total = 0
    for item in recorded:
        total += 1
        old = _destination(item, before)
        new = _destination(item, after)
        if old == new:
            continue
        day = item.received_at.astimezone(after.zone).date().isoformat()
        moved.setdefault(item.channel.value, Counter())[day] += 1
        moves.setdefault(item.channel.value, Counter())[f"{old} -> {new}"] += 1
    return Impact(
        total,
        {channel: dict(sorted(days.items())) for channel, days in sorted(moved.items())},
        {channel: dict(counts.most_common()) for channel, counts in sorted(moves.items())},
    )


def _destination(item: Recorded, document: RoutingDocument) -> str:
    from router.core.decide import place

    _, destination, _ = place(item.channel, item.category, item.bucket, document, item.received_at)
    return destination
