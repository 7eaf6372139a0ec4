"""The same store and phone flow on a real PostgreSQL server (started by the test setup)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from router.core.contact import Category, Channel
from router.core.document import shipped_document
from router.core.migration import PlanStep, cut_over
from router.service.ports import StaleVersion
from router.service.scheduler import run_due_work, schedule_plan
from router.service.tokens import Role, create_token
from router.service.versions import apply_document, resume, rollback
from router.store import Store, create_engine, migrate
from router.web.app import make_app
from router.web.appkeys import store_key

from .conftest import Clock, make_settings, migrated_store, post_twilio
from .test_rollback import HOTLINE, PARTNER, call, eventually

Client = TestClient[Any, Any]


@pytest.fixture
async def pg_store(postgres_database_url: str) -> AsyncIterator[Store]:
    async with migrated_store(postgres_database_url) as store:
        yield store


@pytest.fixture
async def pg_client(
    postgres_database_url: str, tmp_path: Path, clock: Clock
) -> AsyncIterator[Client]:
    settings = make_settings(tmp_path, database_url=postgres_database_url)
    async with TestClient(TestServer(make_app(settings, clock=clock))) as client:
        yield client


async def test_migrations_are_idempotent_and_concurrent_safe(postgres_database_url: str) -> None:
    engines = [create_engine(postgres_database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate.upgrade(engine) for engine in engines))
        assert await migrate.is_current(engines[0])
    finally:
        for engine in engines:
            await engine.dispose()


async def test_concurrent_version_writers_never_lose_a_change(pg_store: Store) -> None:
    now = datetime.now(UTC)
    document = shipped_document()
    await apply_document(pg_store, document, actor="a", reason="first", now=now)

    async def write(n: int) -> int | None:
        try:
            row = await pg_store.add_version(
                document="{}",
                kind="apply",
                actor=f"w{n}",
                reason="race",
                now=now,
                expected_current=1,
            )
            return row.version
        except StaleVersion:
            return None

    results = await asyncio.gather(*(write(n) for n in range(5)))
    assert sorted(r for r in results if r is not None) == [2]  # exactly one winner
    assert [row.version for row in await pg_store.history()] == [2, 1]


async def test_a_call_is_routed_and_recorded_once_on_postgres(
    pg_client: Client, postgres_database_url: str
) -> None:
    form = {"CallSid": "CA-pg", "From": "+420601234567", "Digits": "1"}
    responses = await asyncio.gather(
        *(post_twilio(pg_client, "/webhooks/twilio/voice/route", form) for _ in range(10))
    )
    bodies = {await response.text() for response in responses}
    assert all(response.status == 200 for response in responses)
    assert len(bodies) == 1 and "<Number>+420222333444</Number>" in bodies.pop()
    engine = create_engine(postgres_database_url)
    try:
        rows = await Store(engine).interactions()
    finally:
        await engine.dispose()
    assert [(r.provider_id, r.category, r.destination, r.version) for r in rows] == [
        ("CA-pg", "admin", "hotline", 1)
    ]
    assert rows[0].received_at.tzinfo is not None


async def test_two_replicas_follow_a_rollback_and_run_a_plan_step_once(
    postgres_database_url: str, tmp_path: Path, clock: Clock, pg_store: Store
) -> None:
    await apply_document(
        pg_store,
        cut_over(shipped_document(), None, None, 100),
        actor="t",
        reason="t",
        now=clock(),
    )
    settings = make_settings(tmp_path, database_url=postgres_database_url)
    async with (
        TestClient(TestServer(make_app(settings, clock=clock))) as first,
        TestClient(TestServer(make_app(settings, clock=clock))) as second,
    ):
        assert PARTNER in await call(first) and PARTNER in await call(second)
        await rollback(pg_store, actor="on-call", reason="incident", now=clock())
        for replica in (first, second):

            async def on_baseline(client: Client = replica) -> bool:
                return HOTLINE in await call(client)

            await eventually(on_baseline, within=1.0)

        step = PlanStep(
            clock() - timedelta(seconds=1), "step", {Channel.EMAIL: {Category.ADMIN: 30.0}}
        )
        # due already, but held until the rollback ends
        await schedule_plan(pg_store, [step], actor="t", now=clock())
        assert await run_due_work(pg_store, clock()) == []
        assert (await pg_store.current_version()).kind == "rollback"  # type: ignore[union-attr]
        await resume(pg_store, actor="on-call", reason="over", now=clock())

        async def executed() -> bool:
            current = await pg_store.current_version()
            return current is not None and current.kind == "plan"

        await eventually(executed, within=2.5)
        # whichever replica ran it, neither runs it again
        for replica in (first, second):
            assert await run_due_work(replica.app[store_key], clock()) == []
    kinds = [row.kind for row in await pg_store.history()]
    assert kinds == ["plan", "resume", "rollback", "apply"]


async def test_two_schedulers_racing_for_one_due_step_make_one_version(
    postgres_database_url: str, clock: Clock, pg_store: Store
) -> None:
    await apply_document(pg_store, shipped_document(), actor="t", reason="t", now=clock())
    step = PlanStep(clock(), "step", {Channel.EMAIL: {Category.ADMIN: 30.0}})
    await schedule_plan(pg_store, [step], actor="t", now=clock())
    engine = create_engine(postgres_database_url)  # a second replica's connection
    try:
        made = await asyncio.gather(
            run_due_work(pg_store, clock()), run_due_work(Store(engine), clock())
        )
    finally:
        await engine.dispose()
    assert sorted(len(versions) for versions in made) == [0, 1]
    assert [row.kind for row in await pg_store.history()] == ["plan", "apply"]


def test_the_known_head_matches_the_migration_scripts() -> None:
    assert migrate.script_head() == migrate.HEAD


async def test_traffic_is_counted_per_utc_hour_whatever_the_session_time_zone(
    postgres_database_url: str, tmp_path: Path, clock: Clock
) -> None:
    """date_trunc works in the session's time zone; the chart's hours are UTC hours."""
    engine = create_engine(postgres_database_url)
    try:
        async with engine.begin() as connection:
            name = (await connection.execute(sa.text("SELECT current_database()"))).scalar_one()
            await connection.execute(
                sa.text(f"ALTER DATABASE \"{name}\" SET timezone = 'Asia/Kolkata'")
            )
        settings = make_settings(tmp_path, database_url=postgres_database_url)
        async with TestClient(TestServer(make_app(settings, clock=clock))) as client:
            token = await create_token(Store(engine), "vera", Role.VIEWER, clock())
            await call(client)  # 08:30 UTC
            clock.advance(timedelta(hours=1))
            await call(client)
            await call(client)
            response = await client.get(
                "/api/traffic?hours=2", headers={"Authorization": f"Bearer {token}"}
            )
            traffic = await response.json()
    finally:
        await engine.dispose()
    assert response.status == 200
    assert [bucket["start"] for bucket in traffic["buckets"]] == [
        "2026-11-23T08:00:00+00:00",
        "2026-11-23T09:00:00+00:00",
    ]
    assert [bucket["counts"] for bucket in traffic["buckets"]] == [
        {"hotline": {"phone": 1, "email": 0, "chat": 0}},
        {"hotline": {"phone": 2, "email": 0, "chat": 0}},
    ]
