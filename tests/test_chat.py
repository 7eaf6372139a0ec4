"""Chat and SMS/WhatsApp end to end: signed webhooks into the real app, hand-offs received
by a real aiohttp server on loopback standing in for the destinations' chat endpoints."""

from __future__ import annotations

import asyncio
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from integrations.signing import HEADER, sign, verify
from router.core.document import shipped_document
from router.settings import Settings
from router.store import Store, create_engine
from router.web.appkeys import routing_key, settings_key, store_key

from .background import deliver_due_at, forwards_delivered
from .conftest import (
    Clock,
    app_time,
    make_settings,
    post_twilio,
    shipped_data,
    store_document,
)
from .stored import assert_nothing_stored

Client = TestClient[Any, Any]
CHAT_SECRET = "chat-webhook-secret"
CARD = "4111 1111 1111 1111"


@dataclass
class Receiver:
    """The destinations' chat endpoints: records verified hand-offs, fails on demand."""

    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: dict[str, list[int]] = field(default_factory=dict)  # statuses to answer first
    delays: dict[str, float] = field(default_factory=dict)  # seconds before answering
    bad_signatures: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        if self.delays.get(name):
            await asyncio.sleep(self.delays[name])
        if verify(CHAT_SECRET, body, request.headers.get(HEADER, ""), time.time()) is not None:
            self.bad_signatures += 1
            return web.Response(status=401)
        queued = self.failures.get(name)
        if queued:
            return web.Response(status=queued.pop(0), text="not now")
        self.received.setdefault(name, []).append(json.loads(body))
        return web.json_response({"ok": True})

    async def wait_for(self, name: str, count: int, within: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if len(self.received.get(name, [])) >= count:
                return self.received[name]
            await asyncio.sleep(0.02)
        raise AssertionError(f"{name}: expected {count} hand-off(s), got {self.received}")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/chat/{name}", state.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield state, str(server.make_url("/chat")).rstrip("/")


@pytest.fixture
def chat_app(
    tmp_path: Path,
    clock: Clock,
    receiver: tuple[Receiver, str],
    started_apps: Callable[[Settings], Any],
) -> Callable[..., Any]:
    async def start(cutover: dict[str, Any] | None = None, **overrides: Any) -> Client:
        _, base = receiver
        settings = chat_settings(tmp_path, **overrides)
        data = shipped_data()
        data["destinations"]["partner"]["chat"] = f"{base}/partner"
        data["destinations"]["hotline"]["chat"] = f"{base}/hotline"
        if cutover is not None:
            data["cutover"] = cutover
        await store_document(settings, data, clock())
        client: Client = await started_apps(settings)
        return client

    return start


def chat_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "chat_secret": CHAT_SECRET,
        "outbox_base_delay": 0.05,
        "outbox_max_delay": 0.2,
        "outbox_max_attempts": 3,
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


async def post_chat(client: Client, payload: dict[str, Any], *, secret: str = CHAT_SECRET) -> Any:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", HEADER: sign(secret, body, app_time(client))}
    return await client.post("/webhooks/chat", data=body, headers=headers)


def chat(text: str, conversation: str = "conv-1", **extra: Any) -> dict[str, Any]:
    return {"conversation_id": conversation, "customer_id": "cust-42", "text": text, **extra}


async def nothing_left_to_hand_off(client: Client, clock: Clock, delivered: int) -> None:
    """Once *delivered* hand-offs are recorded, a worker pass a day later finds nothing:
    no duplicate forward, no delivery left unrecorded, whatever retry time it had."""
    store = client.app[store_key]
    await forwards_delivered(store, delivered)
    assert await deliver_due_at(store, clock() + timedelta(days=1)) == []


async def test_a_chat_message_is_handed_off_signed_to_its_destination(
    chat_app: Callable[..., Any], receiver: tuple[Receiver, str]
) -> None:
    state, _ = receiver
    client = await chat_app()
    response = await post_chat(client, chat("Kde je moje objednávka? Nedorazila.", language="cs"))
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert (answer["category"], answer["destination"], answer["reason"]) == (
        "admin",
        "hotline",
        "baseline",
    )
    [handoff] = await state.wait_for("hotline", 1)
    assert handoff == {
        "interaction_id": answer["interaction_id"],
        "conversation_id": "conv-1",
        "customer_id": "cust-42",
        "text": "Kde je moje objednávka? Nedorazila.",
        "language": "cs",
        "category": "admin",
        "reason": "baseline",
        "destination": "hotline",
    }
    assert state.bad_signatures == 0


async def test_a_conversation_keeps_its_first_category(
    chat_app: Callable[..., Any], receiver: tuple[Receiver, str]
) -> None:
    state, _ = receiver
    client = await chat_app()
    first = await (await post_chat(client, chat("Jak nastavit ten výrobek?"))).json()
    second = await (await post_chat(client, chat("a kdy dorazí moje objednávka?"))).json()
    assert first["category"] == second["category"] == "product"
    await state.wait_for("hotline", 2)


async def test_text_to_the_partner_is_masked_and_retries_reach_it_once(
    chat_app: Callable[..., Any], receiver: tuple[Receiver, str], clock: Clock
) -> None:
    state, _ = receiver
    state.failures["partner"] = [503, 429, 500]  # two retries are enough... three failures
    client = await chat_app(cutover={"chat": {"admin": 100}}, outbox_max_attempts=5)
    await post_chat(client, chat(f"Platba kartou {CARD} za objednávku neprošla"))
    [handoff] = await state.wait_for("partner", 1)
    assert CARD not in handoff["text"] and "1111" in handoff["text"]
    await nothing_left_to_hand_off(client, clock, 1)
    assert len(state.received["partner"]) == 1


async def test_a_permanent_refusal_goes_to_the_fallback(
    chat_app: Callable[..., Any], receiver: tuple[Receiver, str]
) -> None:
    state, _ = receiver
    state.failures["hotline"] = [404]
    client = await chat_app()
    await post_chat(client, chat(f"Objednávka nedorazila, karta {CARD}"))
    [handoff] = await state.wait_for("partner", 1)
    assert handoff["destination"] == "partner"
    assert CARD not in handoff["text"]  # the fallback is external: masked now


async def test_duplicates_give_one_interaction_and_one_handoff(
    chat_app: Callable[..., Any], receiver: tuple[Receiver, str], clock: Clock
) -> None:
    state, _ = receiver
    client = await chat_app()
    payload = chat("Kde je zásilka?", message_id="m-1")
    answers = await asyncio.gather(*(post_chat(client, payload) for _ in range(20)))
    ids = {(await answer.json())["interaction_id"] for answer in answers}
    assert len(ids) == 1
    await state.wait_for("hotline", 1)
    await nothing_left_to_hand_off(client, clock, 1)
    assert len(state.received["hotline"]) == 1


@pytest.mark.parametrize(
    ("payload", "paths"),
    [
        ({"customer_id": "c", "text": "x"}, {"conversation_id"}),
        ({"conversation_id": "c", "customer_id": "c", "text": ""}, {"text"}),
        ({"conversation_id": "c", "customer_id": "c", "text": "x", "colour": 1}, {"colour"}),
        (
            {"conversation_id": "c", "customer_id": "c", "text": "x", "sent_at": "yesterday"},
            {"sent_at"},
        ),
    ],
)
async def test_bad_chat_bodies_are_refused_by_path(
    chat_app: Callable[..., Any], payload: dict[str, Any], paths: set[str]
) -> None:
    client = await chat_app()
    response = await post_chat(client, payload)
    assert response.status == 400
    assert {p["path"] for p in (await response.json())["problems"]} == paths
    await assert_nothing_stored(client.app[store_key])


async def test_bad_or_stale_signatures_are_refused(chat_app: Callable[..., Any]) -> None:
    client = await chat_app()
    assert (await post_chat(client, chat("x"), secret="wrong")).status == 403
    body = json.dumps(chat("x")).encode()
    stale = sign(CHAT_SECRET, body, app_time(client) - 600)
    response = await client.post("/webhooks/chat", data=body, headers={HEADER: stale})
    assert response.status == 403
    assert (await client.post("/webhooks/chat", data=body)).status == 403
    await assert_nothing_stored(client.app[store_key])


async def test_an_sms_is_routed_as_chat_and_acknowledged_in_the_senders_language(
    chat_app: Callable[..., Any], receiver: tuple[Receiver, str], clock: Clock
) -> None:
    state, _ = receiver
    client = await chat_app()
    form = {
        "MessageSid": "SM1",
        "From": "whatsapp:+48601234567",
        "To": "whatsapp:+420555000111",
        "Body": "Gdzie jest moja paczka? Zamówienie nie dotarło",
    }
    response = await post_twilio(client, "/webhooks/twilio/messaging", form)
    assert response.status == 200, await response.text()
    message = ET.fromstring(await response.text()).find("Message")
    assert message is not None and message.text == shipped_document().acknowledgement("pl-PL")
    [handoff] = await state.wait_for("hotline", 1)
    assert handoff["conversation_id"].startswith("whatsapp:")
    assert "+48601234567" not in handoff["conversation_id"]  # stored: the keyed hash only
    assert handoff["customer_id"] == "+48601234567"
    assert handoff["category"] == "admin"
    again = await post_twilio(client, "/webhooks/twilio/messaging", form)
    assert again.status == 200
    await nothing_left_to_hand_off(client, clock, 1)
    assert len(state.received["hotline"]) == 1


async def test_status_lists_the_conversations_the_partner_holds_until_they_come_back(
    chat_app: Callable[..., Any], receiver: tuple[Receiver, str], clock: Clock
) -> None:
    from router.service.queries import routing_status
    from router.service.versions import rollback

    state, _ = receiver
    client = await chat_app(cutover={"chat": {"admin": 100}})
    await post_chat(client, chat("Kde je moje objednávka?", conversation="c-held"))
    await state.wait_for("partner", 1)
    clock.advance(timedelta(seconds=60))
    await post_chat(client, chat("Chci vrátit zboží", conversation="c-newer"))
    await state.wait_for("partner", 2)
    settings = client.server.app[settings_key]
    engine = create_engine(settings.database_url)
    try:
        store = Store(engine)
        rolled_back = await rollback(store, actor="on-call", reason="incident", now=clock())
        held = (await routing_status(store, clock()))["partner_conversations"]
        # still the partner's, newest first
        assert [item["conversation_id"] for item in held] == ["c-newer", "c-held"]
        newest = await routing_status(store, clock(), conversations=1)
        assert [item["conversation_id"] for item in newest["partner_conversations"]] == ["c-newer"]
        assert newest["partner_conversations_count"] == 2  # listed or not, all counted
        # the service follows the rollback (SPEC §4: within a second)
        await asyncio.wait_for(client.app[routing_key].wait_for(rolled_back.version), 1.0)
        await post_chat(client, chat("a kdy to přijde?", conversation="c-held"))
        await state.wait_for("hotline", 1)  # the next message came back in-house
        after = await routing_status(store, clock())
        assert [item["conversation_id"] for item in after["partner_conversations"]] == ["c-newer"]
        assert after["partner_conversations_count"] == 1
    finally:
        await engine.dispose()
