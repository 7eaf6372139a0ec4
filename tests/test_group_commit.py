"""Group commit on SQLite: units of work that arrive together share one transaction, each
leaves ``async with`` only once that transaction is committed, and one that fails affects
the others only if it had written. A real SQLite file; commits are counted by SQLAlchemy's
own event, the rows read back over a separate connection."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy import event

from router.service.ports import ContactUnitOfWork, DatabaseUnavailable, RolledBack
from router.service.recording import recorded
from router.settings import Settings
from router.store import Store, create_engine

from .test_store import an_email


class Boom(Exception):
    pass


@pytest.fixture
def commits(migrated: Store) -> list[int]:
    """One entry per COMMIT the store's engine sends."""
    seen: list[int] = []

    @event.listens_for(migrated.engine.sync_engine, "commit")
    def _on_commit(_connection: Any) -> None:
        seen.append(1)

    return seen


def database_file(settings: Settings) -> str:
    database = sa.make_url(settings.database_url).database
    assert database is not None
    return database


async def stored(settings: Settings) -> list[str]:
    """The provider ids on disk, read over a connection of its own (committed rows only).
    Read without awaiting: the event loop, and so the store's writer, waits meanwhile."""
    with sqlite3.connect(database_file(settings)) as connection:
        rows = connection.execute("SELECT provider_id FROM interactions ORDER BY provider_id")
        return [row[0] for row in rows]


async def record(store: Store, provider_id: str) -> int | None:
    async with store.unit_of_work() as uow:
        return await uow.add_interaction(an_email(provider_id))


async def test_contacts_arriving_together_share_one_commit(
    migrated: Store, settings: Settings, commits: list[int]
) -> None:
    ids = await asyncio.gather(*(record(migrated, f"<m{n}@x>") for n in range(20)))

    assert len(commits) == 1
    assert None not in ids and len(set(ids)) == 20
    assert await stored(settings) == sorted(f"<m{n}@x>" for n in range(20))
    assert migrated.group_commit is not None
    assert (migrated.group_commit.batches, migrated.group_commit.members) == (1, 20)


async def test_a_batch_holds_at_most_max_batch(migrated: Store, commits: list[int]) -> None:
    await asyncio.gather(*(record(migrated, f"<m{n}@x>") for n in range(70)))
    assert len(commits) == 3  # 32 + 32 + 6


async def test_each_leaves_only_once_its_rows_are_committed(
    migrated: Store, settings: Settings
) -> None:
    async def record_and_look(provider_id: str) -> list[str]:
        await record(migrated, provider_id)
        return await stored(settings)

    seen = await asyncio.gather(*(record_and_look(f"<m{n}@x>") for n in range(5)))
    for n, on_disk in enumerate(seen):
        assert f"<m{n}@x>" in on_disk


async def test_a_lone_contact_commits_at_once(
    migrated: Store, settings: Settings, commits: list[int]
) -> None:
    await record(migrated, "<alone@x>")
    assert len(commits) == 1
    assert await stored(settings) == ["<alone@x>"]


async def test_a_failure_without_writes_leaves_the_others_alone(
    migrated: Store, settings: Settings, commits: list[int]
) -> None:
    async with migrated.unit_of_work() as uow:
        assert await uow.mark_token_seen("mailgun", "used", an_email().received_at)

    async def replay() -> None:
        async with migrated.unit_of_work() as uow:
            if not await uow.mark_token_seen("mailgun", "used", an_email().received_at):
                raise Boom("replayed")

    results = await asyncio.gather(
        record(migrated, "<a@x>"), replay(), record(migrated, "<c@x>"), return_exceptions=True
    )

    assert isinstance(results[1], Boom)
    assert isinstance(results[0], int) and isinstance(results[2], int)
    assert await stored(settings) == ["<a@x>", "<c@x>"]
    assert len(commits) == 2  # the token's own, then one for the three


async def write_then_fail(store: Store, provider_id: str = "<b@x>") -> None:
    async with store.unit_of_work() as uow:
        await uow.add_interaction(an_email(provider_id))
        raise Boom("after writing")


