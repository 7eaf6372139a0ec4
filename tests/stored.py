"""What the database holds, read through the store's public functions, so a test of a
refused request can show that the refusal changed nothing."""

from __future__ import annotations

from dataclasses import dataclass

from router.core.lifecycle import ForwardStatus
from router.service.records import ForwardRecord, InteractionRecord, PlanStepRecord, VersionRecord
from router.store import Store


@dataclass(frozen=True, slots=True)
class Stored:
    """Every row a request could have written: interactions (with their outcomes and
    feedback), forwards, plan steps and routing versions."""

    interactions: tuple[InteractionRecord, ...]
    forwards: tuple[ForwardRecord, ...]
    plan_steps: tuple[PlanStepRecord, ...]
    versions: tuple[VersionRecord, ...]


async def stored(store: Store) -> Stored:
    return Stored(
        interactions=tuple(await store.interactions(limit=None)),
        forwards=tuple(await store.outbox_rows(statuses=[s.value for s in ForwardStatus])),
        plan_steps=tuple(await store.plan_steps(status=None)),
        versions=tuple(await store.history()),
    )


async def assert_nothing_stored(store: Store, *, since: Stored | None = None) -> None:
    """Nothing was written since *since*; without it, the database holds only the routing
    version the app started with: no interaction, no forward, no plan step."""
    now = await stored(store)
    if since is not None:
        assert now == since
        return
    assert now.interactions == (), now.interactions
    assert now.forwards == (), now.forwards
    assert now.plan_steps == (), now.plan_steps
    assert len(now.versions) == 1, [(v.version, v.kind) for v in now.versions]
