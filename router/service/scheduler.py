"""Due work: plan steps, a timed rollback's return and the guard, each done once across
replicas."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from datetime import datetime

import structlog

from router.core.contact import Category, Channel
from router.core.document import document_json
from router.core.migration import (
    ChannelHealth,
    PlanStep,
    guard_trips,
    return_due,
    rollback_in_force,
    with_shares,
)
from router.service.ports import StaleVersion
from router.service.records import NewPlanStep, PlanStepRecord, VersionRecord
from router.service.retention import RetentionSchedule
from router.service.versions import (
    GUARD_ACTOR,
    SCHEDULER_ACTOR,
    NothingToResume,
    resume,
    rollback,
    stored_document,
)
from router.store import Store

log = structlog.get_logger(__name__)


async def schedule_plan(
    store: Store, steps: Sequence[PlanStep], *, actor: str, now: datetime
) -> list[PlanStepRecord]:
    rows = [
        NewPlanStep(
            due_at=step.at,
            reason=step.reason,
            cutover=json.dumps(
                {
                    ch.value: {cat.value: pct for cat, pct in cats.items()}
                    for ch, cats in step.cutover.items()
                },
                sort_keys=True,
            ),
            created_by=actor,
            created_at=now,
        )
        for step in steps
    ]
    return await store.add_plan_steps(rows)


def step_shares(row: PlanStepRecord) -> dict[Channel, dict[Category, float]]:
    data = json.loads(row.cutover)
    return {
        Channel(channel): {Category(cat): float(pct) for cat, pct in cats.items()}
        for channel, cats in data.items()
    }


async def run_plan_step(store: Store, step: PlanStepRecord, now: datetime) -> VersionRecord | None:
    """Execute one due step, exactly once across replicas: the step is claimed and the
    version stored in one transaction, so a second replica finds it done. A rollback
    committed since the caller looked holds the step."""

    def next_document(current: VersionRecord) -> str | None:
        if rollback_in_force(current) is not None:
            return None
        return document_json(with_shares(stored_document(current), step_shares(step)))

    row = await store.execute_plan_step(
        step.id, now, next_document, actor=SCHEDULER_ACTOR, reason=step.reason
    )
    if row is not None:
        log.info("plan.step_executed", step=step.id, version=row.version, reason=step.reason)
    return row


async def run_due_work(
    store: Store, now: datetime, *, retention: RetentionSchedule | None = None
) -> list[VersionRecord]:
    """Everything due now: a timed rollback's return, plan steps, the guard, and with
    *retention* (``SWITCHBOARD_RETENTION_DAYS``) the day's retention run. The routing
    versions made are returned.

    Plan steps wait while a rollback is in force: a scheduled step must not undo an
    incident rollback behind the on-call person's back (status lists them as held)."""
    made = await _routing_work(store, now)
    if retention is not None:
        await retention.run_if_due(store, now)
    return made


async def _routing_work(store: Store, now: datetime) -> list[VersionRecord]:
    made: list[VersionRecord] = []
    current = await store.current_version()
    if current is None:
        return made
    if return_due(current, now):
        # another replica may have resumed, or someone changed routing, a moment ago
        with contextlib.suppress(NothingToResume, StaleVersion):
            made.append(
                await resume(
                    store,
                    actor=SCHEDULER_ACTOR,
                    reason=f"rollback of version {current.version} ended ({current.reason})",
                    now=now,
                    expected=current.version,
                )
            )
        return made
    if rollback_in_force(current) is None:
        for step in await store.plan_steps():
            if step.due_at > now:
                break
            row = await run_plan_step(store, step, now)
            if row is not None:
                made.append(row)
        if made:
            return made
    tripped = await guard_check(store, now)
    if tripped is not None:
        made.append(tripped)
    return made


async def guard_check(store: Store, now: datetime) -> VersionRecord | None:
    current = await store.current_version()
    if current is None:
        return None
    document = stored_document(current)
    guard = document.guard
    if guard is None:
        return None
    since = now - guard.window_duration
    if current.kind == "resume":  # failures from before a resume were already acted on
        since = max(since, current.created_at)
    external = [name for name in document.destinations if document.is_external(name)]
    health = [
        ChannelHealth(Channel(channel), contacts, failures)
        for channel, contacts, failures in await store.external_contacts(since, external)
    ]
    tripped = guard_trips(document, health)
    if not tripped:
        return None
    channel = tripped[0]
    item = next(h for h in health if h.channel is channel)
    reason = (
        f"guard: {item.failures} of {item.contacts} {channel.value} contacts to external "
        f"destinations failed within {guard.window} (limit {guard.max_failure_rate:.0%})"
    )
    try:
        return await rollback(
            store,
            actor=GUARD_ACTOR,
            reason=reason,
            now=now,
            channel=channel,
            duration=guard.rollback_duration,
            expected=current.version,  # decided on it: a replica that lost the race stops
        )
    except StaleVersion:
        return None
