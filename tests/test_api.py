"""The operators' API over HTTP: the real app on a real SQLite file, real bearer tokens."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDictProxy

from router.core.document import validate_document
from router.service.tokens import Role, create_token
from router.store import Store
from router.web.api import ROUTES
from router.web.appkeys import routing_key, store_key

from .conftest import Clock, post_twilio
from .stored import assert_nothing_stored

Client = TestClient[Any, Any]

PARTNER = "+420800100200"
HOTLINE = "+420222333444"
ROUTE = "/webhooks/twilio/voice/route"
CUTOVER = "/api/cutover"


@dataclass(frozen=True, slots=True)
class Tokens:
    viewer: str
    operator: str
    other_operator: str
    admin: str
    revoked: str


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]


@pytest.fixture
async def tokens(client: Client, store: Store, clock: Clock) -> Tokens:
    """Tokens in the app's database (the client fixture has migrated it)."""
    now = clock()
    made = {
        name: await create_token(store, name, role, now)
        for name, role in [
            ("vera", Role.VIEWER),
            ("olga", Role.OPERATOR),
            ("oscar", Role.OPERATOR),
            ("adam", Role.ADMIN),
            ("rex", Role.ADMIN),
        ]
    }
    await store.revoke_token("rex", now)
    return Tokens(made["vera"], made["olga"], made["oscar"], made["adam"], made["rex"])


