"""Group commit: on SQLite, the contacts that arrive together share one transaction.

SQLite has one writer, and each commit waits for the disk (``synchronous=FULL``). When every
contact committed alone, the service spent most of a busy second waiting on fsync while its
event loop sat idle. Here the first unit of work to arrive opens a transaction (taking the
store's write lock, like any writer); the units of work queued behind it write into that same
transaction, one after the other, and one commit makes all of them durable. Each one returns
from ``async with`` only after that commit, so a contact is still answered only once it is on
disk (SPEC §7). A unit of work that finds no one behind it commits at once: a lone contact
waits for nobody.

A unit of work that fails without having written anything (a replayed token, a retry that
found its first answer) leaves the batch untouched. One that fails after writing (or while
writing: a statement the driver refuses, a unit of work that ran out of time) cannot be
taken out of the shared transaction (savepoints would cost two more trips to aiosqlite's
thread per contact, which is what this module saves), so the batch is rolled back. That
failure is the unit of work's own; the others in the batch get
:class:`~router.service.ports.RolledBack` and run again in a later transaction
(:mod:`router.service.recording`), so one bad contact — an email whose Message-ID the driver
cannot bind, say — costs the calls that arrived with it nothing. Only when the transaction
itself fails (it cannot open, or its commit fails: the database's fault) does each one get
:class:`DatabaseUnavailable`: a call is then still answered and logged in full, and email
and chat answer 503 so the provider retries.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from enum import Enum

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from router.service.ports import DatabaseUnavailable, RolledBack

#: How many units of work one transaction takes at most. Each writes in turn, so this bounds
#: how long the first of them waits for its commit (~0.3 ms of writing each).
MAX_BATCH = 32


class _Ending(Enum):
    DONE = "done"  # its writes wait for the batch's commit
    CLEAN = "clean"  # failed or left having written nothing: the batch goes on
    POISONED = "poisoned"  # failed after writing, or the database failed: roll back


_DATABASE_ERRORS = (DatabaseUnavailable, SQLAlchemyError, OSError)
_ROLLED_BACK = "rolled back: another unit of work in the same transaction failed after writing"


class Member:
    """One unit of work's place in a batch. The unit of work reports what it writes, so a
    failure can be told apart: harmless (nothing written) or fatal to the batch."""

    __slots__ = ("_admitted", "_committed", "_ended", "writing", "wrote")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._admitted: asyncio.Future[AsyncConnection] = loop.create_future()
        self._ended: asyncio.Future[_Ending] = loop.create_future()
        self._committed: asyncio.Future[None] = loop.create_future()
        #: a statement of this unit of work changed a row
        self.wrote = False
        #: a write statement is under way (cancelled now, its effect is unknown)
        self.writing = False

    def _admit(self, connection: AsyncConnection) -> bool:
        """Its turn in the open transaction; False when it stopped waiting for one."""
        if self._admitted.done():
            return False
        self._admitted.set_result(connection)
        return True

    def _refuse(self, error: DatabaseUnavailable) -> None:
        if not self._admitted.done():
            self._admitted.set_exception(error)

    def _end(self, error: BaseException | None) -> None:
        if self._ended.done():
            return
        if error is None:
            self._ended.set_result(_Ending.DONE)
        elif self.wrote or self.writing or isinstance(error, _DATABASE_ERRORS):
            self._ended.set_result(_Ending.POISONED)
        else:
            self._ended.set_result(_Ending.CLEAN)

    def _abandon(self) -> None:
        """It stopped waiting for its turn (its own timeout, or refused), having written
        nothing; its admission is settled already, so the writer will pass it by."""
        if not self._ended.done():
            self._ended.set_result(_Ending.CLEAN)

    def _settle(self, error: DatabaseUnavailable | None) -> None:
        """Its batch committed (*error* None) or was rolled back."""
        if self._committed.done():  # it stopped waiting (its own timeout)
            return
        if self._ended.done() and self._ended.result() is not _Ending.DONE:
            return  # it failed on its own: nobody waits for this
        if error is None:
            self._committed.set_result(None)
        else:
            self._committed.set_exception(error)


class _Poisoned(Exception):
    pass


class GroupCommit:
    """Units of work share transactions opened by *open_transaction* (the store's guarded
    write transaction, committed when its block ends normally)."""

    def __init__(
        self,
        open_transaction: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._open_transaction = open_transaction
        self._max_batch = max_batch
        self._queue: deque[Member] = deque()
        self._writer: asyncio.Task[None] | None = None
        #: transactions committed, and the units of work they held (for tests and the bench)
        self.batches = 0
        self.members = 0

    @asynccontextmanager
    async def member(self) -> AsyncIterator[tuple[AsyncConnection, Member]]:
        """Wait for a turn in a transaction, write in it, and leave the block only once it
        is committed; raises :class:`DatabaseUnavailable` when it is rolled back."""
        loop = asyncio.get_running_loop()
        member = Member(loop)
        self._queue.append(member)
        if self._writer is None:
            self._writer = loop.create_task(self._write())
        try:
            connection = await member._admitted
        except BaseException:
            member._abandon()
            raise
        try:
            yield connection, member
        except BaseException as exc:
            member._end(exc)
            if member._committed.done() and not member._committed.cancelled():
                member._committed.exception()  # rolled back meanwhile: that is known
            raise
        member._end(None)
        await member._committed

    async def finished(self) -> None:
        """Wait until the writer has nothing left (before the engine is disposed)."""
        writer = self._writer
        if writer is not None:
            await asyncio.wait({writer})

    async def _write(self) -> None:
        """The writer: one batch after the other while units of work are queued."""
        try:
            while self._queue:
                await self._batch()
        finally:
            self._writer = None
            stopped = DatabaseUnavailable("the store's writer stopped (shutting down)")
            while self._queue:  # only when cancelled: nobody would admit them
                self._queue.popleft()._refuse(stopped)

    async def _batch(self) -> None:
        admitted: list[Member] = []
        try:
            async with self._open_transaction() as connection:
                while self._queue and len(admitted) < self._max_batch:
                    member = self._queue.popleft()
                    if not member._admit(connection):
                        continue
                    admitted.append(member)
                    if await member._ended is _Ending.POISONED:
                        raise _Poisoned()
        except BaseException as exc:
            error: DatabaseUnavailable
            if isinstance(exc, _Poisoned):  # one of them failed: the others may run again
                error = RolledBack(_ROLLED_BACK)
            elif isinstance(exc, DatabaseUnavailable):
                error = exc
            else:  # the writer itself was stopped (shutting down)
                error = DatabaseUnavailable(f"the shared transaction ended: {exc!r}")
            if not admitted:  # no transaction: those queued would wait as long again
                while self._queue:
                    self._queue.popleft()._refuse(error)
            for member in admitted:
                member._settle(error)
            if not isinstance(exc, _Poisoned | DatabaseUnavailable):
                raise
            return
        self.batches += 1
        self.members += sum(1 for member in admitted if member._ended.result() is _Ending.DONE)
        for member in admitted:
            member._settle(None)
