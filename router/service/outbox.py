"""The delivery worker: claims due outbox rows, hands each to its sender, records the
outcome, retries with backoff, redirects to the fallback destination (router/core/delivery.py).

It never names a vendor nor the store: senders satisfy the
:class:`~router.service.ports.Sender` port and are wired in by router/web/app.py (SMTP for
email, HTTP for chat hand-offs); the store satisfies the
:class:`~router.service.ports.Forwards` port. Every replica runs one worker; rows are leased
when claimed, so two workers never deliver the same row at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from router.core.delivery import Failure, Schedule, Stage, Status, after_failure
from router.core.lifecycle import Outcome, check_forward
from router.service.ports import DatabaseUnavailable, Delivery, DeliveryError, Forwards, Sender
from router.service.records import FailedAttempt, ForwardRecord, Target

log = structlog.get_logger(__name__)

#: A claimed row is someone's for this long; a worker that died frees it after the lease.
LEASE = timedelta(seconds=120)
BATCH = 20
#: Batches claimed and not yet recorded, at most: the next one is claimed while the last
#: one is sent, so the relay is kept busy while the database commits.
IN_FLIGHT = 2
#: Full batches in one pass of :meth:`OutboxWorker.deliver_due` (a pass ends, and the
#: worker looks at its wake-up event, at least this often).
PASS_BATCHES = 50
#: A batch's outcomes are recorded when its last send is done, and at least this often
#: while some are still in flight.
RECORD_SECONDS = 0.5


def delivery_of(row: ForwardRecord) -> Delivery:
    assert row.payload is not None
    return Delivery(
        outbox_id=row.id,
        interaction_id=row.interaction_id,
        kind=row.kind,
        destination=row.destination,
        address=row.address,
        external=row.external,
        payload=row.payload,
        meta=json.loads(row.meta),
    )


class OutboxWorker:
    def __init__(
        self,
        store: Forwards,
        senders: Mapping[str, Sender],
        *,
        schedule: Schedule,
        clock: Callable[[], datetime],
        wake: asyncio.Event,
        poll_seconds: float = 0.5,
        observe: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.senders = senders
        self.schedule = schedule
        self.clock = clock
        self.wake = wake
        self.poll_seconds = poll_seconds
        # told (kind, destination, result) after every attempt: the app counts them
        self.observe = observe or (lambda kind, destination, result: None)
        self._random = random.Random()

    async def run(self) -> None:
        """Deliver until cancelled. After each pass it clears :attr:`wake` and sleeps until
        it is set again or ``poll_seconds`` pass. So *wake* found cleared after being set
        means a pass ended since; set and seen cleared twice, a whole pass ran after the
        first set (the tests' way to know, instead of sleeping)."""
        while True:
            try:
                busy = await self.deliver_due()
            except DatabaseUnavailable as exc:
                log.warning("outbox.unavailable", error=str(exc))
                busy = False
            if busy:
                continue  # more may be due right away
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll_seconds)

    async def deliver_due(self) -> bool:
        """Deliver what is due now, batch after batch, until a claim comes back short; True
        when it stopped after :data:`PASS_BATCHES` full ones instead (there may be more).

        The next batch is claimed while the last one is being sent, and a batch is recorded
        while the next one is being sent: the SMTP connections do not wait for the database
        (on SQLite two commits and their fsyncs per batch). At most :data:`IN_FLIGHT`
        batches are claimed and not yet recorded."""
        running: deque[asyncio.Task[None]] = deque()
        full = True
        try:
            for _ in range(PASS_BATCHES):
                rows = await self.store.claim_outbox(
                    now=self.clock(), lease=LEASE, limit=BATCH, kinds=list(self.senders)
                )
                if rows:
                    running.append(asyncio.ensure_future(self.deliver(rows)))
                if len(rows) < BATCH:
                    full = False
                    break
                if len(running) >= IN_FLIGHT:
                    await running[0]
                    running.popleft()
            while running:  # a pass ends with everything it claimed recorded
                await running[0]
                running.popleft()
            return full
        except asyncio.CancelledError:  # the worker is stopping
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        except BaseException:
            # the database failed a claim or a record: what is being sent is still
            # recorded if the database comes back meanwhile, and raised after
            await asyncio.gather(*running, return_exceptions=True)
            raise

    async def deliver(self, rows: Sequence[ForwardRecord]) -> None:
        """Send claimed *rows* at once and record their outcomes together: in one
        transaction once every send is done (on SQLite one commit and one fsync for the
        batch, not one per row), or every :data:`RECORD_SECONDS` what is done by then while
        a slow relay holds the others up. A row is recorded delivered only after its send
        succeeded; a crash between the two sends it again after the lease, as it always
        could, and the wait bounds how much such a crash resends."""
        sends = [asyncio.ensure_future(self.attempt(row)) for row in rows]
        unrecorded: DatabaseUnavailable | None = None
        try:
            waiting: set[asyncio.Future[Attempted]] = set(sends)
            while waiting:
                done, waiting = await asyncio.wait(waiting, timeout=RECORD_SECONDS)
                if not done:
                    continue
                try:
                    await self.record([task.result() for task in done])
                except DatabaseUnavailable as exc:
                    # those rows stay leased and are sent again after the lease; the others
                    # are still sent and recorded if the database comes back meanwhile
                    unrecorded = unrecorded or exc
        finally:
            unfinished = [task for task in sends if not task.done()]
            for task in unfinished:  # the worker is being cancelled
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        if unrecorded is not None:
            raise unrecorded

    async def attempt(self, row: ForwardRecord) -> Attempted:
        """Send *row*; what came of it, to be recorded (nothing is written here)."""
        if row.payload is None:  # cannot happen for a pending row; never loop on it
            missing = FailedAttempt(Status.FAILED, "payload missing", outcome=Outcome.FAILED)
            return Attempted(row, change=missing)
        delivery = delivery_of(row)
        try:
            await self.senders[row.kind].send(delivery)
        except DeliveryError as exc:
            return self.failed(row, Failure(str(exc), exc.permanent))
        except Exception as exc:  # a sender bug must not stop the worker or lose the row
            log.exception("outbox.sender_crashed", outbox_id=row.id)
            return self.failed(row, Failure(f"sender error: {exc}", permanent=False))
        return Attempted(row)

    def failed(self, row: ForwardRecord, failure: Failure) -> Attempted:
        """What a failed attempt changes: a retry with backoff, the fallback, or the end."""
        outcome = after_failure(
            stage=Stage(row.stage),
            attempts=row.attempts,
            has_fallback=row.fallback is not None and row.fallback_address is not None,
            failure=failure,
            schedule=self.schedule,
            now=self.clock(),
            jitter=self._random.random(),
        )
        check_forward(Status.PENDING, outcome.status)  # the table allows every next state
        attempt = FailedAttempt(
            status=outcome.status,
            last_error=failure.message[:500],
            stage=outcome.stage,
            attempts=outcome.attempts,
            next_attempt_at=outcome.next_attempt_at,
        )
        if outcome.to_fallback:
            assert row.fallback is not None and row.fallback_address is not None
            fallback = Target(row.fallback, row.fallback_address, row.fallback_external)
            # the first destination failed: the guard counts this contact as a failure
            attempt = replace(
                attempt, redirect=fallback, outcome=Outcome.FALLBACK, delivery_failed=True
            )
        elif outcome.status is Status.FAILED:
            attempt = replace(
                attempt,
                outcome=Outcome.FAILED,
                delivery_failed=True if row.stage == Stage.PRIMARY.value else None,
            )
        return Attempted(row, change=attempt, failure=failure)

    async def record(self, attempts: Sequence[Attempted]) -> None:
        """Write *attempts* in one transaction, then count and log each (after the commit,
        so nothing is reported that the database does not hold)."""
        await self.store.outbox_settled(
            delivered=[item.row for item in attempts if item.change is None],
            failed=[(item.row, item.change) for item in attempts if item.change is not None],
            now=self.clock(),
        )
        for item in attempts:
            report(item, self.observe)


