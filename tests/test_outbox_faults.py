"""A misbehaving destination — an SMTP relay or a chat endpoint that is down for a while,
accepts and never answers, answers garbage, or is slow — holds only its own forwards: the
others arrive in their usual time, webhooks answer in theirs, nothing is lost, each forward
arrives once, and the guard rolls the channel back when the failing destination is external.

Real servers on loopback: aiosmtpd (tests/smtp_sink.py), aiohttp (the chat endpoints of
tests/test_chat.py), and raw asyncio TCP servers for what neither does (never answer, answer
garbage). The timeouts are settings, short here, so every wait is bounded by seconds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient

from integrations.chat import ChatSender
from integrations.smtp import SmtpSender
from router.core.contact import Channel
from router.core.delivery import Schedule
from router.service.outbox import BATCH, CLAIMED_LIMIT, LANE_LIMIT, OutboxWorker
from router.service.ports import Delivery, DeliveryError
from router.service.records import ForwardRecord, Target, new_forward
from router.settings import Settings, SmtpSettings
from router.store import Store
from router.web.appkeys import outbox_worker_key, routing_key, store_key

from .background import deliver_due_at
from .conftest import Clock, make_settings, shipped_data, store_document
from .smtp_sink import SmtpSink, free_port
from .test_chat import CHAT_SECRET, Receiver, chat, post_chat
from .test_email import SECRET, message, metric_reader, post_mime
from .test_store import an_email

Client = TestClient[Any, Any]

#: SWITCHBOARD_SMTP_TIMEOUT and SWITCHBOARD_CHAT_TIMEOUT of the apps here
FAULT_TIMEOUT = 6.0
#: how long a webhook's answer, or a healthy destination's forward, takes at most here: the
#: usual time (tens of milliseconds) with room for a busy machine, well under SLOW (a CI run
#: on two shared cores once took 1.34 s for one webhook, when this was 1.2 s)
USUAL = 2.0
#: a slow destination's answer: within FAULT_TIMEOUT, far over USUAL, and longer than the
#: faulty and healthy posts of a case take together, so its forwards are still in flight
SLOW = 5.0
#: forwards to the misbehaving destination, and to a healthy one meanwhile
FAULTY, HEALTHY = 3, 3

ADMIN_CHAT = "Kde je moje objednávka? Chci ji vrátit a dostat peníze zpět."
PRODUCT_CHAT = "Je tento notebook kompatibilní s nabíječkou USB-C? Jaký má procesor?"


# -- servers that misbehave ------------------------------------------------------------------


class RawServer:
    """A TCP server on loopback that accepts connections and never answers, or, given
    *garbage*, writes it at once (an SMTP client reads it as the greeting, an HTTP client as
    the status line) and then says nothing more. Remembers when each connection came."""

    def __init__(self, port: int, garbage: bytes | None = None) -> None:
        self.port = port
        self.garbage = garbage
        self.connections: list[float] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections.append(time.monotonic())
        self._writers.append(writer)
        try:
            if self.garbage is not None:
                writer.write(self.garbage)
                await writer.drain()
            await reader.read()  # until the client gives up
        except ConnectionError:
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=2)
        await self._server.wait_closed()


class ChatEndpoint:
    """A chat endpoint (tests/test_chat.py's Receiver) on a port of our choosing, so it can
    come up where a misbehaving one was."""

    def __init__(self, receiver: Receiver, port: int) -> None:
        self.receiver = receiver
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/chat/{name}", self.receiver.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class Destinations:
    """The healthy chat endpoints, and the fault port: where the misbehaving destination
    (the SMTP relay, or the partner's chat endpoint) listens, misbehaves or is down, and
    where a healthy one comes up after."""

    receiver: Receiver
    chat_port: int
    fault_port: int
    relay: SmtpSink  # on the fault port, once it is up
    raw: RawServer | None = None
    endpoint: ChatEndpoint | None = None  # the partner's, on the fault port

    def chat_url(self, name: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.chat_port}/chat/{name}"

    async def misbehave(self, channel: str, fault: str) -> None:
        """Make the destination at the fault port misbehave as *fault* says ("down":
        nothing listens)."""
        if fault in ("silent", "garbage"):
            garbage = b"\x00\xffthis is neither SMTP nor HTTP\r\n\r\n"
            self.raw = RawServer(self.fault_port, garbage if fault == "garbage" else None)
            await self.raw.start()
        elif fault == "slow":
            if channel == "email":
                self.relay.mailbox.data_delay = SLOW
            else:
                self.receiver.delays["partner"] = SLOW
            await self.behave(channel, heal=False)

    async def behave(self, channel: str, *, heal: bool = True) -> None:
        """Bring a healthy destination up at the fault port, where a misbehaving one was."""
        if heal:
            self.relay.mailbox.data_delay = 0.0
            self.receiver.delays.pop("partner", None)
        if self.raw is not None:
            await self.raw.stop()
            self.raw = None
        if channel == "email":
            if self.relay._controller is None:
                self.relay.start()
        elif self.endpoint is None:
            self.endpoint = ChatEndpoint(self.receiver, self.fault_port)
            await self.endpoint.start()

    async def stop(self) -> None:
        if self.raw is not None:
            await self.raw.stop()
        if self.endpoint is not None:
            await self.endpoint.stop()
        self.relay.stop()


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """The structlog lines of the test, as dicts."""
    with structlog.testing.capture_logs() as captured:
        yield captured


@pytest.fixture
async def destinations() -> AsyncIterator[Destinations]:
    receiver = Receiver()
    endpoint = ChatEndpoint(receiver, free_port())
    await endpoint.start()
    fault_port = free_port()
    places = Destinations(receiver, endpoint.port, fault_port, SmtpSink(fault_port))
    yield places
    await places.stop()
    await endpoint.stop()


# -- the apps --------------------------------------------------------------------------------


def fault_settings(tmp_path: Path, places: Destinations, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp": SmtpSettings(
            host="127.0.0.1",
            port=places.fault_port,
            security="none",
            timeout_seconds=FAULT_TIMEOUT,
        ),
        "chat_timeout_seconds": FAULT_TIMEOUT,
        "email_webhook_secret": SECRET,
        "chat_secret": CHAT_SECRET,
        "outbox_base_delay": 0.2,
        "outbox_max_delay": 0.8,
        "outbox_max_attempts": 1000,
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


async def start_app(
    started_apps: Callable[[Settings], Any],
    settings: Settings,
    places: Destinations,
    clock: Clock,
    *,
    faulty_chat: bool,
    guard: dict[str, Any] | None = None,
) -> Client:
    """The app: admin email and chat go to the partner (external), product chat to the
    hotline; the partner's chat endpoint is at the fault port when *faulty_chat*."""
    data = shipped_data()
    partner_port = places.fault_port if faulty_chat else None
    data["destinations"]["partner"]["chat"] = places.chat_url("partner", partner_port)
    data["destinations"]["hotline"]["chat"] = places.chat_url("hotline")
    data["cutover"] = {"chat": {"admin": 100}, "email": {"admin": 100}}
    if guard is not None:
        data["guard"] = guard
    await store_document(settings, data, clock())
    client: Client = await started_apps(settings)
    return client


async def timed(post: Any) -> dict[str, Any]:
    """A webhook's answer, which must be 200 within the usual time."""
    started = time.monotonic()
    response = await post
    took = time.monotonic() - started
    assert response.status == 200, await response.text()
    assert took < USUAL, f"the webhook took {took:.2f} s"
    answer: dict[str, Any] = await response.json()
    return answer


async def post_faulty(client: Client, channel: str, n: int) -> dict[str, Any]:
    """A contact whose forward goes to the misbehaving destination."""
    if channel == "email":
        answer = await timed(post_mime(client, message(subject=f"Objednávka {n} nedorazila")))
    else:
        answer = await timed(post_chat(client, chat(ADMIN_CHAT, f"faulty-{n}")))
    assert answer["destination"] == "partner"
    return answer


async def post_healthy(client: Client, channel: str, n: int) -> dict[str, Any]:
    """A contact whose forward goes to a healthy destination: for a misbehaving relay a
    chat hand-off to the partner, for a misbehaving chat endpoint one to the hotline."""
    text = ADMIN_CHAT if channel == "email" else PRODUCT_CHAT
    answer = await timed(post_chat(client, chat(text, f"healthy-{n}")))
    assert answer["destination"] == ("partner" if channel == "email" else "hotline")
    return answer


async def until(check: Callable[[], Any], *, within: float, what: str, step: float = 0.02) -> Any:
    """*check()*'s first true answer (it may be a coroutine), waiting at most *within*."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(step)


def arrived(places: Destinations, channel: str, destination: str) -> Counter[int]:
    """Interaction id -> how many times its forward arrived at *destination*."""
    if channel == "email":
        return Counter(
            int(item.message["X-Switchboard-Interaction"]) for item in places.relay.mailbox.received
        )
    return Counter(
        int(handoff["interaction_id"]) for handoff in places.receiver.received.get(destination, [])
    )


# -- the cases -------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["down", "silent", "garbage", "slow"])
@pytest.mark.parametrize("channel", ["email", "chat"])
async def test_a_misbehaving_destination_holds_only_its_own_forwards(
    destinations: Destinations,
    started_apps: Callable[[Settings], Any],
    tmp_path: Path,
    clock: Clock,
    logs: list[MutableMapping[str, Any]],
    channel: str,
    fault: str,
) -> None:
    """*channel*'s forwards to the partner meet a destination that is *fault*; healthy
    forwards (chat to the partner when the relay misbehaves, chat to the hotline when the
    partner's chat endpoint does) are posted meanwhile and arrive in their usual time."""
    places = destinations
    await places.misbehave(channel, fault)
    client = await start_app(
        started_apps, fault_settings(tmp_path, places), places, clock, faulty_chat=channel == "chat"
    )
    store = client.app[store_key]
    faulty = {(await post_faulty(client, channel, n))["interaction_id"] for n in range(FAULTY)}

    # the misbehaving destination has the forwards in hand
    raw = places.raw
    if raw is not None:
        await until(lambda: len(raw.connections) >= 1, within=USUAL, what="connected")
    elif fault == "down":
        await failed(store, faulty, at_least=2, within=5)
    else:
        await asyncio.sleep(0.2)  # the slow destination is taking its time

    # meanwhile the healthy destination's forwards arrive within the usual time
    healthy_destination = "partner" if channel == "email" else "hotline"
    started = time.monotonic()
    healthy = {(await post_healthy(client, channel, n))["interaction_id"] for n in range(HEALTHY)}
    await places.receiver.wait_for(healthy_destination, HEALTHY, within=USUAL)
    took = time.monotonic() - started
    assert took < USUAL, f"the healthy destination's forwards took {took:.2f} s"
    sample = await metric_reader(client)
    if fault in ("silent", "slow"):
        # ... while the misbehaving destination still holds its own: no attempt ended yet
        assert [row.attempts for row in await pending(store, faulty)] == [0] * FAULTY
        assert not faulty & set(arrived(places, channel, "partner"))
        in_flight = sample("switchboard_outbox_in_flight", kind=channel, destination="partner")
        assert in_flight == FAULTY

    if fault == "silent":
        # given up at the timeout, as a failure worth a retry (no fallback)
        rows = await failed(store, faulty, at_least=1, within=FAULT_TIMEOUT + 2)
        assert all("no answer within" in (row.last_error or "") for row in rows), rows
    if fault == "garbage":
        rows = await failed(store, faulty, at_least=2, within=5)
        assert all(row.last_error for row in rows)
    if fault == "down":
        # each retry waited as the schedule says: base 0.2 s doubling, capped at 0.8 s, ±25 %
        rows = await pending(store, faulty)
        for row in rows:
            delay = min(0.2 * 2 ** (row.attempts - 1), 0.8)
            waited = (row.next_attempt_at - row.updated_at).total_seconds()
            assert 0.75 * delay - 0.2 <= waited <= 1.25 * delay + 0.01, (row.attempts, waited)
    if fault != "slow":
        assert {row.stage for row in rows} == {"primary"}  # transient: not the fallback
        # where it shows: the metrics and log lines of the failing destination
        sample = await metric_reader(client)
        labels = {"kind": channel, "destination": "partner"}
        assert sample("switchboard_outbox_attempts_total", result="retry", **labels) >= FAULTY
        assert sample("switchboard_outbox_consecutive_failures", **labels) >= FAULTY
        assert sample("switchboard_outbox_destination_pending", **labels) == FAULTY
        assert sample("switchboard_outbox_destination_oldest_pending_seconds", **labels) > 0
        [failing] = [line for line in logs if line["event"] == "outbox.destination_failing"]
        assert (failing["kind"], failing["destination"]) == (channel, "partner")

    # back to health: every forward arrives, once
    await places.behave(channel)
    await until(lambda: _none_pending(store), within=FAULT_TIMEOUT + 5, what="all delivered")
    faulty_arrivals = arrived(places, channel, "partner")
    healthy_arrivals = arrived(places, "chat", healthy_destination)
    assert {i: faulty_arrivals[i] for i in faulty} == dict.fromkeys(faulty, 1)
    assert {i: healthy_arrivals[i] for i in healthy} == dict.fromkeys(healthy, 1)
    assert await deliver_due_at(store, clock() + timedelta(days=1)) == []
    if fault != "slow":
        recovered = [line for line in logs if line["event"] == "outbox.destination_recovered"]
        assert [(line["kind"], line["destination"]) for line in recovered] == [(channel, "partner")]


async def pending(store: Store, ids: set[int]) -> list[ForwardRecord]:
    """The pending forwards of the interactions *ids*."""
    return [
        row for row in await store.outbox_rows(statuses=["pending"]) if row.interaction_id in ids
    ]


async def failed(
    store: Store, ids: set[int], *, at_least: int, within: float
) -> list[ForwardRecord]:
    """The pending forwards of *ids* once each has failed at least *at_least* times."""

    async def check() -> list[ForwardRecord]:
        rows = await pending(store, ids)
        done = len(rows) == len(ids) and all(row.attempts >= at_least for row in rows)
        return rows if done else []

    rows: list[ForwardRecord] = await until(
        check, within=within, what=f"{at_least} failed attempt(s) each"
    )
    return rows


async def _none_pending(store: Store) -> bool:
    return not await store.outbox_rows(statuses=["pending"])


# -- the guard ----------------------------------------------------------------------------------

GUARD_CONTACTS = 4
GUARD = {
    "window": "15m",
    "min_contacts": GUARD_CONTACTS,
    "max_failure_rate": 0.25,
    "rollback_for": "1h",
}


@pytest.mark.parametrize("channel", ["email", "chat"])
async def test_the_guard_rolls_back_a_channel_whose_external_destination_is_silent(
    destinations: Destinations,
    started_apps: Callable[[Settings], Any],
    tmp_path: Path,
    clock: Clock,
    channel: str,
) -> None:
    """SPEC §4: enough contacts to the partner failed within the window (here its relay or
    chat endpoint never answers, so each forward times out until it goes to the fallback)
    rolls that channel back, as actor guard; the webhooks answer in their usual time."""
    places = destinations
    await places.misbehave(channel, "silent")
    settings = fault_settings(
        tmp_path,
        places,
        smtp=SmtpSettings(
            host="127.0.0.1", port=places.fault_port, security="none", timeout_seconds=0.3
        ),
        chat_timeout_seconds=0.3,
        outbox_base_delay=0.05,
        outbox_max_delay=0.1,
        outbox_max_attempts=2,
    )
    client = await start_app(
        started_apps, settings, places, clock, faulty_chat=channel == "chat", guard=GUARD
    )
    for n in range(GUARD_CONTACTS):
        await post_faulty(client, channel, n)
    store = client.app[store_key]

    async def rolled_back() -> Any:
        current = await store.current_version()
        return current if current is not None and current.kind == "rollback" else None

    current = await until(rolled_back, within=10, what="the guard rolled back", step=0.05)
    assert (current.actor, current.channel) == ("guard", channel)
    await asyncio.wait_for(client.app[routing_key].wait_for(current.version), 1.0)
    if channel == "email":
        answer = await timed(post_mime(client, message(subject="Objednávka nedorazila")))
    else:
        answer = await timed(post_chat(client, chat(ADMIN_CHAT, "after-the-guard")))
    assert answer["destination"] == "hotline"
    # the other channel is left as it was
    if channel == "email":
        other = await timed(post_chat(client, chat(ADMIN_CHAT, "other")))
    else:
        other = await timed(post_mime(client, message(subject="Objednávka 9 nedorazila")))
    assert other["destination"] == "partner"


# -- the bounds of one send -----------------------------------------------------------------------


class SlowRelay:
    """An SMTP server that answers every command correctly, each after *delay* seconds:
    each step within a per-step timeout, the whole far over it."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.accepted = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _reply(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        await asyncio.sleep(self.delay)
        writer.write(line + b"\r\n")
        await writer.drain()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._reply(writer, b"220 slow.example ESMTP")
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"DATA":
                    await self._reply(writer, b"354 go on")
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    self.accepted += 1
                    await self._reply(writer, b"250 accepted")
                elif verb == b"QUIT":
                    await self._reply(writer, b"221 bye")
                    break
                else:
                    await self._reply(writer, b"250 ok")
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def test_a_relay_answering_every_step_in_time_is_cut_off_at_the_send_timeout() -> None:
    """The timeout bounds the whole send, not each step: six steps of 0.4 s each would keep
    a forward 2.4 s against a 1 s timeout (with the default 60 s per step, minutes: past the
    lease, when another replica may send it again)."""
    relay = SlowRelay(delay=0.4)
    port = await relay.start()
    sender = SmtpSender(
        SmtpSettings(host="127.0.0.1", port=port, security="none", timeout_seconds=1.0)
    )
    try:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as refused:
            await asyncio.wait_for(sender.send(an_email_delivery()), 10)
        took = time.monotonic() - started
    finally:
        await sender.close()
        await relay.stop()
    assert 1.0 <= took < 2.0  # at the timeout, not after every step's 0.4 s (2.4 s)
    assert "no answer within 1 s" in str(refused.value)
    assert not refused.value.permanent
    assert relay.accepted == 0


def an_email_delivery() -> Delivery:
    return Delivery(
        outbox_id=1,
        interaction_id=1,
        kind="email",
        destination="partner",
        address="eshop@partner.example",
        external=True,
        payload=message(subject="Objednávka 1 nedorazila"),
        meta={"category": "admin", "reason": "target", "sender": "jana@example.cz"},
    )


async def test_a_send_is_cut_off_well_before_its_lease_runs_out(
    destinations: Destinations, migrated: Store, clock: Clock
) -> None:
    """However long a sender would wait (a chat timeout of 30 s here), the worker gives a
    send up at 3/4 of its lease and records the failure while the lease still holds: no
    other replica can take the forward while it is being sent."""
    places = destinations
    await places.misbehave("chat", "silent")
    partner = Target("partner", places.chat_url("partner", places.fault_port), external=True)
    async with migrated.unit_of_work() as uow:
        interaction_id = await uow.add_interaction(an_email("<lease@example.cz>"))
        assert interaction_id is not None
        meta = {"category": "admin", "reason": "target", "conversation_id": "c1"}
        forward = new_forward(Channel.CHAT, partner, ADMIN_CHAT.encode(), meta, clock())
        await uow.add_forward(interaction_id, forward)
    async with aiohttp.ClientSession() as session:
        worker = OutboxWorker(
            migrated,
            {"chat": ChatSender(session, CHAT_SECRET, timeout_seconds=30)},
            schedule=Schedule(),
            clock=clock,
            wake=asyncio.Event(),
            # long enough that a stall of a busy CI machine stays within it
            lease=timedelta(seconds=4),
        )
        started = time.monotonic()
        await asyncio.wait_for(worker.deliver_due(), 10)
        took = time.monotonic() - started
    [row] = await migrated.outbox_rows(statuses=["pending"])
    assert took < 4.0  # recorded within the lease
    assert (row.attempts, row.claimed_until) == (1, None)
    assert "send deadline (3 s)" in (row.last_error or "")


async def test_email_forwards_without_smtp_never_wake_the_worker(
    destinations: Destinations,
    started_apps: Callable[[Settings], Any],
    tmp_path: Path,
    clock: Clock,
) -> None:
    """SMTP unset: email forwards wait in the outbox (SPEC §5), and a stream of them does not
    make the worker look for due forwards once per message (nothing could send them)."""
    settings = fault_settings(tmp_path, destinations, smtp=None)
    client = await start_app(started_apps, settings, destinations, clock, faulty_chat=False)
    worker = client.app[outbox_worker_key]
    assert "email" not in worker.senders
    before, started = worker.passes, time.monotonic()
    for n in range(20):
        await post_faulty(client, "email", n)
    polls = (time.monotonic() - started) / worker.poll_seconds
    assert worker.passes - before <= polls + 2  # its own polls only
    # a chat hand-off still wakes it at once
    await timed(post_chat(client, chat(PRODUCT_CHAT, "woken")))
    await destinations.receiver.wait_for("hotline", 1, within=0.8 * worker.poll_seconds)


async def test_a_stuck_destinations_backlog_takes_no_more_than_its_lane(
    destinations: Destinations, migrated: Store, clock: Clock
) -> None:
    """More forwards wait for a silent chat endpoint than the worker holds in all: it takes
    only LANE_LIMIT of them, and forwards to a healthy destination, written after the whole
    backlog (so last in the claims' order), are claimed and arrive at once."""
    places = destinations
    await places.misbehave("chat", "silent")
    partner = Target("partner", places.chat_url("partner", places.fault_port), external=True)
    hotline = Target("hotline", places.chat_url("hotline"), external=False)
    backlog = CLAIMED_LIMIT + BATCH
    async with migrated.unit_of_work() as uow:  # one transaction: quick to write
        for n in range(backlog + HEALTHY):
            interaction_id = await uow.add_interaction(an_email(f"<backlog-{n}@example.cz>"))
            assert interaction_id is not None
            meta = {"category": "admin", "reason": "target", "conversation_id": f"c{n}"}
            to = partner if n < backlog else hotline
            forward = new_forward(Channel.CHAT, to, ADMIN_CHAT.encode(), meta, clock())
            await uow.add_forward(interaction_id, forward)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        worker = OutboxWorker(
            migrated,
            {"chat": ChatSender(session, CHAT_SECRET, timeout_seconds=FAULT_TIMEOUT)},
            schedule=Schedule(),
            clock=clock,
            wake=asyncio.Event(),
        )
        running = asyncio.create_task(worker.run())
        try:
            await places.receiver.wait_for("hotline", HEALTHY, within=USUAL)
            raw = places.raw
            assert raw is not None
            await until(lambda: len(raw.connections) >= LANE_LIMIT, within=USUAL, what="40 sends")
            await asyncio.sleep(0.2)
            assert len(raw.connections) == LANE_LIMIT  # the rest of the backlog waits
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
