"""The commands' way to the database itself (``SWITCHBOARD_DATABASE_URL``), no service needed.

The store is opened (and migrated) only when a command first needs it, so ``classify`` and
argument errors never create a database. Errors of the service layer become
:class:`~router.cli.backend.Refused` with the message the operator should read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from sqlalchemy.engine import make_url

from router.cli.backend import JSON, Classified, Cutover, Diff, Refused, Rollback
from router.core.document import (
    DocumentInvalid,
    RoutingDocument,
    diff_documents,
    document_data,
    load_document,
    shipped_document,
)
from router.core.migration import MigrationError, PlanStep
from router.service import versions
from router.service.ports import DatabaseUnavailable
from router.service.records import VersionRecord
from router.service.tokens import Role, TokenError, create_token
from router.service.views import (
    change_json,
    classification_json,
    iso,
    outbox_json,
    step_json,
    version_json,
)
from router.settings import Settings, customer_key_secret
from router.store import Store, create_engine, migrate
from router.store.uow import database_errors

if TYPE_CHECKING:
    from router.core.classify import Classifier
    from router.core.report import Report
    from router.core.sla import Sla
    from router.core.staffing import Staffing, Target
    from router.core.statement import Month, Statement
    from router.service.records import InteractionSearch

# The read models (router.service.queries), the scheduler and the classifier are imported
# by the methods that use them: a rollback at 3 a.m. should not wait for their imports.

NO_ROUTING = (
    "the database holds no routing version yet: start the service "
    "(it loads config/routing.yaml) or run `switchboard config apply FILE --reason …`"
)


def redacted(url: str) -> str:
    # unquoted for people: SQLAlchemy writes a list of hosts as ?host=db-1%3A5432&…
    return unquote(make_url(url).render_as_string(hide_password=True))


def now() -> datetime:
    return datetime.now(UTC)


def load_or_refuse(path: Path) -> RoutingDocument:
    try:
        return load_document(path)
    except FileNotFoundError as exc:
        raise Refused(f"{path}: no such file") from exc
    except DocumentInvalid as exc:
        raise Refused(f"{path} is not a valid routing document:\n{exc}") from exc


class LocalBackend:
    def __init__(self, settings: Settings, resources: AsyncExitStack) -> None:
        self.settings = settings
        self._resources = resources
        self._store: Store | None = None

    async def store(self) -> Store:
        """The database, migrated to the current schema (opened on first use)."""
        if self._store is None:
            engine = create_engine(self.settings.database_url)
            self._resources.push_async_callback(engine.dispose)
            async with database_errors(None):
                await migrate.upgrade(engine)
            self._store = Store(engine)
        return self._store

    async def _current(self) -> VersionRecord:
        row = await (await self.store()).current_version()
        if row is None:
            raise Refused(NO_ROUTING)
        return row

    async def _version(self, number: int) -> VersionRecord:
        row = await (await self.store()).version(number)
        if row is None:
            raise Refused(f"there is no version {number}")
        return row

    # -- reading ---------------------------------------------------------------------------

    async def status(self, *, conversations: int | None) -> JSON:
        from router.service import queries

        return await queries.routing_status(await self.store(), now(), conversations=conversations)

    async def interactions(self, search: InteractionSearch, *, customer: str | None) -> list[JSON]:
        from router.service.archive import find_interactions

        secret = customer_key_secret(self.settings) if customer is not None else b""
        return await find_interactions(
            await self.store(), search, customer_key=customer, secret=secret
        )

    async def retention(self, *, days: int | None, dry_run: bool) -> JSON:
        from router.service.retention import apply_retention, cutoff_of, retention_due

        days = days or self.settings.retention_days
        if days is None:
            raise Refused(
                "retention is off: set SWITCHBOARD_RETENTION_DAYS or give --days (nothing done)"
            )
        store, moment = await self.store(), now()
        if dry_run:
            counts = await retention_due(store, moment, days)
        else:  # by hand: not today's scheduled run, which still runs (and finds less)
            done = await apply_retention(store, moment, days, claim=False)
            assert done is not None
            counts = done
        return {
            "days": days,
            "cutoff": iso(cutoff_of(moment, days)),
            "dry_run": dry_run,
            **counts.as_json(),
        }

    async def interaction(self, interaction_id: int) -> JSON | None:
        from router.service.archive import interaction_detail

        return await interaction_detail(await self.store(), interaction_id)

    async def report(self, *, since: datetime, until: datetime) -> Report:
        from router.core.prices import TooManyDays
        from router.service import queries

        try:
            return await queries.contacts_report(await self.store(), since=since, until=until)
        except TooManyDays as exc:
            raise Refused(str(exc)) from exc

    async def statement(self, month: Month | None) -> Statement:
        from router.service import queries

        return await queries.month_statement(await self.store(), month=month, now=now())

    async def staffing(
        self, *, since: datetime, until: datetime, target: Target, patience: timedelta | None
    ) -> Staffing:
        from router.core.staffing import StaffingError
        from router.service import queries

        try:
            return await queries.hotline_staffing(
                await self.store(), since=since, until=until, target=target, patience=patience
            )
        except StaffingError as exc:
            raise Refused(str(exc)) from exc

    async def sla(self, *, since: datetime, until: datetime) -> Sla:
        from router.service import queries

        return await queries.partner_sla(await self.store(), since=since, until=until)

    async def document(self, number: int | None) -> JSON:
        row = await (self._current() if number is None else self._version(number))
        return document_data(versions.stored_document(row))

    async def history(self, limit: int | None) -> list[JSON]:
        return [version_json(row) for row in await (await self.store()).history(limit)]

    async def _document_of(self, ref: str) -> RoutingDocument:
        """A version number or a document file."""
        if ref.isdigit():
            return versions.stored_document(await self._version(int(ref)))
        return load_or_refuse(Path(ref))

    async def diff(self, a: str, b: str, *, impact: bool, days: int) -> Diff:
        old, new = await self._document_of(a), await self._document_of(b)
        changes = [{"path": c.path, "from": c.old, "to": c.new} for c in diff_documents(old, new)]
        if not impact:
            return Diff(changes, None)
        from router.service import queries

        store = await self.store()
        preview = await queries.preview_impact(store, old, new, days=days, now=now())
        return Diff(changes, {"days": days, **preview.as_json()})

    # -- changing routing ------------------------------------------------------------------

    async def apply(self, document: RoutingDocument, *, reason: str, actor: str) -> JSON:
        store = await self.store()
        row = await versions.apply_document(store, document, actor=actor, reason=reason, now=now())
        return {"changed": False} if row is None else {"changed": True, **change_json(row)}

    async def revert(self, version: int, *, reason: str, actor: str) -> JSON:
        store = await self.store()
        try:
            row = await versions.revert(store, version, actor=actor, reason=reason, now=now())
        except LookupError as exc:
            raise Refused(str(exc)) from exc
        return change_json(row)

    async def cutover(self, change: Cutover) -> JSON:
        row = await versions.cutover(
            await self.store(),
            change.channel,
            change.category,
            change.percent,
            actor=change.actor,
            reason=change.reason,
            now=now(),
        )
        return change_json(row)

    async def cutover_preview(self, change: Cutover, *, days: int) -> JSON:
        from router.service import queries

        store = await self.store()
        return await queries.cutover_preview(
            store, change.channel, change.category, change.percent, days=days, now=now()
        )

    async def rollback(self, change: Rollback) -> JSON:
        try:
            row = await versions.rollback(
                await self.store(),
                actor=change.actor,
                reason=change.reason,
                now=now(),
                channel=change.channel,
                duration=change.duration,
            )
        except MigrationError as exc:
            raise Refused(str(exc)) from exc
        return change_json(row)

    async def resume(self, *, reason: str, actor: str) -> JSON:
        try:
            row = await versions.resume(await self.store(), actor=actor, reason=reason, now=now())
        except versions.NothingToResume as exc:
            raise Refused(str(exc)) from exc
        return change_json(row)

    # -- plans -----------------------------------------------------------------------------

    async def schedule_plan(self, steps: Sequence[PlanStep], *, actor: str) -> list[JSON]:
        from router.service import scheduler

        store = await self.store()
        rows = await scheduler.schedule_plan(store, list(steps), actor=actor, now=now())
        return [step_json(row) for row in rows]

    async def plan_steps(self, *, include_done: bool) -> list[JSON]:
        rows = await (await self.store()).plan_steps(status=None if include_done else "pending")
        return [step_json(row) for row in rows]

    async def cancel_plan(self, step: int | None) -> int:
        return await (await self.store()).cancel_plan_steps(now(), step)

    # -- the classifier --------------------------------------------------------------------

    async def classify(self, text: str, language: str | None) -> Classified:
        from router.core.classify import classify

        classifier, threshold, source = await self.classifier()
        outcome = classify(text, classifier, language, min_confidence=threshold)
        return Classified(classification_json(outcome, language or outcome.language), source)

    async def classifier(self) -> tuple[Classifier, float, str]:
        """The shipped model and rules plus the stored document's ``classifier`` entries, and
        where they came from. No database is needed: an unreachable or empty one means the
        shipped ones only, and nothing is created (no migration, no new SQLite file)."""
        from router.core.classify import shipped_classifier, shipped_rules
        from router.core.decide import routing_rules

        shipped = shipped_document()
        try:
            document = await self._stored_document_if_any()
        except (DatabaseUnavailable, TimeoutError, ValueError):
            document = None
        source = (
            "shipped model and rules and the stored routing document"
            if document
            else "shipped model and rules"
        )
        document = document or shipped
        rules = routing_rules(shipped_rules(), document)
        return shipped_classifier(rules), document.classifier.min_confidence, source

    def _no_database_file(self) -> bool:
        url = make_url(self.settings.database_url)
        return url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file()

    async def _stored_document_if_any(self) -> RoutingDocument | None:
        if self._no_database_file():  # classify must not create the SQLite file
            return None
        engine = create_engine(self.settings.database_url, timeout_seconds=2.0)
        try:
            async with asyncio.timeout(3):
                row = await Store(engine).current_version()
            return None if row is None else versions.stored_document(row)
        finally:
            await engine.dispose()

    # -- the outbox, tokens, the schema: the database's own business -------------------------

    async def outbox(self, *, only_failed: bool) -> list[JSON]:
        statuses = ("failed",) if only_failed else ("pending", "failed")
        rows = await (await self.store()).outbox_rows(statuses=statuses)
        return [outbox_json(row) for row in rows]

    async def retry_forward(self, row_id: int) -> bool:
        return await (await self.store()).retry_outbox(row_id, now())

    async def create_token(self, name: str, role: str) -> str:
        try:
            return await create_token(await self.store(), name, Role(role), now())
        except TokenError as exc:
            raise Refused(str(exc)) from exc

    async def tokens(self) -> list[JSON]:
        return [
            {
                "name": row.name,
                "role": row.role,
                "created_at": iso(row.created_at),
                "revoked_at": iso(row.revoked_at) if row.revoked_at else None,
            }
            for row in await (await self.store()).tokens()
        ]

    async def revoke_token(self, name: str) -> bool:
        return await (await self.store()).revoke_token(name, now())

    async def upgrade(self) -> str:
        await self.store()
        return f"database {redacted(self.settings.database_url)} is up to date"


@asynccontextmanager
async def local_backend(settings: Settings) -> AsyncIterator[LocalBackend]:
    """A :class:`LocalBackend` for one command; outages become :class:`Refused`."""
    async with AsyncExitStack() as resources:
        try:
            yield LocalBackend(settings, resources)
        except versions.NoRouting as exc:
            raise Refused(NO_ROUTING) from exc
        except DatabaseUnavailable as exc:
            raise Refused(
                f"database {redacted(settings.database_url)} is unavailable: {exc}"
            ) from exc
