"""Routing versions: the first one, applying a document, and the migration commands (cut-over,
rollback, resume, revert) as new versions computed from the current one.

It reaches the versions through the :class:`~router.service.ports.VersionRecords` port only
(the store satisfies it), so it never names the store."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from router.core.contact import Category, Channel
from router.core.document import RoutingDocument, document_json, shipped_document, validate_document
from router.core.migration import (
    cut_over,
    plan_rollback,
    rollback_in_force,
)
from router.service.ports import StaleVersion, VersionRecords
from router.service.records import VersionRecord

log = structlog.get_logger(__name__)


SYSTEM_ACTOR = "system"


async def ensure_initial_routing(store: VersionRecords, now: datetime) -> VersionRecord:
    """The current version; on an empty database, the shipped document becomes version 1."""
    row = await store.current_version()
    if row is not None:
        return row
    try:
        return await store.add_version(
            document=document_json(shipped_document()),
            kind="apply",
            actor=SYSTEM_ACTOR,
            reason="initial routing from config/routing.yaml",
            now=now,
            expected_current=0,
        )
    except StaleVersion:  # another replica or command stored it first
        row = await store.current_version()
        assert row is not None
        return row


async def apply_document(
    store: VersionRecords,
    document: RoutingDocument,
    *,
    actor: str,
    reason: str,
    now: datetime,
    kind: str = "apply",
    expected_current: int | None = None,
) -> VersionRecord | None:
    """Store *document* as a new version; None when it equals the current one."""
    current = await store.current_version()
    unchanged = current is not None and current.document == document_json(document)
    if unchanged and expected_current in (None, current.version if current else None):
        return None
    return await store.add_version(
        document=document_json(document),
        kind=kind,
        actor=actor,
        reason=reason,
        now=now,
        expected_current=expected_current,
    )


def stored_document(row: VersionRecord) -> RoutingDocument:
    return validate_document(json.loads(row.document))


#: Who the service records for the changes it makes by itself.
SCHEDULER_ACTOR = "scheduler"


GUARD_ACTOR = "guard"


_CHANGE_ATTEMPTS = 5


class NothingToResume(RuntimeError):
    """``resume`` without a rollback in force."""


async def current_or_raise(store: VersionRecords) -> VersionRecord:
    """The version in force; :class:`NoRouting` on a database that holds none yet."""
    row = await store.current_version()
    if row is None:
        raise NoRouting("the database holds no routing version yet")
    return row


class NoRouting(RuntimeError):
    """The database holds no routing version (the service has never started on it)."""


async def _change(
    store: VersionRecords,
    build: Callable[[VersionRecord], Awaitable[NewVersion]],
    now: datetime,
) -> VersionRecord:
    """Compute a new version from the current one and store it, starting again when someone
    else changed routing in between, so concurrent changes are never lost or merged blindly."""
    for _ in range(_CHANGE_ATTEMPTS):
        current = await current_or_raise(store)
        change = await build(current)
        try:
            return await store.add_version(
                document=document_json(change.document),
                kind=change.kind,
                actor=change.actor,
                reason=change.reason,
                now=now,
                expected_current=current.version,
                restores=change.restores,
                expires_at=change.expires_at,
                channel=change.channel,
            )
        except StaleVersion:
            continue
    raise StaleVersion(None, None)


@dataclass(frozen=True, slots=True)
class NewVersion:
    document: RoutingDocument
    kind: str
    actor: str
    reason: str
    restores: int | None = None
    expires_at: datetime | None = None
    channel: str | None = None


async def cutover(
    store: VersionRecords,
    channel: Channel | None,
    category: Category | None,
    percent: float,
    *,
    actor: str,
    reason: str,
    now: datetime,
) -> VersionRecord:
    """Set one share (None: every channel or category) as a new version of kind cutover."""

    async def build(current: VersionRecord) -> NewVersion:
        document = cut_over(stored_document(current), channel, category, percent)
        return NewVersion(document, "cutover", actor, reason)

    return await _change(store, build, now)


async def rollback(
    store: VersionRecords,
    *,
    actor: str,
    reason: str,
    now: datetime,
    channel: Channel | None = None,
    duration: timedelta | None = None,
    expected: int | None = None,
) -> VersionRecord:
    """Every share (of *channel*, or all) to 0 at once; with *duration*, the version from
    before comes back by itself when the time is up, unless routing changes meanwhile.

    With *expected*, only on top of that version: :class:`StaleVersion` when routing has
    changed since (the guard decided on it; another replica's guard may have acted first)."""

    async def build(current: VersionRecord) -> NewVersion:
        if expected is not None and current.version != expected:
            raise StaleVersion(expected, current.version)
        plan = plan_rollback(current, stored_document(current), channel, now, duration)
        return NewVersion(
            plan.document,
            "rollback",
            actor,
            reason,
            restores=plan.restores,
            expires_at=plan.expires_at,
            channel=channel.value if channel is not None else None,
        )

    row = await _change(store, build, now)
    log.warning(
        "routing.rolled_back",
        version=row.version,
        actor=actor,
        reason=reason,
        channel=row.channel or "all",
        until=row.expires_at.isoformat() if row.expires_at else None,
    )
    return row


async def resume(
    store: VersionRecords, *, actor: str, reason: str, now: datetime, expected: int | None = None
) -> VersionRecord:
    """Bring back the version from before the rollback in force, as a version of kind resume.

    With *expected*, only if that rollback is still current (the scheduler's expiry)."""

    async def build(current: VersionRecord) -> NewVersion:
        in_force = rollback_in_force(current)
        if in_force is None or in_force.restores is None:
            raise NothingToResume(
                f"no rollback is in force (version {current.version} is a {current.kind})"
            )
        if expected is not None and current.version != expected:
            raise NothingToResume(f"version {expected} is no longer current")
        earlier = await store.version(in_force.restores)
        if earlier is None:
            raise NothingToResume(f"version {in_force.restores} is missing")
        return NewVersion(
            stored_document(earlier), "resume", actor, reason, restores=earlier.version
        )

    row = await _change(store, build, now)
    log.info("routing.resumed", version=row.version, restores=row.restores, actor=actor)
    return row


async def revert(
    store: VersionRecords, number: int, *, actor: str, reason: str, now: datetime
) -> VersionRecord:
    """Make version *number*'s document current again, as a new version of kind revert."""
    old = await store.version(number)
    if old is None:
        raise LookupError(f"there is no version {number}")

    async def build(current: VersionRecord) -> NewVersion:
        return NewVersion(stored_document(old), "revert", actor, reason, restores=number)

    return await _change(store, build, now)