async def test_a_failure_after_writing_rolls_back_its_batch(
    migrated: Store, settings: Settings
) -> None:
    """The batch cannot drop one unit of work's rows, so it rolls back whole; the others in
    it hear that they were rolled back for another's failure (not that the database
    failed), so they may run again."""
    first, failing = await asyncio.gather(
        record(migrated, "<a@x>"), write_then_fail(migrated), return_exceptions=True
    )
    later = await record(migrated, "<c@x>")

    assert isinstance(failing, Boom)
    assert isinstance(first, RolledBack)
    assert later is not None
    assert await stored(settings) == ["<c@x>"]


async def test_the_others_in_a_spoilt_batch_run_again_and_are_kept(
    migrated: Store, settings: Settings
) -> None:
    """What the service does with RolledBack (router/service/recording.py): one unit of work
    failing after writing costs those that shared its transaction nothing."""

    async def kept(provider_id: str) -> int | None:
        async def add(uow: ContactUnitOfWork) -> int | None:
            added = await uow.add_interaction(an_email(provider_id))
            if provider_id == "<bad@x>":
                raise Boom("after writing")
            return added

        return await recorded(migrated.unit_of_work(), add)

    with structlog.testing.capture_logs() as logs:
        results = await asyncio.gather(
            *(kept(f"<{name}@x>") for name in ("a", "b", "bad", "c")), return_exceptions=True
        )

    assert isinstance(results[2], Boom)
    assert all(isinstance(result, int) for result in (results[0], results[1], results[3]))
    assert await stored(settings) == ["<a@x>", "<b@x>", "<c@x>"]
    assert "store.run_again" in {entry["event"] for entry in logs}  # they were spoilt once


async def test_a_duplicate_in_the_same_batch_reads_the_first(migrated: Store) -> None:
    async def duplicate() -> tuple[int | None, int | None]:
        async with migrated.unit_of_work() as uow:
            added = await uow.add_interaction(an_email("<same@x>"))
            earlier = await uow.contact("email", "<same@x>")
            return added, None if earlier is None else earlier.interaction_id

    (first, first_read), (second, second_read) = await asyncio.gather(duplicate(), duplicate())
    assert first is not None and second is None
    assert first_read == second_read == first


async def test_one_that_stops_waiting_does_not_stall_the_rest(
    migrated: Store, settings: Settings
) -> None:
    """A unit of work that gives up while another writer holds the database (its own
    timeout) leaves the queue; those behind it still get their turn."""
    release = asyncio.Event()
    holding = asyncio.Event()

    async def other_writer() -> None:
        async with migrated.transaction():
            holding.set()
            await release.wait()

    holder = asyncio.create_task(other_writer())
    await holding.wait()
    impatient = asyncio.create_task(record(migrated, "<gave-up@x>"))
    patient = asyncio.create_task(record(migrated, "<waited@x>"))
    await asyncio.sleep(0.05)
    impatient.cancel()
    release.set()
    await holder

    assert await asyncio.wait_for(patient, 5) is not None
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert await stored(settings) == ["<waited@x>"]


async def test_the_database_failing_fails_every_one_waiting(
    migrated: Store, settings: Settings
) -> None:
    """A write transaction that cannot open within the timeout (the file locked by another
    process) fails the units of work queued for it at once, not one timeout after another."""
    blocker = sqlite3.connect(database_file(settings), isolation_level=None)
    short = Store(create_engine(settings.database_url, timeout_seconds=0.3), timeout_seconds=0.3)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(
            *(record(short, f"<m{n}@x>") for n in range(10)), return_exceptions=True
        )
        elapsed = asyncio.get_running_loop().time() - started
        blocker.execute("ROLLBACK")
        assert short.group_commit is not None
        await asyncio.wait_for(short.group_commit.finished(), 5)
    finally:
        blocker.close()
        await short.engine.dispose()

    assert all(isinstance(result, DatabaseUnavailable) for result in results)
    assert elapsed < 2.0  # 0.3 s each, one after the other, would be 3 s
    assert await stored(settings) == []
