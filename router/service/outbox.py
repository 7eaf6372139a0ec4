"""The delivery worker: claims due outbox rows, hands each to its sender, records the
outcome, retries with backoff, redirects to the fallback destination (router/core/delivery.py).

It never names a vendor nor the store: senders satisfy the
:class:`~router.service.ports.Sender` port and are wired in by router/web/app.py (SMTP for
email, HTTP for chat hand-offs); the store satisfies the
:class:`~router.service.ports.Forwards` port. Every replica runs one worker; rows are leased
when claimed, so two workers never deliver the same row at the same time.

A misbehaving destination holds only its own forwards. Forwards are grouped in *lanes*, one
per kind and destination (email to the partner, chat to the hotline, …); a lane may have at
most :data:`LANE_LIMIT` forwards claimed and not yet recorded, all lanes together
:data:`CLAIMED_LIMIT`, and a claim leaves out the lanes that are full. Sends run in the
background: the worker goes on claiming for the other lanes while a silent SMTP relay or chat
endpoint holds its own until they time out. Every send, whatever its sender's own timeouts,
is cut off at :func:`router.core.delivery.send_deadline` of the lease, so no other replica
takes a forward that is still being sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

import structlog

from router.core.delivery import Failure, Schedule, Stage, Status, after_failure, send_deadline
from router.core.lifecycle import Outcome, check_forward
from router.metrics import Metrics
from router.service.ports import DatabaseUnavailable, Delivery, DeliveryError, Forwards, Sender
from router.service.records import FailedAttempt, ForwardRecord, Target

log = structlog.get_logger(__name__)

#: A claimed row is someone's for this long; a worker that died frees it after the lease.
LEASE = timedelta(seconds=120)
BATCH = 20
#: Forwards of one lane (one kind to one destination) claimed and not yet recorded, at
#: most: a lane is claimed for again once it has room for a whole batch, so a busy
#: destination has its next batch claimed while the last one is sent (the relay is kept busy
#: while the database commits), and a stuck one holds no more than this.
LANE_LIMIT = 2 * BATCH
#: Forwards claimed and not yet recorded, of every lane together: room for three lanes stuck
#: at once and the rest still flowing.
CLAIMED_LIMIT = 8 * BATCH
#: Full batches in one pass of :meth:`OutboxWorker.claim_due` (a pass ends, and the worker
#: looks at its wake-up event, at least this often).
PASS_BATCHES = 50
#: A batch's outcomes are recorded when its last send is done, and at least this often
#: while some are still in flight.
RECORD_SECONDS = 0.5

#: (kind, destination): the forwards that share a destination's fate.
Lane = tuple[str, str]


class Pass(Enum):
    """How a pass of claims ended."""

    DONE = "done"  # a claim came back short with no lane left out: nothing more is due now
    LIMITED = "limited"  # full lanes were left out: more may be due once they make room
    MORE = "more"  # :data:`PASS_BATCHES` full claims: there may be more right away


def lane_of(row: ForwardRecord) -> Lane:
    return (row.kind, row.destination)


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
        lease: timedelta = LEASE,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.senders = senders
        self.schedule = schedule
        self.clock = clock
        self.wake = wake
        self.poll_seconds = poll_seconds
        self.lease = lease
        #: the bound of one whole send, well within the lease (the rest records it)
        self.send_deadline = send_deadline(lease).total_seconds()
        self.metrics = metrics
        #: passes of :meth:`run` so far (a test's way to see the worker left alone)
        self.passes = 0
        self._random = random.Random()
        self._claimed: Counter[Lane] = Counter()  # claimed and not yet recorded
        self._batches: set[asyncio.Task[None]] = set()
        # set whenever claimed forwards are recorded: a full lane may have room again
        self._settled = asyncio.Event()
        self._failing: Counter[Lane] = Counter()  # failed attempts in a row
        self._next_due: datetime | None = None  # the earliest retry this worker scheduled

    async def run(self) -> None:
        """Deliver until cancelled. After each pass of claims it clears :attr:`wake` and
        sleeps until it is set again, a retry it scheduled falls due, a full lane makes room,
        or ``poll_seconds`` pass. So *wake* found cleared after being set means a pass ended
        since; set and seen cleared twice, a whole pass ran after the first set (the tests'
        way to know, instead of sleeping). Sends go on in the background meanwhile."""
        unavailable = False  # said once per outage, not on every pass
        try:
            while True:
                self._settled.clear()
                try:
                    ended = await self.claim_due()
                except DatabaseUnavailable as exc:
                    if not unavailable:
                        log.warning("outbox.unavailable", error=str(exc))
                    unavailable, ended = True, Pass.DONE
                else:
                    if unavailable:
                        log.info("outbox.available")
                    unavailable = False
                self.passes += 1
                if ended is Pass.MORE:
                    continue  # more may be due right away
                self.wake.clear()
                await self._idle(limited=ended is Pass.LIMITED)
        finally:
            await self._stop()

    async def _idle(self, *, limited: bool) -> None:
        timeout = self.poll_seconds
        if self._next_due is not None:
            until_due = (self._next_due - self.clock()).total_seconds()
            if until_due <= timeout:
                self._next_due = None  # the pass after this wait takes it
            timeout = max(min(timeout, until_due), 0.0)
        events = [self.wake, self._settled] if limited else [self.wake]
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def deliver_due(self) -> bool:
        """Deliver what is due now and wait until all of it is recorded: claims until one
        comes back short (waiting for room when full lanes were left out); True when it
        stopped after :data:`PASS_BATCHES` full claims instead (there may be more). For
        tools and tests; the service's worker is :meth:`run`, which never waits for a
        destination."""
        try:
            while True:
                self._settled.clear()
                ended = await self.claim_due()
                if ended is not Pass.LIMITED:
                    break
                # room is made when claimed forwards are recorded
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled.wait(), self.poll_seconds)
            await self._finished()
            return ended is Pass.MORE
        except asyncio.CancelledError:
            await self._stop()
            raise
        except BaseException:
            await self._finished()  # what is being sent is still recorded
            raise

    async def claim_due(self) -> Pass:
        """Claim due forwards batch after batch, each batch sent in the background, until a
        claim comes back short, the lanes are full, or :data:`PASS_BATCHES` full claims."""
        kinds = list(self.senders)
        for _ in range(PASS_BATCHES):
            room = CLAIMED_LIMIT - sum(self._claimed.values())
            if room <= 0:
                return Pass.LIMITED
            # a lane is claimed for only with room for a whole batch: never over its limit
            busy = sorted(lane for lane, n in self._claimed.items() if n > LANE_LIMIT - BATCH)
            limit = min(BATCH, room)
            rows = await self.store.claim_outbox(
                now=self.clock(), lease=self.lease, limit=limit, kinds=kinds, busy=busy
            )
            if rows:
                self._start(rows)
            if len(rows) < limit:
                return Pass.LIMITED if busy else Pass.DONE
        return Pass.MORE

    def _start(self, rows: Sequence[ForwardRecord]) -> None:
        for row in rows:
            self._claimed[lane_of(row)] += 1
        self._show_in_flight({lane_of(row) for row in rows})
        task = asyncio.ensure_future(self._batch(rows))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    def _release(self, rows: Sequence[ForwardRecord]) -> None:
        """*rows* are recorded (or given up until their lease ends): their lanes have room."""
        for row in rows:
            lane = lane_of(row)
            self._claimed[lane] -= 1
            if self._claimed[lane] <= 0:
                del self._claimed[lane]
        self._show_in_flight({lane_of(row) for row in rows})
        self._settled.set()

    def _show_in_flight(self, lanes: set[Lane]) -> None:
        if self.metrics is not None:
            for lane in lanes:
                self.metrics.outbox_in_flight.labels(*lane).set(self._claimed.get(lane, 0))

    async def _finished(self) -> None:
        """Wait until every batch this worker claimed is recorded."""
        while self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)

    async def _stop(self) -> None:
        """Cancel the sends in flight (the worker is stopping): their rows stay leased and
        are sent again after the lease."""
        batches = list(self._batches)
        for task in batches:
            task.cancel()
        await asyncio.gather(*batches, return_exceptions=True)

    async def _batch(self, rows: Sequence[ForwardRecord]) -> None:
        try:
            await self.deliver(rows)
        except DatabaseUnavailable as exc:
            log.warning(
                "outbox.unrecorded",
                error=str(exc),
                forwards=len(rows),
                hint="what was not recorded is sent again once its lease runs out",
            )
        except Exception:  # never lose the worker over one batch
            log.exception("outbox.batch_crashed", forwards=len(rows))

    async def deliver(self, rows: Sequence[ForwardRecord]) -> None:
        """Send claimed *rows* at once and record their outcomes together: in one
        transaction once every send is done (on SQLite one commit and one fsync for the
        batch, not one per row), or every :data:`RECORD_SECONDS` what is done by then while
        a slow destination holds the others up. A row is recorded delivered only after its
        send succeeded; a crash between the two sends it again after the lease, as it always
        could, and the wait bounds how much such a crash resends."""
        sends = [asyncio.ensure_future(self.attempt(row)) for row in rows]
        unrecorded: DatabaseUnavailable | None = None
        released: set[int] = set()
        try:
            waiting: set[asyncio.Future[Attempted]] = set(sends)
            while waiting:
                done, waiting = await asyncio.wait(waiting, timeout=RECORD_SECONDS)
                if not done:
                    continue
                attempts = [task.result() for task in done]
                try:
                    await self.record(attempts)
                except DatabaseUnavailable as exc:
                    # those rows stay leased and are sent again after the lease; the others
                    # are still sent and recorded if the database comes back meanwhile
                    unrecorded = unrecorded or exc
                finally:
                    self._release([item.row for item in attempts])
                    released.update(item.row.id for item in attempts)
        finally:
            unfinished = [task for task in sends if not task.done()]
            for task in unfinished:  # the worker is being cancelled
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            self._release([row for row in rows if row.id not in released])
        if unrecorded is not None:
            raise unrecorded

    async def attempt(self, row: ForwardRecord) -> Attempted:
        """Send *row*, within the send deadline; what came of it, to be recorded (nothing
        is written here)."""
        if row.payload is None:  # cannot happen for a pending row; never loop on it
            missing = FailedAttempt(Status.FAILED, "payload missing", outcome=Outcome.FAILED)
            return Attempted(row, change=missing)
        delivery = delivery_of(row)
        started = time.monotonic()
        deadline = asyncio.timeout(self.send_deadline)
        try:
            async with deadline:
                await self.senders[row.kind].send(delivery)
        except DeliveryError as exc:
            return self.failed(row, Failure(str(exc), exc.permanent))
        except TimeoutError as exc:
            if not deadline.expired():
                return self.crashed(row, exc)
            # the sender's own timeouts should have come first; the lease must not run out
            message = f"no answer within the send deadline ({self.send_deadline:g} s)"
            return self.failed(row, Failure(message, permanent=False))
        except Exception as exc:
            return self.crashed(row, exc)
        finally:
            if self.metrics is not None:
                self.metrics.outbox_send_seconds.labels(*lane_of(row)).observe(
                    time.monotonic() - started
                )
        return Attempted(row)

    def crashed(self, row: ForwardRecord, exc: Exception) -> Attempted:
        """A sender bug must not stop the worker or lose the row: a failure worth a retry."""
        log.error("outbox.sender_crashed", outbox_id=row.id, exc_info=exc)
        return self.failed(row, Failure(f"sender error: {exc!r}", permanent=False))

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
            report(item, self.metrics)
            self._follow_health(item)
            retry_at = item.change.next_attempt_at if item.change is not None else None
            if retry_at is not None and (self._next_due is None or retry_at < self._next_due):
                self._next_due = retry_at  # the worker wakes for it (a fallback: at once)

    def _follow_health(self, item: Attempted) -> None:
        """One line when a destination starts failing and one when it is back, and the
        gauge of failures in a row: where a stuck or failing destination shows."""
        lane = lane_of(item.row)
        kind, destination = lane
        if item.change is None:
            failures = self._failing.pop(lane, 0)
            if failures:
                log.info(
                    "outbox.destination_recovered",
                    kind=kind,
                    destination=destination,
                    failed_attempts=failures,
                )
        elif item.failure is not None:
            self._failing[lane] += 1
            if self._failing[lane] == 1:
                log.warning(
                    "outbox.destination_failing",
                    kind=kind,
                    destination=destination,
                    error=item.failure.message,
                    permanent=item.failure.permanent,
                )
        if self.metrics is not None:
            gauge = self.metrics.outbox_consecutive_failures.labels(kind, destination)
            gauge.set(self._failing.get(lane, 0))


@dataclass(frozen=True, slots=True)
class Attempted:
    """One attempt on a claimed row: sent (no *change*), or what its failure changes."""

    row: ForwardRecord
    change: FailedAttempt | None = None
    failure: Failure | None = None  # None with a change: the row could not be attempted


def report(item: Attempted, metrics: Metrics | None) -> None:
    """The metric and the log line of one recorded attempt."""
    row, change, failure = item.row, item.change, item.failure

    def observe(kind: str, destination: str, result: str) -> None:
        if metrics is not None:
            metrics.outbox_attempts.labels(kind, destination, result).inc()

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
