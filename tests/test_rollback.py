"""Cut-over and rollback against a running service: the CLI on the database, the service
following within a second, timed returns, plan steps, the guard."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.core.contact import Category, Channel
from router.core.document import document_data, shipped_document, validate_document
from router.core.migration import PlanStep, cut_over
from router.service.queries import routing_status
from router.service.scheduler import run_due_work, schedule_plan
from router.service.versions import apply_document, rollback
from router.settings import Settings
from router.store import Store, create_engine, migrate
from router.web.app import make_app
from router.web.appkeys import routing_key, store_key

from .conftest import PUBLIC_URL, Clock, post_twilio

PARTNER = "<Number>+420800100200</Number>"
HOTLINE = "<Number>+420222333444</Number>"
Client = TestClient[Any, Any]
SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "SWITCHBOARD_DATABASE_URL": settings.database_url,
        "SWITCHBOARD_VAR_DIR": str(settings.var_dir),
        "SWITCHBOARD_ACTOR": "on-call",
    }


async def switchboard(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI as the on-call person would, against the same database."""
    return await asyncio.to_thread(
        subprocess.run,
        [SWITCHBOARD, *args],
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
async def seeded(settings: Settings, clock: Clock) -> AsyncIterator[Store]:
    """The database holding a document with every phone contact cut over to the partner."""
    engine = create_engine(settings.database_url)
    await migrate.upgrade(engine)
    store = Store(engine)
    document = cut_over(shipped_document(), None, None, 100)
    await apply_document(store, document, actor="test", reason="all on partner", now=clock())
    yield store
    await engine.dispose()


@pytest.fixture
async def service(seeded: Store, settings: Settings, clock: Clock) -> AsyncIterator[Client]:
    async with TestClient(TestServer(make_app(settings, clock=clock))) as client:
        yield client


calls = iter(range(1_000_000))


async def call(client: Client, digits: str = "1") -> str:
    form = {"CallSid": f"CA{next(calls)}", "From": "+420601234567", "Digits": digits}
    response = await post_twilio(client, "/webhooks/twilio/voice/route", form)
    assert response.status == 200
    return await response.text()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float, step: float = 0.05
) -> float:
    """Seconds until *check* held; fails after *within* seconds."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(step)
    pytest.fail(f"not within {within} s")


async def test_a_cli_rollback_reaches_the_running_service_within_a_second(
    service: Client, settings: Settings
) -> None:
    assert PARTNER in await call(service)
    result = await switchboard(settings, "rollback", "--reason", "partner outage")
    assert result.returncode == 0, result.stderr
    committed = time.monotonic()

    async def on_baseline() -> bool:
        return HOTLINE in await call(service)

    await eventually(on_baseline, within=1.0)
    assert time.monotonic() - committed < 1.0


async def test_a_timed_rollback_returns_by_itself(
    service: Client, settings: Settings, clock: Clock, seeded: Store
) -> None:
    # through the service with the test's clock (the CLI would stamp the real time, and the
    # calls below must happen in the hotline's office hours to tell the sides apart)
    started = clock()
    row = await rollback(
        seeded, actor="on-call", reason="incident", now=started, duration=timedelta(hours=24)
    )
    assert row.expires_at == started + timedelta(hours=24)

    async def on_baseline() -> bool:
        return HOTLINE in await call(service)

    await eventually(on_baseline, within=1.0)
    clock.advance(timedelta(hours=24, seconds=1))

    async def back_on_partner() -> bool:
        return PARTNER in await call(service)

    await eventually(back_on_partner, within=2.5)
    [resume, *_] = await seeded.history()
    assert (resume.kind, resume.actor, resume.restores) == ("resume", "scheduler", 1)


async def test_a_change_during_a_timed_rollback_cancels_the_return(
    service: Client, settings: Settings, clock: Clock, seeded: Store
) -> None:
    clock.set(datetime.now(UTC))
    await switchboard(settings, "rollback", "--reason", "incident", "--for", "1h")
    changed = await switchboard(settings, "cutover", "email", "admin", "10", "--reason", "x")
    assert changed.returncode == 0, changed.stderr
    status = json.loads((await switchboard(settings, "status", "--format", "json")).stdout)
    assert status["rollback"] is None
    assert status["rollback_return_cancelled"]["cancelled_by_version"] == 3
    clock.advance(timedelta(hours=2))
    # an hour after the rollback would have ended, the scheduler finds nothing to do
    assert await run_due_work(seeded, clock()) == []
    assert [row.kind for row in await seeded.history()] == ["cutover", "rollback", "apply"]
    assert "cancelled by version 3" in (await switchboard(settings, "status")).stdout


async def test_resume_by_hand_and_status_while_rolled_back(
    service: Client, settings: Settings, seeded: Store
) -> None:
    await switchboard(settings, "rollback", "--reason", "phones only", "--channel", "phone")
    status = json.loads((await switchboard(settings, "status", "--format", "json")).stdout)
    assert status["rollback"]["reason"] == "phones only"
    assert status["rollback"]["actor"] == "on-call"
    assert status["rollback"]["until"] is None
    assert status["cutover"]["phone"] == {"admin": 0, "product": 0, "unknown": 0}
    assert status["cutover"]["email"]["admin"] == 100
    resumed = await switchboard(settings, "resume", "--reason", "partner is back")
    assert resumed.returncode == 0, resumed.stderr
    again = await switchboard(settings, "resume", "--reason", "twice")
    assert again.returncode != 0 and "no rollback is in force" in again.stderr

    async def on_partner() -> bool:
        return PARTNER in await call(service)

    await eventually(on_partner, within=1.0)


async def test_plan_steps_run_once_even_with_two_replicas(
    seeded: Store, settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    await apply_document(
        seeded, shipped_document(), actor="test", reason="back to zero", now=clock()
    )
    due = clock().isoformat()
    later = (clock() + timedelta(days=2)).isoformat()
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f'- at: "{due}"\n  reason: "step 1"\n  cutover: {{phone: {{admin: 25}}}}\n'
        f'- at: "{later}"\n  reason: "step 2"\n  cutover: {{phone: {{admin: 100}}}}\n'
    )
    applied = await switchboard(settings, "plan", "apply", str(plan))
    assert applied.returncode == 0, applied.stderr
    async with (
        TestClient(TestServer(make_app(settings, clock=clock))) as first,
        TestClient(TestServer(make_app(settings, clock=clock))) as second,
    ):

        async def executed() -> bool:
            return (await seeded.current_version()).kind == "plan"  # type: ignore[union-attr]

        await eventually(executed, within=2.5)
        # whichever replica ran it, neither runs it again
        for replica in (first, second):
            assert await run_due_work(replica.app[store_key], clock()) == []
    history = await seeded.history()
    assert [(row.kind, row.actor, row.reason) for row in history[:2]] == [
        ("plan", "scheduler", "step 1"),
        ("apply", "test", "back to zero"),
    ]
    shown = json.loads((await switchboard(settings, "plan", "show", "--format", "json")).stdout)
    assert [step["reason"] for step in shown] == ["step 2"]
    cancelled = await switchboard(settings, "plan", "cancel")
    assert "cancelled 1" in cancelled.stdout


async def test_two_schedulers_racing_for_one_due_step_make_one_version(
    seeded: Store, settings: Settings, clock: Clock
) -> None:
    step = PlanStep(clock(), "step 1", {Channel.PHONE: {Category.ADMIN: 25.0}})
    await schedule_plan(seeded, [step], actor="test", now=clock())
    engine = create_engine(settings.database_url)  # a second replica's connection
    try:
        made = await asyncio.gather(
            run_due_work(seeded, clock()), run_due_work(Store(engine), clock())
        )
    finally:
        await engine.dispose()
    assert sorted(len(versions) for versions in made) == [0, 1]
    assert [row.kind for row in await seeded.history()] == ["plan", "apply"]


async def test_plan_steps_wait_while_a_rollback_is_in_force(
    seeded: Store, settings: Settings, clock: Clock, tmp_path: Path, service: Client
) -> None:
    await switchboard(settings, "rollback", "--reason", "incident")
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f'- at: "{clock().isoformat()}"\n  reason: "step"\n  cutover: {{phone: {{admin: 50}}}}\n'
    )
    await switchboard(settings, "plan", "apply", str(plan))
    assert await run_due_work(seeded, clock()) == []  # the step is due, and held
    assert (await seeded.current_version()).kind == "rollback"  # type: ignore[union-attr]
    status = await routing_status(seeded, clock())
    assert [step["held_by_rollback"] for step in status["plan"]] == [True]


async def test_the_guard_rolls_back_a_failing_channel(
    seeded: Store, settings: Settings, clock: Clock, service: Client
) -> None:
    for n in range(20):
        body = await call(service)
        assert PARTNER in body
        action = body.split('action="')[1].split('"')[0].replace("&amp;", "&")
        form = {
            "CallSid": f"guard-{n}",
            "From": "+420601234567",
            "DialCallStatus": "no-answer" if n % 3 == 0 else "completed",
        }
        # the dial outcome belongs to the call just routed
        latest = (await seeded.interactions(limit=1))[0]
        form["CallSid"] = latest.provider_id
        response = await post_twilio(service, action.removeprefix(PUBLIC_URL), form)
        assert response.status == 200

    async def rolled_back() -> bool:
        current = await seeded.current_version()
        return current is not None and current.kind == "rollback"

    await eventually(rolled_back, within=2.5)
    current = await seeded.current_version()
    assert current is not None
    assert (current.actor, current.channel) == ("guard", "phone")
    assert current.expires_at == current.created_at + timedelta(hours=24)
    assert "7 of 20 phone contacts" in current.reason
    document = validate_document(json.loads(current.document))
    assert document_data(document)["cutover"]["email"]["admin"] == 100
    version = current.version

    async def adopted() -> bool:  # the service refreshes right after its own due work
        return bool(service.app[routing_key].active.version == version)

    await eventually(adopted, within=1.0)
    assert HOTLINE in await call(service)