@dataclass(frozen=True, slots=True)
class Attempted:
    """One attempt on a claimed row: sent (no *change*), or what its failure changes."""

    row: ForwardRecord
    change: FailedAttempt | None = None
    failure: Failure | None = None  # None with a change: the row could not be attempted


def report(item: Attempted, observe: Callable[[str, str, str], None]) -> None:
    """The metric and the log line of one recorded attempt."""
    row, change, failure = item.row, item.change, item.failure
    if change is None:
        observe(row.kind, row.destination, "delivered")
        log.info(
            "outbox.delivered",
            outbox_id=row.id,
            interaction_id=row.interaction_id,
            kind=row.kind,
            destination=row.destination,
            stage=row.stage,
            attempts=row.attempts + 1,
        )
        return
    if failure is None:
        return  # a row without its payload, marked failed
    failed = change.status is Status.FAILED
    to_fallback = change.redirect is not None
    result = "failed" if failed else "fallback" if to_fallback else "retry"
    observe(row.kind, row.destination, result)
    log.warning(
        "outbox.failed" if failed else "outbox.retry",
        outbox_id=row.id,
        interaction_id=row.interaction_id,
        kind=row.kind,
        destination=row.destination,
        error=failure.message,
        permanent=failure.permanent,
        attempts=change.attempts,
        to_fallback=row.fallback if to_fallback else None,
        next_attempt_at=change.next_attempt_at.isoformat() if change.next_attempt_at else None,
    )
