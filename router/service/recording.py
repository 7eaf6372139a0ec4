"""Running a unit of work for a provider that waits on the answer: one budget for all of it.

A call is answered within ``SWITCHBOARD_DB_TIMEOUT`` (plus the time to render it) whatever
the database does, so always within Twilio's 15 s (SPEC §7: a call still gets its safe
``<Dial>`` when the database cannot be written). Two things make that hold:

* One deadline for the whole unit of work — waiting for the database, writing, committing,
  and running it again after a shared rollback — never one per step.
* At the deadline the caller is answered at once. The unit of work runs in a task of its
  own; a driver still busy after its cancellation (a SQLite busy wait in aiosqlite's
  thread, the rollback of a PostgreSQL connection that no longer answers) cleans up in the
  background, not on the caller's time. Such a task is kept until it ends
  (:func:`settled` waits for the rest at shutdown) and its end is logged
  (``store.finished_late``: ``failed``, or ``given_up`` when it ended on its cancellation).
  In the rare case that its shared commit was already under way when the caller gave up,
  the contact logged as unrecorded is in the database after all, and replaying the log line
  adds nothing (the provider id is unique).

A unit of work rolled back only because another one sharing its transaction failed
(:class:`~router.service.ports.RolledBack`: SQLite's group commit) is run again, within the
same budget, so one bad contact cannot cost the others their records. So, once, is one
whose connection broke under it (:class:`~router.service.ports.ConnectionLost`: a server
that closed a pooled connection used a moment ago, which the pool does not ping).

Nothing here knows SQL: it runs the service's own functions over the
:class:`~router.service.ports.ContactUnitOfWork` port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from router.service.ports import ConnectionLost, ContactUnitOfWork, DatabaseUnavailable, RolledBack

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

#: How often a unit of work is run when others keep spoiling its shared transaction; each
#: run is one more turn in the writer's queue (milliseconds), all within the one budget.
MAX_RUNS = 3

#: Units of work the caller stopped waiting for, until they end (a strong reference keeps
#: a task alive; the event loop holds only weak ones).
_detached: set[asyncio.Task[Any]] = set()


async def recorded(
    uow: ContactUnitOfWork, work: Callable[[ContactUnitOfWork], Awaitable[_T]]
) -> _T:
    """``async with uow: return await work(uow)``, within ``uow.timeout_seconds`` in all;
    run again when it was rolled back for another's failure. Raises
    :class:`DatabaseUnavailable` when the budget is spent."""
    return await within(uow.timeout_seconds, lambda: _runs(uow, work))


async def within(seconds: float, start: Callable[[], Awaitable[_T]]) -> _T:
    """What *start* begins, or :class:`DatabaseUnavailable` after *seconds*, however long
    the database work takes to notice its cancellation (it ends in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    task = loop.create_task(_awaited(start))
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        # the request itself was cancelled (shutdown): its database work goes on alone,
        # still stopped at the deadline, so a batch it writes in is not spoilt for others
        stop = loop.call_at(deadline, task.cancel)
        task.add_done_callback(lambda _: stop.cancel())
        _detach(task)
        raise
    if not done:
        task.cancel()
        _detach(task)
        raise DatabaseUnavailable(f"the database did not answer within {seconds:g} s")
    return task.result()


async def _awaited(start: Callable[[], Awaitable[_T]]) -> _T:
    return await start()


async def _runs(uow: ContactUnitOfWork, work: Callable[[ContactUnitOfWork], Awaitable[_T]]) -> _T:
    run, reconnected = 1, False
    while True:
        try:
            async with uow:
                return await work(uow)
        except RolledBack as exc:
            if run >= MAX_RUNS:
                raise
            log.warning("store.run_again", run=run, error=str(exc))
            run += 1
        except ConnectionLost as exc:
            # once: a pooled connection the server had closed (the pool pings only rested
            # ones); a second loss means the server is gone, and that is an outage
            if reconnected:
                raise
            log.warning("store.connection_lost", error=str(exc).split("\n", 1)[0])
            reconnected = True


def _detach(task: asyncio.Task[Any]) -> None:
    _detached.add(task)
    task.add_done_callback(_finished_late)


def _finished_late(task: asyncio.Task[Any]) -> None:
    _detached.discard(task)
    if task.cancelled():  # whether a group commit it waited for went through is not known
        outcome, error = "given_up", None
    elif (exc := task.exception()) is not None:
        outcome, error = "failed", str(exc) or type(exc).__name__
    else:
        outcome, error = "committed", None
    log.info("store.finished_late", outcome=outcome, error=error)


async def settled(timeout_seconds: float) -> None:
    """Wait (at most *timeout_seconds*) for the units of work given up on in this event loop
    to end, before the engine they use is disposed."""
    loop = asyncio.get_running_loop()
    pending = {task for task in _detached if task.get_loop() is loop}
    if pending:
        await asyncio.wait(pending, timeout=timeout_seconds)
