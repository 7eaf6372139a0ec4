"""Readiness: can this process write to its database now? What ``/readyz`` reports.

SPEC §7 separates an outage (the database cannot be written: calls are answered unrecorded,
email and chat get 503) from normal running, and the platform must see that difference.
A database that answers a ``SELECT 1`` is not enough: a SQLite file locked by another
process reads fine in WAL mode while every write waits, and a PostgreSQL standby after a
failover answers queries but refuses writes. So the probe asks for what a contact needs — a
write transaction (the store's :meth:`~router.store.repository.Store.writable`) — and:

* it is cheap: nothing is written (on SQLite one turn in the writer's queue, shared with
  the contacts arriving then; no fsync), and one result serves every probe for
  ``fresh_seconds``, however often the platform asks, with one probe in flight at a time;
* it is bounded: the answer comes within ``timeout_seconds`` even when the database does
  not answer at all (:func:`router.service.recording.within`);
* a change of state is logged once (``database.unwritable`` with the reason,
  ``database.writable`` when it is back), and *observe* is told every result (a gauge).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from router.service.ports import DatabaseUnavailable
from router.service.recording import within

log = structlog.get_logger(__name__)

#: A probe of the database: returns when a write could start, else raises
#: :class:`DatabaseUnavailable`; it is given the seconds it may take.
Probe = Callable[[float], Awaitable[None]]


class Readiness:
    def __init__(
        self,
        probe: Probe,
        *,
        timeout_seconds: float,
        fresh_seconds: float = 1.0,
        observe: Callable[[bool], None] = lambda writable: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._timeout = timeout_seconds
        self._fresh = fresh_seconds
        self._observe = observe
        self._clock = clock
        self._problem: str | None = None
        self._checked_at: float | None = None
        self._probing: asyncio.Task[str | None] | None = None

    async def problem(self) -> str | None:
        """Why the database cannot be written now, or None when it can."""
        if self._checked_at is not None and self._clock() - self._checked_at < self._fresh:
            return self._problem
        if self._probing is None:
            self._probing = asyncio.get_running_loop().create_task(self._probe_once())
        # shielded: a probe whose asker went away still ends (bounded) and serves the next
        return await asyncio.shield(self._probing)

    async def _probe_once(self) -> str | None:
        try:
            await within(self._timeout, lambda: self._probe(self._timeout))
            problem = None
        except DatabaseUnavailable as exc:
            problem = f"database cannot be written: {exc}"
        finally:
            self._probing = None
        if problem is not None and self._problem is None:
            log.error("database.unwritable", error=problem)
        elif problem is None and self._problem is not None:
            log.info("database.writable", after=self._problem)
        self._problem, self._checked_at = problem, self._clock()
        self._observe(problem is None)
        return problem
