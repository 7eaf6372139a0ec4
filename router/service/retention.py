"""Retention: what is kept of a contact once it is older than ``SWITCHBOARD_RETENTION_DAYS``.

The interaction rows stay, with everything reports, staffing and statements count (so their
totals for an old period never change); what could hold personal data is emptied: the
bodies of forwards that failed for good (a pending one is owed and never touched, however
long its destination has been away), recording links (the
voicemail's and call recordings'), partner feedback comments, and delivery attempts' error
texts (an SMTP answer may quote an address).

Due work (:func:`router.service.scheduler.run_due_work`) runs it once a UTC day, exactly once
across replicas: the day's run is claimed in ``scheduled_runs`` by the transaction of its
first batch, so a replica that loses the claim does nothing, and a run that fails before
its first commit leaves the day free for another. Rows are emptied in batches of their own
transactions, each after the last row the one before read (a backlog is read once), so a
large backlog never holds one long transaction; what a crash leaves is
emptied by the next day's run. ``switchboard retention run`` runs it by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from router.service.ports import DatabaseUnavailable
from router.service.records import RetentionCounts, RetentionCursor
from router.store import Store

log = structlog.get_logger(__name__)

JOB = "retention"
#: Rows of each kind emptied per transaction.
BATCH = 500


def cutoff_of(now: datetime, days: int) -> datetime:
    """Contacts received before this are past retention."""
    return now - timedelta(days=days)


def period_of(now: datetime) -> str:
    """The run's period: its UTC day."""
    return now.astimezone(UTC).date().isoformat()


def note_of(days: int) -> str:
    return f"body deleted after {days} days (SWITCHBOARD_RETENTION_DAYS)"


async def apply_retention(
    store: Store, now: datetime, days: int, *, claim: bool = True, batch: int = BATCH
) -> RetentionCounts | None:
    """Empty the personal data of contacts received more than *days* ago. With *claim*
    (scheduled work), only if today's run is not another replica's: None then. Logs
    ``retention.done`` with the counts."""
    cutoff = cutoff_of(now, days)
    period = period_of(now)
    note = note_of(days)
    first = await store.retention_batch(
        cutoff=cutoff, now=now, batch=batch, note=note, claim=(JOB, period) if claim else None
    )
    if first is None:
        return None
    total, cursor = first
    previous = RetentionCursor()
    while cursor != previous:  # a batch that found nothing left was the last
        previous = cursor
        step = await store.retention_batch(
            cutoff=cutoff, now=now, batch=batch, note=note, cursor=cursor
        )
        if step is None:  # only a claim is refused; none is asked for here
            break
        counts, cursor = step
        total += counts
    if claim:
        await store.finish_run(JOB, period, now, json.dumps(total.as_json()))
    log.info(
        "retention.done",
        days=days,
        cutoff=cutoff.isoformat(),
        scheduled=claim,
        **total.as_json(),
    )
    return total


async def retention_due(store: Store, now: datetime, days: int) -> RetentionCounts:
    """What :func:`apply_retention` would empty now (a dry run): nothing changes."""
    return await store.retention_due(cutoff=cutoff_of(now, days), now=now)


@dataclass
class RetentionSchedule:
    """Retention as due work, once a UTC day, in a task of its own: a first run over a large
    backlog takes many batches, and the due-work loop must keep following routing changes
    meanwhile. Each process remembers the last day it saw done, so the loop asks the
    database about it once a day, not twice a second."""

    days: int
    _done: str | None = field(default=None, init=False)
    _running: asyncio.Task[None] | None = field(default=None, init=False)

    async def run_if_due(self, store: Store, now: datetime) -> None:
        """Start today's run unless it is done, running, or another replica's."""
        period = period_of(now)
        if self._done == period or (self._running is not None and not self._running.done()):
            return
        if await store.has_run(JOB, period):
            self._done = period
            return
        self._running = asyncio.create_task(self._run(store, now, period))

    async def _run(self, store: Store, now: datetime, period: str) -> None:
        try:
            await apply_retention(store, now, self.days)
            self._done = period
        except DatabaseUnavailable as exc:  # the claim rolled back with it: tried again
            log.error("retention.failed", error=str(exc))

    async def wait(self) -> None:
        """Until the run started last is over (tests, shutdown)."""
        if self._running is not None:
            await asyncio.shield(self._running)

    async def close(self) -> None:
        if self._running is not None and not self._running.done():
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._running
