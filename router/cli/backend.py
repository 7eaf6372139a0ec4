"""What a ``switchboard`` command can ask for, whether it works on the database or through a
running service's API.

Each command is written once against :class:`Backend`: :class:`router.cli.local.LocalBackend`
answers from the database (so the on-call person's rollback works while the service is
down), :class:`router.cli.remote.RemoteBackend` through the operators' HTTP API. Both give
the same JSON shapes (router/service/views.py), so one printer serves both. What only one
of them can do, the other refuses with :class:`Refused` and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from router.core.contact import Category, Channel

if TYPE_CHECKING:  # for annotations only: the on-call person's rollback imports none of them
    from router.core.classify import Classifier
    from router.core.document import RoutingDocument
    from router.core.migration import PlanStep
    from router.core.report import Report
    from router.core.sla import Sla
    from router.core.staffing import Staffing, Target
    from router.core.statement import Month, Statement
    from router.service.records import InteractionSearch

JSON = dict[str, Any]


class Refused(Exception):
    """The command cannot be done this way or was refused; the message says why."""


@dataclass(frozen=True, slots=True)
class Diff:
    changes: list[JSON]
    impact: JSON | None  # Impact.as_json() with "days", when asked for


@dataclass(frozen=True, slots=True)
class Cutover:
    channel: Channel | None  # None: every channel
    category: Category | None  # None: every category
    percent: float
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class Rollback:
    reason: str
    actor: str
    channel: Channel | None
    duration: timedelta | None
    duration_text: str | None  # as the operator wrote it, for the API


@dataclass(frozen=True, slots=True)
class Classified:
    result: JSON  # as ``classify --format json`` prints it
    source: str | None  # which rules were used, when the answer is local


class Backend(Protocol):
    """Everything the commands read or change. Times are UTC; changes return the change's
    JSON (router/service/views.py ``change_json``)."""

    async def status(self, *, conversations: int | None) -> JSON:
        """*conversations*: held conversations to list, newest first (None: all)."""
        ...

    async def interactions(self, search: InteractionSearch, *, customer: str | None) -> list[JSON]:
        """*customer*: the customer key, normalised (its keyed hash is matched)."""
        ...

    async def interaction(self, interaction_id: int) -> JSON | None:
        """Everything about one interaction (``InteractionDetail``); None when none."""
        ...

    async def retention(self, *, days: int | None, dry_run: bool) -> JSON:
        """Run retention now (*days*: the setting's when None); what it did or would do."""
        ...

    async def report(self, *, since: datetime, until: datetime) -> Report: ...

    async def statement(self, month: Month | None) -> Statement:
        """*month* None: the previous month in the routing timezone."""
        ...

    async def staffing(
        self, *, since: datetime, until: datetime, target: Target, patience: timedelta | None
    ) -> Staffing: ...

    async def sla(self, *, since: datetime, until: datetime) -> Sla: ...

    async def document(self, number: int | None) -> JSON: ...

    async def history(self, limit: int | None) -> list[JSON]: ...

    async def diff(self, a: str, b: str, *, impact: bool, days: int) -> Diff: ...

    async def apply(self, document: RoutingDocument, *, reason: str, actor: str) -> JSON: ...

    async def revert(self, version: int, *, reason: str, actor: str) -> JSON: ...

    async def cutover(self, change: Cutover) -> JSON: ...

    async def cutover_preview(self, change: Cutover, *, days: int) -> JSON: ...

    async def rollback(self, change: Rollback) -> JSON: ...

    async def resume(self, *, reason: str, actor: str) -> JSON: ...

    async def schedule_plan(self, steps: Sequence[PlanStep], *, actor: str) -> list[JSON]: ...

    async def plan_steps(self, *, include_done: bool) -> list[JSON]: ...

    async def cancel_plan(self, step: int | None) -> int: ...

    async def classify(self, text: str, language: str | None) -> Classified: ...

    async def classifier(self) -> tuple[Classifier, float, str]:
        """The classifier in force, its confidence threshold, and where its rules came from."""
        ...

    async def outbox(self, *, only_failed: bool) -> list[JSON]: ...

    async def retry_forward(self, row_id: int) -> bool: ...

    async def create_token(self, name: str, role: str) -> str: ...

    async def tokens(self) -> list[JSON]: ...

    async def revoke_token(self, name: str) -> bool: ...

    async def upgrade(self) -> str: ...
