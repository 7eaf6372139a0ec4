"""Searching the archive by customer keeps the customer's number or address out of URLs:
``POST /api/interactions/search`` takes the GET's filters in its body and answers what the
GET answers; the remote CLI searches a customer through it; and the service's own log
never carries a query string. The real app on a real SQLite file, the installed CLI, and
``switchboard serve`` as a process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from router.core.contact import Category, Channel
from router.core.lifecycle import Outcome
from router.service.tokens import Role, create_token
from router.settings import Settings
from router.store import Store
from router.web.app import make_app

from .conftest import NOW, Clock
from .test_api import Client, Tokens, api, problem_paths
from .test_api import tokens as tokens  # the fixture
from .test_archive import CALLER, OTHER, contact, seed
from .test_rollback import switchboard
from .test_serve import Service
from .test_serve import service as service  # the fixture

SEARCH = "/api/interactions/search"
EMAIL = "jana.novakova@example.com"
HOUR = timedelta(hours=1)


async def seeded_archive(store: Store) -> None:
    """Contacts of three customers over three days, on every channel, to several
    destinations, categories and outcomes."""
    rows = [
        contact("CA-1", received_at=NOW - 50 * HOUR, outcome=Outcome.VOICEMAIL),
        contact("CA-2", customer=OTHER, received_at=NOW - 40 * HOUR, category=Category.ADMIN),
        contact(
            "<m1@mail.example>",
            customer=EMAIL,
            channel=Channel.EMAIL,
            destination="partner",
            category=Category.ADMIN,
            outcome=Outcome.DELIVERED,
            received_at=NOW - 30 * HOUR,
        ),
        contact("CA-3", received_at=NOW - 20 * HOUR, destination="partner"),
        contact(
            "SM-1",
            channel=Channel.CHAT,
            destination="partner",
            category=Category.ADMIN,
            outcome=Outcome.DELIVERED,
            received_at=NOW - 10 * HOUR,
        ),
        contact(
            "<m2@mail.example>",
            customer=EMAIL,
            channel=Channel.EMAIL,
            outcome=Outcome.FAILED,
            received_at=NOW - 5 * HOUR,
        ),
        contact("CA-4", customer=OTHER, received_at=NOW - 2 * HOUR, outcome=Outcome.ABANDONED),
        contact("CA-5", received_at=NOW - HOUR, category=Category.ADMIN),
    ]
    await seed(store, *rows)


async def get_found(client: Client, token: str, filters: dict[str, Any]) -> list[dict[str, Any]]:
    answer = await api(client, "GET", f"/api/interactions?{urlencode(filters)}", token)
    assert answer.status == 200, (filters, answer.body)
    found: list[dict[str, Any]] = answer.body
    return found


async def post_found(client: Client, token: str, filters: dict[str, Any]) -> list[dict[str, Any]]:
    answer = await api(client, "POST", SEARCH, token, filters)
    assert answer.status == 200, (filters, answer.body)
    found: list[dict[str, Any]] = answer.body
    return found


def provider_ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["provider_id"] for row in rows]


# -- the POST answers what the GET answers ----------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["CA-5", "CA-4", "<m2@mail.example>", "SM-1", "CA-3", "<m1@mail.example>"]),
        ({"customer": "+420 601 234 567"}, ["CA-5", "SM-1", "CA-3", "CA-1"]),
        ({"customer": "00420-777-888-999"}, ["CA-4", "CA-2"]),
        ({"customer": "Jana.Novakova@Example.COM"}, ["<m2@mail.example>", "<m1@mail.example>"]),
        ({"customer": "+420601234568"}, []),
        ({"customer": CALLER, "channel": "phone"}, ["CA-5", "CA-3", "CA-1"]),
        ({"channel": "email"}, ["<m2@mail.example>", "<m1@mail.example>"]),
        ({"provider_id": "CA-2"}, ["CA-2"]),
        ({"destination": "partner"}, ["SM-1", "CA-3", "<m1@mail.example>"]),
        ({"category": "admin", "customer": EMAIL}, ["<m1@mail.example>"]),
        ({"outcome": "voicemail"}, ["CA-1"]),
        ({"since": "24h"}, ["CA-5", "CA-4", "<m2@mail.example>", "SM-1", "CA-3"]),
        ({"since": "2026-11-22T00:00:00+01:00", "customer": OTHER}, ["CA-4"]),
        ({"customer": CALLER, "limit": 2}, ["CA-5", "SM-1"]),
    ],
)
async def test_the_post_finds_what_the_get_finds(
    client: Client,
    tokens: Tokens,
    store: Store,
    filters: dict[str, Any],
    expected: list[str],
) -> None:
    await seeded_archive(store)
    limited = {"limit": 6, **filters}
    by_get = await get_found(client, tokens.viewer, limited)
    by_post = await post_found(client, tokens.viewer, limited)
    assert by_post == by_get  # the same JSON, row for row
    assert provider_ids(by_post) == expected


async def test_the_post_with_before_answers_the_gets_next_page(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await seeded_archive(store)
    first = await get_found(client, tokens.viewer, {"limit": 3})
    before = first[-1]["id"]
    following = {"before": before, "limit": 3}
    assert await post_found(client, tokens.viewer, following) == await get_found(
        client, tokens.viewer, following
    )


async def test_the_post_pages_by_its_next_before_header_until_the_end(
    client: Client, tokens: Tokens, store: Store, clock: Clock
) -> None:
    await seeded_archive(store)
    await seed(store, *(contact(f"CA-x{n}", received_at=NOW - n * HOUR / 7) for n in range(1, 4)))
    every = await get_found(client, tokens.viewer, {"customer": CALLER})
    assert len(every) == 7
    pages: list[list[dict[str, Any]]] = []
    body: dict[str, Any] = {"customer": "+420 601 234 567", "limit": 2}
    for _ in range(10):  # bounded: seven rows, pages of two
        answer = await api(client, "POST", SEARCH, tokens.viewer, body)
        assert answer.status == 200, answer.body
        pages.append(answer.body)
        if "X-Next-Before" not in answer.headers:
            break
        assert answer.headers["X-Next-Before"] == str(answer.body[-1]["id"])
        assert "Link" not in answer.headers  # a POST's next page is no URL
        body = {**body, "before": int(answer.headers["X-Next-Before"])}
        if len(pages) == 2:  # a new contact does not move the pages
            await seed(store, contact("CA-new", received_at=clock()))
    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert [row for page in pages for row in page] == every


async def test_a_page_ending_exactly_at_the_last_row_is_followed_by_an_empty_one(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await seeded_archive(store)
    full = await api(client, "POST", SEARCH, tokens.viewer, {"customer": OTHER, "limit": 2})
    assert provider_ids(full.body) == ["CA-4", "CA-2"]
    before = int(full.headers["X-Next-Before"])
    body = {"customer": OTHER, "limit": 2, "before": before}
    empty = await api(client, "POST", SEARCH, tokens.viewer, body)
    assert empty.status == 200 and empty.body == []
    assert "X-Next-Before" not in empty.headers


# -- the door and the body --------------------------------------------------------------------


@pytest.mark.parametrize("case", ["none", "unknown", "revoked"])
async def test_the_post_wants_a_live_token(client: Client, tokens: Tokens, case: str) -> None:
    headers = {
        "none": {},
        "unknown": {"Authorization": "Bearer sb_not-a-token-we-ever-made"},
        "revoked": {"Authorization": f"Bearer {tokens.revoked}"},
    }[case]
    answer = await api(client, "POST", SEARCH, None, {"customer": CALLER}, headers=headers)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


async def test_every_role_may_search_as_it_may_list(
    client: Client, tokens: Tokens, store: Store
) -> None:
    """viewer is the least role, as for GET /api/interactions: no token is too weak to
    search, so there is no 403 to give."""
    await seeded_archive(store)
    for token in (tokens.viewer, tokens.operator, tokens.admin):
        assert provider_ids(await post_found(client, token, {"customer": OTHER})) == [
            "CA-4",
            "CA-2",
        ]


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"customer": CALLER, "phone": CALLER}, ["phone"]),
        ({"channel": "fax"}, ["channel"]),
        ({"limit": 0}, ["limit"]),
        ({"limit": "5"}, ["limit"]),
        ({"limit": True}, ["limit"]),
        ({"limit": 2**63}, ["limit"]),
        (
            {"before": "abc", "category": "billing", "outcome": "lost"},
            ["before", "category", "outcome"],
        ),
        ({"customer": "+42"}, ["customer"]),
        ({"customer": 420601234567}, ["customer"]),
        ({"since": "yesterday"}, ["since"]),
        ([CALLER], ["(body)"]),
    ],
)
async def test_a_bad_search_body_is_422_listing_each_problem(
    client: Client, tokens: Tokens, body: Any, paths: list[str]
) -> None:
    answer = await api(client, "POST", SEARCH, tokens.viewer, body)
    assert sorted(problem_paths(answer)) == paths
    assert answer.body["error"] == "invalid request body"


async def test_a_search_body_that_is_not_json_is_422(client: Client, tokens: Tokens) -> None:
    answer = await api(client, "POST", SEARCH, tokens.viewer, raw=b"customer=+420601234567")
    assert problem_paths(answer) == ["(body)"]


async def test_the_openapi_document_describes_the_post_and_its_header(client: Client) -> None:
    spec = (await api(client, "GET", "/api/openapi.json", None)).body
    operation = spec["paths"][SEARCH]["post"]
    assert operation["x-switchboard-role"] == "viewer"
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/InteractionsSearch"}
    searched = spec["components"]["schemas"]["InteractionsSearch"]
    assert set(searched["properties"]) == {
        "since",
        "channel",
        "customer",
        "provider_id",
        "destination",
        "category",
        "outcome",
        "before",
        "limit",
    }
    assert searched["additionalProperties"] is False
    assert "X-Next-Before" in operation["responses"]["200"]["headers"]
    assert (
        operation["responses"]["200"]["content"]
        == (spec["paths"]["/api/interactions"]["get"]["responses"]["200"]["content"])
    )
    assert "422" in operation["responses"]
    get = spec["paths"]["/api/interactions"]["get"]
    (customer,) = [p for p in get["parameters"] if p["name"] == "customer"]
    assert SEARCH in customer["description"] and "log" in customer["description"]


# -- the remote CLI: the key in no URL the service saw -----------------------------------------


@pytest.fixture
async def watched(settings: Settings, clock: Clock) -> AsyncIterator[tuple[Client, list[str]]]:
    """The real app, with a middleware in front that keeps every request line's target
    (path and query string, as sent) the service saw."""
    seen: list[str] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(f"{request.method} {request.raw_path}")
        response: web.StreamResponse = await handler(request)
        return response

    app = make_app(settings, clock=clock)
    app.middlewares.insert(0, record)
    async with TestClient(TestServer(app)) as client:
        yield client, seen


def key_in(target: str, *keys: str) -> bool:
    """Whether *target* carries any of *keys*, percent-encoded or not, or a phone key's
    digits."""
    shown = unquote(target.replace("+", " ")).lower() + " " + unquote(target).lower()
    digits = [key.lstrip("+").replace(" ", "") for key in keys if key.startswith("+")]
    return any(key.lower() in shown for key in keys) or any(d in target for d in digits)


async def test_a_remote_customer_search_puts_the_key_in_no_url(
    watched: tuple[Client, list[str]], settings: Settings, store: Store, clock: Clock
) -> None:
    client, seen = watched
    await seeded_archive(store)
    token = await create_token(store, "vera", Role.VIEWER, clock())
    url = str(client.make_url("/")).rstrip("/")

    async def remote(*args: str) -> list[dict[str, Any]]:
        result = await switchboard(settings, "--url", url, "--token", token, *args)
        assert result.returncode == 0, result.stderr
        found: list[dict[str, Any]] = json.loads(result.stdout)
        return found

    found = await remote("interactions", "--customer", "+420 601 234 567", "--format", "json")
    assert provider_ids(found) == ["CA-5", "SM-1", "CA-3", "CA-1"]
    found_by_mail = await remote(
        "interactions", "--customer", EMAIL.upper(), "--channel", "email", "--format", "json"
    )
    assert provider_ids(found_by_mail) == ["<m2@mail.example>", "<m1@mail.example>"]
    after = str(found[2]["id"])
    paged = await remote(
        "interactions", "--customer", CALLER, "--before", after, "--limit", "1", "--format", "json"
    )
    assert provider_ids(paged) == ["CA-1"]
    assert sum(line == f"POST {SEARCH}" for line in seen) == 3
    for target in seen:
        assert not key_in(target, CALLER, "+420 601 234 567", EMAIL), target

    # without a customer the CLI still asks the GET, which services of every age answer
    by_channel = await remote("interactions", "--channel", "chat", "--format", "json")
    assert provider_ids(by_channel) == ["SM-1"]
    assert seen[-1].startswith("GET /api/interactions?")


async def test_a_service_without_the_post_is_told_not_asked_by_url(settings: Settings) -> None:
    """A service from before the POST answers it 405 (the path matches /api/interactions/{id},
    a GET): the CLI says so rather than falling back to a query string."""
    seen: list[str] = []

    async def only_get(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response([])

    old = web.Application()
    old.router.add_get("/api/interactions", only_get)
    old.router.add_get("/api/interactions/{id}", only_get)
    async with TestServer(old) as server:
        url = str(server.make_url("/")).rstrip("/")
        result = await switchboard(
            settings, "--url", url, "--token", "sb_x", "interactions", "--customer", CALLER
        )
    assert result.returncode != 0
    assert "upgrade the service" in result.stderr
    assert seen == []  # no GET with the key in its query string


# -- the service's own log ---------------------------------------------------------------------


async def test_the_services_log_of_a_get_by_customer_has_the_path_not_the_query(
    service: Service,
) -> None:
    """``switchboard serve`` writes no access log and binds the path alone to its lines, so
    a customer sent in a query string (the GET, still answered) is not in its log."""
    command = str(Path(sys.executable).with_name("switchboard"))
    made = await asyncio.to_thread(
        subprocess.run,
        [command, "token", "create", "--name", "vera", "--role", "viewer", "--format", "json"],
        env=service.env,
        capture_output=True,
        check=True,
        timeout=60,
    )
    token = json.loads(made.stdout)["token"]
    query = urlencode({"customer": "+420 601 234 567", "channel": "phone"})
    async with aiohttp.ClientSession() as session:
        for sent in (token, "sb_not-a-token-we-ever-made"):  # the second is logged as refused
            headers = {"Authorization": f"Bearer {sent}", "X-Request-Id": f"search-{sent[:5]}"}
            async with session.get(
                f"{service.base}/api/interactions?{query}", headers=headers
            ) as response:
                assert response.status in (200, 401)
    lines = [json.loads(line) for line in service.log_path.read_text().splitlines() if line]
    refused = [line for line in lines if line.get("event") == "api.token_refused"]
    assert [line.get("path") for line in refused] == ["/api/interactions"]
    for line in lines:
        assert not key_in(json.dumps(line), CALLER, "+420 601 234 567"), line
