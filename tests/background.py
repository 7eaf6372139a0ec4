"""The service's background work driven by hand, so a test that must show "nothing more
happened" asks the worker or the scheduler instead of sleeping and hoping it ran.

* :func:`deliver_due_at` runs one outbox worker pass with its clock stopped at a chosen
  moment: a forward left due then (a duplicate, a delivery never recorded) shows up in the
  answer, however far in the future its retry was scheduled.
* For the scheduler, tests call :func:`router.service.scheduler.run_due_work` with the
  moment they choose; it is already the one-pass function.
* :func:`app_outbox_passed` waits until the running app's own worker finished a pass, for
  the cases where the app's wiring is what is under test.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from aiohttp import web

from router.core.delivery import Schedule
from router.service.outbox import OutboxWorker
from router.service.ports import Delivery
from router.service.records import ForwardRecord
from router.store import Store
from router.web.appkeys import outbox_wake_key

#: every kind of forward the service writes to the outbox
FORWARD_KINDS = ("email", "chat")


class RecordingSender:
    """A sender that keeps what it is handed and succeeds: whatever reaches it was due."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []

    async def send(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)


async def deliver_due_at(store: Store, moment: datetime) -> list[Delivery]:
    """Run the outbox worker at *moment* until it finds nothing more due; what it delivered.

    Call it once the app's own worker has settled what it was sending: at a later *moment*
    every lease has run out, so a forward still in flight would be taken a second time."""
    sender = RecordingSender()
    worker = OutboxWorker(
        store,
        dict.fromkeys(FORWARD_KINDS, sender),
        schedule=Schedule(),
        clock=lambda: moment,
        wake=asyncio.Event(),
    )
    while await worker.deliver_due():
        pass  # a full batch: there may be more
    return sender.deliveries


async def forwards_delivered(
    store: Store, count: int, *, within: float = 10.0
) -> list[ForwardRecord]:
    """The delivered forwards once there are *count* of them (bounded wait)."""
    deadline = time.monotonic() + within
    while True:
        rows = list(await store.outbox_rows(statuses=["delivered"]))
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, f"{len(rows)} of {count} forward(s) delivered"
        await asyncio.sleep(0.02)


async def app_outbox_passed(app: web.Application, *, within: float = 5.0) -> None:
    """Return once the app's outbox worker has run a whole pass that began after this call.

    The worker clears its wake event once per turn of its loop. A first wake-up may land
    while a pass that began earlier is finishing; the second one is answered only after a
    pass that began after the first was answered has ended."""
    wake = app[outbox_wake_key]
    deadline = time.monotonic() + within
    for _ in range(2):
        wake.set()
        while wake.is_set():
            assert time.monotonic() < deadline, "the outbox worker did not run"
            await asyncio.sleep(0.01)