async def api(
    client: Client,
    method: str,
    path: str,
    token: str | None,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    response = await client.request(method, path, data=data, headers=sent)
    text = await response.text()
    parsed = json.loads(text) if response.content_type == "application/json" else text
    return Answer(response.status, parsed, response.headers)


def problem_paths(answer: Answer) -> list[str]:
    assert answer.status == 422, answer.body
    return [problem["path"] for problem in answer.body["problems"]]


async def history(client: Client, tokens: Tokens) -> list[dict[str, Any]]:
    answer = await api(client, "GET", "/api/routing/history", tokens.viewer)
    assert answer.status == 200
    versions: list[dict[str, Any]] = answer.body
    return versions


async def call_goes_to(client: Client, sid: str, caller: str = "+420601234567") -> str:
    """Route one signed call with key 1 (admin); the number it is dialled to."""
    form = {"CallSid": sid, "From": caller, "To": "+420555000111", "Digits": "1"}
    response = await post_twilio(client, ROUTE, form)
    assert response.status == 200
    number = ET.fromstring(await response.text()).find("Dial/Number")
    assert number is not None and number.text
    return number.text


def cutover_body(**changes: Any) -> dict[str, Any]:
    return {"channel": "phone", "category": "admin", "percent": 100, "reason": "go", **changes}


# -- tokens and roles ------------------------------------------------------------------------


def every_operation() -> Iterator[tuple[str, str, Role]]:
    for operation, _ in ROUTES:
        assert operation.role is not None
        yield operation.method, operation.path, operation.role


def concrete(path: str) -> str:
    """*path* with every {parameter} filled in (1)."""
    import re

    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.mark.parametrize("case", ["none", "unknown", "revoked", "not bearer"])
async def test_every_endpoint_refuses_a_missing_unknown_or_revoked_token(
    client: Client, tokens: Tokens, case: str
) -> None:
    headers = {
        "none": {},
        "unknown": {"Authorization": "Bearer sb_not-a-token-we-ever-made"},
        "revoked": {"Authorization": f"Bearer {tokens.revoked}"},
        "not bearer": {"Authorization": f"Basic {tokens.admin}"},
    }[case]
    for method, path, _ in every_operation():
        answer = await api(client, method, concrete(path), None, {"reason": "x"}, headers=headers)
        assert answer.status == 401, (method, path)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
        assert answer.body["error"]
    assert len(await history(client, tokens)) == 1
    await assert_nothing_stored(client.app[store_key])


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
async def test_a_role_too_weak_is_forbidden_and_changes_nothing(
    client: Client, tokens: Tokens, role: Role
) -> None:
    token = tokens.viewer if role is Role.VIEWER else tokens.operator
    forbidden = [(m, p) for m, p, needed in every_operation() if not role.allows(needed)]
    assert forbidden
    for method, path in forbidden:
        answer = await api(client, method, path, token, cutover_body())
        assert answer.status == 403, (method, path)
        assert role.value in answer.body["error"]
    assert len(await history(client, tokens)) == 1
    await assert_nothing_stored(client.app[store_key])


async def test_viewer_may_not_cut_over_and_operator_may_not_edit_routing(
    client: Client, tokens: Tokens
) -> None:
    assert (await api(client, "POST", CUTOVER, tokens.viewer, cutover_body())).status == 403
    routing = await api(client, "GET", "/api/routing", tokens.viewer)
    for method, path, body in [
        ("PUT", "/api/routing", routing.body),
        ("POST", "/api/routing/revert", {"version": 1, "reason": "x"}),
        ("POST", "/api/plan", []),
        ("DELETE", "/api/plan", None),
    ]:
        headers = {"If-Match": routing.headers["ETag"]}
        answer = await api(client, method, path, tokens.operator, body, headers=headers)
        assert answer.status == 403, path
    await assert_nothing_stored(client.app[store_key])


@pytest.mark.parametrize("role", list(Role))
async def test_a_strong_enough_role_gets_past_the_door(
    client: Client, tokens: Tokens, role: Role
) -> None:
    token = {Role.VIEWER: tokens.viewer, Role.OPERATOR: tokens.operator, Role.ADMIN: tokens.admin}
    for method, path, needed in every_operation():
        if role.allows(needed):
            answer = await api(client, method, path, token[role], {"bad": "body"})
            assert answer.status not in (401, 403), (method, path)


async def test_openapi_needs_no_token_and_describes_every_api_route(client: Client) -> None:
    answer = await api(client, "GET", "/api/openapi.json", None)
    assert answer.status == 200
    spec = answer.body
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    registered = {
        (route.method.lower(), route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"
    }
    documented = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert registered == documented
    for method, path, role in every_operation():
        operation = spec["paths"][path][method.lower()]
        assert operation["x-switchboard-role"] == role.value
        assert operation["security"] == [{"bearer": []}]
        assert "401" in operation["responses"]
    assert spec["paths"]["/api/openapi.json"]["get"]["security"] == []
    assert spec["paths"]["/api/cutover"]["post"]["requestBody"]
    assert every_ref_resolves(spec)


def every_ref_resolves(spec: dict[str, Any]) -> bool:
    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    refs = list(walk(spec))
    for reference in refs:
        target: Any = spec
        for part in reference.removeprefix("#/").split("/"):
            target = target[part]
    return bool(refs)


# -- status, routing documents ---------------------------------------------------------------


async def test_status_shows_the_version_and_the_share_matrix(
    client: Client, tokens: Tokens
) -> None:
    answer = await api(client, "GET", "/api/status", tokens.viewer)
    assert answer.status == 200
    assert answer.body["version"] == 1
    assert answer.body["cutover"]["phone"] == {"admin": 0, "product": 0, "unknown": 0}
    assert answer.body["rollback"] is None


async def test_status_lists_as_many_held_conversations_as_asked_and_refuses_nonsense(
    client: Client, tokens: Tokens
) -> None:
    for listed in ("1", "all"):
        answer = await api(client, "GET", f"/api/status?conversations={listed}", tokens.viewer)
        assert answer.status == 200, answer.body
        assert answer.body["partner_conversations"] == []
        assert answer.body["partner_conversations_count"] == 0
    for bad in ("0", "-3", "many", "1.5"):
        answer = await api(client, "GET", f"/api/status?conversations={bad}", tokens.viewer)
        assert answer.status == 422, (bad, answer.body)
        assert "conversations" in json.dumps(answer.body)


async def test_get_routing_returns_the_document_and_its_etag(
    client: Client, tokens: Tokens
) -> None:
    answer = await api(client, "GET", "/api/routing", tokens.viewer)
    assert answer.status == 200
    assert answer.headers["ETag"] == '"1"'
    assert validate_document(answer.body).destinations["partner"].phone == PARTNER


async def edited_routing(client: Client, tokens: Tokens) -> tuple[dict[str, Any], str]:
    answer = await api(client, "GET", "/api/routing", tokens.viewer)
    document = copy.deepcopy(answer.body)
    document["cutover"]["email"]["admin"] = 30
    return document, answer.headers["ETag"]


async def test_put_routing_makes_a_new_version_with_a_new_etag(
    client: Client, tokens: Tokens
) -> None:
    document, tag = await edited_routing(client, tokens)
    answer = await api(
        client,
        "PUT",
        "/api/routing?reason=email+step+1",
        tokens.admin,
        document,
        headers={"If-Match": tag},
    )
    assert answer.status == 200, answer.body
    assert answer.body["changed"] is True
    assert answer.body["version"] == 2
    assert answer.body["kind"] == "apply"
    assert answer.body["actor"] == "adam"
    assert answer.body["reason"] == "email step 1"
    assert answer.headers["ETag"] == '"2"'
    now = await api(client, "GET", "/api/routing", tokens.viewer)
    assert now.headers["ETag"] == '"2"'
    assert now.body["cutover"]["email"]["admin"] == 30


async def test_put_of_the_current_document_changes_nothing(client: Client, tokens: Tokens) -> None:
    current = await api(client, "GET", "/api/routing", tokens.viewer)
    answer = await api(
        client,
        "PUT",
        "/api/routing",
        tokens.admin,
        current.body,
        headers={"If-Match": '"1"'},
    )
    assert answer.status == 200
    assert answer.body["changed"] is False
    assert answer.body["version"] == 1
    assert len(await history(client, tokens)) == 1


@pytest.mark.parametrize("header", [None, "*", 'W/"1"', "1"])
async def test_put_routing_without_a_usable_if_match_is_428(
    client: Client, tokens: Tokens, header: str | None
) -> None:
    document, _ = await edited_routing(client, tokens)
    headers = {} if header is None else {"If-Match": header}
    answer = await api(client, "PUT", "/api/routing", tokens.admin, document, headers=headers)
    assert answer.status == 428
    assert "If-Match" in answer.body["error"]
    assert len(await history(client, tokens)) == 1
    await assert_nothing_stored(client.app[store_key])


async def test_put_routing_with_a_stale_etag_is_409(client: Client, tokens: Tokens) -> None:
    document, tag = await edited_routing(client, tokens)
    assert (await api(client, "POST", CUTOVER, tokens.operator, cutover_body())).status == 200
    answer = await api(
        client, "PUT", "/api/routing", tokens.admin, document, headers={"If-Match": tag}
    )
    assert answer.status == 409
    assert "changed meanwhile" in answer.body["error"]
    assert len(await history(client, tokens)) == 2


async def test_an_invalid_document_is_refused_with_every_problem(
    client: Client, tokens: Tokens
) -> None:
    document, tag = await edited_routing(client, tokens)
    document["baseline"]["admin"] = "callcenter"
    document["cutover"]["email"]["admin"] = 150
    document["destinations"]["partner"]["phone"] = "0800 100"
    document["ivr"]["colour"] = "blue"
    answer = await api(
        client, "PUT", "/api/routing", tokens.admin, document, headers={"If-Match": tag}
    )
    assert answer.body["error"] == "not a valid routing document"
    assert problem_paths(answer) == [
        "baseline.admin",
        "cutover.email.admin",
        "destinations.partner.phone",
        "ivr.colour",
    ]
    assert all(problem["message"] for problem in answer.body["problems"])
    assert len(await history(client, tokens)) == 1
    await assert_nothing_stored(client.app[store_key])


@pytest.mark.parametrize(
    ("path_qs", "raw", "problem"),
    [
        ("/api/routing", b"{not json", "(body)"),
        ("/api/routing", b"[1, 2]", "(document)"),
        ("/api/routing?reason=%20", b"{}", "reason"),
        ("/api/routing?reasons=typo", b"{}", "reasons"),
    ],
)
async def test_put_routing_refuses_a_body_or_query_that_is_no_good(
    client: Client, tokens: Tokens, path_qs: str, raw: bytes, problem: str
) -> None:
    answer = await api(client, "PUT", path_qs, tokens.admin, raw=raw, headers={"If-Match": '"1"'})
    assert problem in problem_paths(answer)
    assert len(await history(client, tokens)) == 1
    await assert_nothing_stored(client.app[store_key])


async def test_diff_lists_what_changed_between_versions(client: Client, tokens: Tokens) -> None:
    await api(client, "POST", CUTOVER, tokens.operator, cutover_body(percent=40))
    answer = await api(client, "GET", "/api/routing/diff?from=1&to=2", tokens.viewer)
    assert answer.status == 200
    assert answer.body == [{"path": "cutover.phone.admin", "from": 0, "to": 40}]


@pytest.mark.parametrize(
    ("query", "status", "paths"),
    [
        ("from=1&to=9", 404, None),
        ("from=one&to=x", 422, ["from", "to"]),
        ("to=1", 422, ["from"]),
        ("from=1&to=1&colour=red", 422, ["colour"]),
    ],
)
async def test_diff_of_unknown_or_malformed_versions(
    client: Client, tokens: Tokens, query: str, status: int, paths: list[str] | None
) -> None:
    answer = await api(client, "GET", f"/api/routing/diff?{query}", tokens.viewer)
    assert answer.status == status
    if paths is not None:
        assert problem_paths(answer) == paths


async def test_revert_brings_an_old_document_back(client: Client, tokens: Tokens) -> None:
    await api(client, "POST", CUTOVER, tokens.operator, cutover_body())
    answer = await api(
        client, "POST", "/api/routing/revert", tokens.admin, {"version": 1, "reason": "undo"}
    )
    assert answer.status == 200
    assert (answer.body["version"], answer.body["kind"]) == (3, "revert")
    diff = await api(client, "GET", "/api/routing/diff?from=1&to=3", tokens.viewer)
    assert diff.body == []


async def test_revert_to_an_unknown_version_is_404(client: Client, tokens: Tokens) -> None:
    answer = await api(
        client, "POST", "/api/routing/revert", tokens.admin, {"version": 42, "reason": "x"}
    )
    assert answer.status == 404
    assert "42" in answer.body["error"]
    await assert_nothing_stored(client.app[store_key])


# -- cut-over, rollback, resume ----------------------------------------------------------------


async def test_cutover_sets_one_share_with_the_token_as_actor(
    client: Client, tokens: Tokens
) -> None:
    answer = await api(client, "POST", CUTOVER, tokens.operator, cutover_body(percent=25))
    assert answer.status == 200
    assert answer.body["kind"] == "cutover"
    assert answer.body["actor"] == "olga"
    status = await api(client, "GET", "/api/status", tokens.viewer)
    assert status.body["cutover"]["phone"]["admin"] == 25
    assert status.body["cutover"]["email"]["admin"] == 0


async def test_cutover_all_means_every_channel_and_category(client: Client, tokens: Tokens) -> None:
    body = cutover_body(channel="all", category="all", percent=10)
    assert (await api(client, "POST", CUTOVER, tokens.operator, body)).status == 200
    status = await api(client, "GET", "/api/status", tokens.viewer)
    assert {share for row in status.body["cutover"].values() for share in row.values()} == {10}


async def test_a_bad_cutover_body_lists_every_problem(client: Client, tokens: Tokens) -> None:
    body = {"channel": "fax", "category": 5, "percent": 150, "reason": "  ", "colour": 1}
    answer = await api(client, "POST", CUTOVER, tokens.operator, body)
    assert problem_paths(answer) == ["channel", "category", "percent", "reason", "colour"]
    messages = {p["path"]: p["message"] for p in answer.body["problems"]}
    assert "unknown channel 'fax'" in messages["channel"]
    assert messages["colour"] == "unknown key"
    assert len(await history(client, tokens)) == 1
    await assert_nothing_stored(client.app[store_key])


@pytest.mark.parametrize(
    ("path", "body", "paths"),
    [
        (CUTOVER, {}, ["channel", "category", "percent", "reason"]),
        (CUTOVER, cutover_body(percent="50", dry_run="yes"), ["percent", "dry_run"]),
        ("/api/rollback", {"reason": "x", "for": "soon", "channel": "fax"}, ["channel", "for"]),
        ("/api/rollback", {"reason": ""}, ["reason"]),
        ("/api/resume", {"why": "x"}, ["reason", "why"]),
        ("/api/routing/revert", {"version": "1", "reason": "x"}, ["version"]),
        ("/api/classify", {"lang": "Czech"}, ["text", "lang"]),
        (
            "/api/plan",
            [{"at": "tomorrow", "reason": "", "cutover": {"fax": {}}}],
            ["[0].at", "[0].reason", "[0].cutover.fax"],
        ),
        (CUTOVER, [1, 2], ["(body)"]),
    ],
)
async def test_bad_bodies_are_422_with_every_problem_by_path(
    client: Client, tokens: Tokens, path: str, body: Any, paths: list[str]
) -> None:
    answer = await api(client, "POST", path, tokens.admin, body)
    assert problem_paths(answer) == paths
    assert len(await history(client, tokens)) == 1
    await assert_nothing_stored(client.app[store_key])


@pytest.mark.parametrize("path", [CUTOVER, "/api/rollback", "/api/resume", "/api/classify"])
async def test_a_body_that_is_not_json_is_422(client: Client, tokens: Tokens, path: str) -> None:
    answer = await api(client, "POST", path, tokens.admin, raw=b"reason=why")
    assert problem_paths(answer) == ["(body)"]
    assert answer.body["error"] == "the body is not JSON"
    await assert_nothing_stored(client.app[store_key])


async def test_cutover_dry_run_shows_the_impact_and_stores_nothing(
    client: Client, tokens: Tokens
) -> None:
    for number in range(6):
        assert await call_goes_to(client, f"CA{number}", f"+42060123456{number}") == HOTLINE
    answer = await api(client, "POST", CUTOVER, tokens.operator, cutover_body(dry_run=True))
    assert answer.status == 200
    assert answer.body["dry_run"] is True
    assert answer.body["version"] == 1
    assert answer.body["contacts"] == 6
    assert answer.body["moves"] == {"phone": {"hotline -> partner": 6}}
    assert sum(answer.body["moved"]["phone"].values()) == 6
    assert len(await history(client, tokens)) == 1


async def test_dry_run_replays_only_the_days_asked_for(
    client: Client, tokens: Tokens, clock: Clock
) -> None:
    await call_goes_to(client, "CA1")
    clock.advance(timedelta(days=3))
    body = cutover_body(dry_run=True, days=2)
    answer = await api(client, "POST", CUTOVER, tokens.operator, body)
    assert (answer.body["contacts"], answer.body["moves"]) == (0, {})


async def test_a_timed_rollback_says_until_when(
    client: Client, tokens: Tokens, clock: Clock
) -> None:
    await api(client, "POST", CUTOVER, tokens.operator, cutover_body())
    body = {"reason": "partner down", "for": "24h", "channel": "phone"}
    answer = await api(client, "POST", "/api/rollback", tokens.operator, body)
    assert answer.status == 200
    assert answer.body["kind"] == "rollback"
    until = datetime.fromisoformat(answer.body["until"])
    assert until - datetime.fromisoformat(answer.body["created_at"]) == timedelta(hours=24)
    assert abs(until - (clock() + timedelta(hours=24))) < timedelta(seconds=30)
    status = await api(client, "GET", "/api/status", tokens.viewer)
    rollback = status.body["rollback"]
    assert (rollback["actor"], rollback["reason"]) == ("olga", "partner down")
    assert rollback["until"] == answer.body["until"]
    assert status.body["cutover"]["phone"]["admin"] == 0


async def test_resume_without_a_rollback_is_409(client: Client, tokens: Tokens) -> None:
    answer = await api(client, "POST", "/api/resume", tokens.operator, {"reason": "back"})
    assert answer.status == 409
    assert "no rollback is in force" in answer.body["error"]
    await assert_nothing_stored(client.app[store_key])


async def test_a_rollback_through_the_api_sends_the_next_call_to_baseline(
    client: Client, tokens: Tokens
) -> None:
    await api(client, "POST", CUTOVER, tokens.operator, cutover_body())
    assert await call_goes_to(client, "CA1") == PARTNER
    answer = await api(client, "POST", "/api/rollback", tokens.operator, {"reason": "incident"})
    assert answer.status == 200
    assert client.app[routing_key].active.version == answer.body["version"]
    assert await call_goes_to(client, "CA2") == HOTLINE


async def test_the_audit_trail_names_each_token_reason_and_kind(
    client: Client, tokens: Tokens
) -> None:
    steps: list[tuple[str, str, str, dict[str, Any]]] = [
        (tokens.operator, "POST", CUTOVER, cutover_body(reason="step 1")),
        (tokens.other_operator, "POST", "/api/rollback", {"reason": "incident", "for": "24h"}),
        (tokens.operator, "POST", "/api/resume", {"reason": "partner fixed"}),
        (tokens.admin, "POST", "/api/routing/revert", {"version": 1, "reason": "start over"}),
    ]
    for token, method, path, body in steps:
        assert (await api(client, method, path, token, body)).status == 200, path
    document, tag = await edited_routing(client, tokens)
    put = await api(
        client,
        "PUT",
        "/api/routing?reason=email+trial",
        tokens.admin,
        document,
        headers={"If-Match": tag},
    )
    assert put.status == 200
    trail = [
        (v["version"], v["kind"], v["actor"], v["reason"]) for v in await history(client, tokens)
    ]
    assert trail == [
        (6, "apply", "adam", "email trial"),
        (5, "revert", "adam", "start over"),
        (4, "resume", "olga", "partner fixed"),
        (3, "rollback", "oscar", "incident"),
        (2, "cutover", "olga", "step 1"),
        (1, "apply", "system", "initial routing from config/routing.yaml"),
    ]


# -- classifier, interactions, plans ---------------------------------------------------------------


async def test_classify_explains_itself(client: Client, tokens: Tokens) -> None:
    body = {"text": "Kde je moje objednávka?", "lang": "cs"}
    answer = await api(client, "POST", "/api/classify", tokens.viewer, body)
    assert answer.status == 200
    assert answer.body["category"] == "admin"
    assert answer.body["language"] == "cs"
    assert {"rule": "objednav", "category": "admin", "weight": 2.0} in answer.body["matches"]
    assert 0 < answer.body["confidence"] <= 1


async def test_interactions_newest_first_with_filters(
    client: Client, tokens: Tokens, clock: Clock
) -> None:
    await call_goes_to(client, "CA1")
    clock.advance(timedelta(hours=2))
    await call_goes_to(client, "CA2")
    every = await api(client, "GET", "/api/interactions", tokens.viewer)
    assert every.status == 200
    assert [row["provider_id"] for row in every.body] == ["CA2", "CA1"]
    first = every.body[0]
    assert first["channel"] == "phone"
    assert first["destination"] == "hotline"
    assert abs(datetime.fromisoformat(first["received_at"]) - clock()) < timedelta(seconds=30)
    for query, expected in [
        ("since=1h", ["CA2"]),
        ("limit=1", ["CA2"]),
        ("channel=email", []),
        (f"since={(clock() - timedelta(hours=3)).isoformat()}", ["CA2", "CA1"]),
    ]:
        answer = await api(client, "GET", f"/api/interactions?{query}", tokens.viewer)
        assert [row["provider_id"] for row in answer.body] == expected, query


async def test_bad_interaction_filters_are_422(client: Client, tokens: Tokens) -> None:
    answer = await api(
        client, "GET", "/api/interactions?since=yesterday&channel=fax&limit=0", tokens.viewer
    )
    assert problem_paths(answer) == ["since", "channel", "limit"]


async def test_plans_are_scheduled_listed_and_cancelled(client: Client, tokens: Tokens) -> None:
    plan = [
        {
            "at": "2026-12-01T08:00:00+01:00",
            "reason": "step 1",
            "cutover": {"phone": {"admin": 25}},
        }
    ]
    scheduled = await api(client, "POST", "/api/plan", tokens.admin, plan)
    assert scheduled.status == 200
    assert scheduled.body["scheduled"][0]["created_by"] == "adam"
    listed = await api(client, "GET", "/api/plan", tokens.viewer)
    assert [(s["at"], s["cutover"]) for s in listed.body] == [
        ("2026-12-01T07:00:00+00:00", {"phone": {"admin": 25.0}})
    ]
    cancelled = await api(client, "DELETE", "/api/plan", tokens.admin)
    assert cancelled.body == {"cancelled": 1}
    assert (await api(client, "GET", "/api/plan", tokens.viewer)).body == []


# -- the router table, not the API's own list: a route added any other way is covered too ------

OPEN_API_ROUTES = {("GET", "/api/openapi.json")}


def api_routes_of(client: Client) -> list[tuple[str, str]]:
    """Every (method, path) the running app answers under /api, from aiohttp's router."""
    return sorted(
        {
            (route.method, route.resource.canonical)
            for route in client.app.router.routes()
            if route.resource is not None
            and route.resource.canonical.startswith("/api")
            and route.method not in ("HEAD", "OPTIONS")
        }
        - OPEN_API_ROUTES
    )


async def test_every_api_route_in_the_router_table_wants_a_live_token_of_its_role(
    client: Client, tokens: Tokens
) -> None:
    """No token, an empty, malformed, unknown, altered or revoked one: 401. The weakest
    role that gets past the door is the one the OpenAPI document states, and every weaker
    role gets 403."""
    import re

    spec = (await api(client, "GET", "/api/openapi.json", None)).body
    refused = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer sb_"},
        {"Authorization": f"Bearer {tokens.admin}x"},  # one character more
        {"Authorization": f"Bearer {tokens.admin[:-1]}"},  # one character less
        {"Authorization": f"bearer {tokens.revoked}"},
        {"Authorization": f"Token {tokens.admin}"},
    ]
    by_role = [(Role.VIEWER, tokens.viewer), (Role.OPERATOR, tokens.operator)]
    by_role.append((Role.ADMIN, tokens.admin))
    routes = api_routes_of(client)
    assert len(routes) >= len(ROUTES)
    for method, path in routes:
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for headers in refused:
            answer = await api(client, method, concrete, None, {"bad": "body"}, headers=headers)
            assert answer.status == 401, (method, path, headers)
        statuses = [
            (role, (await api(client, method, concrete, token, {"bad": "body"})).status)
            for role, token in by_role
        ]
        passed = [role for role, status in statuses if status not in (401, 403)]
        assert passed, (method, path, statuses)
        least = passed[0]
        assert spec["paths"][path][method.lower()]["x-switchboard-role"] == least.value
        assert all(status == 403 for role, status in statuses if role.rank < least.rank)
    await assert_nothing_stored(client.app[store_key])


def test_every_api_call_of_the_console_is_a_guarded_api_route() -> None:
    """What the console's script calls is what the router-table test above covers."""
    import re
    from pathlib import Path

    import router.web

    script = (Path(router.web.__file__).parent / "static" / "console.js").read_text()
    calls = set(re.findall(r'api\("([A-Z]+)", "api/([^"?]+)', script))
    assert calls, "the console calls no API?"
    guarded = {(operation.method, operation.path) for operation, _ in ROUTES}
    for method, path in calls:
        assert (method, f"/api/{path}") in guarded, (method, path)
