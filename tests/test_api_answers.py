"""The operators' API answers exactly what /api/openapi.json says it answers: every route is
called for real and each answer is read back by the model its schema was generated from.
The models forbid keys they do not declare, so an answer that grows a key its model (and so
the published document) lacks fails here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from router.service.views import Change, RecordedInteraction, Status, Version
from router.web.api import OPENAPI, ROUTES
from router.web.openapi import Operation

from . import test_api
from .conftest import Clock
from .test_api import (
    CUTOVER,
    Answer,
    Client,
    Tokens,
    api,
    call_goes_to,
    cutover_body,
    edited_routing,
)

tokens = test_api.tokens  # the fixture

OPERATIONS = {(op.method, op.path): op for op, _ in ROUTES} | {
    (OPENAPI.method, OPENAPI.path): OPENAPI
}
PLAN = [
    {"at": "2026-12-01T08:00:00+01:00", "reason": "step 1", "cutover": {"phone": {"admin": 25}}}
]


def conforms(operation: Operation, answer: Answer) -> None:
    assert answer.status == 200, (operation.path, answer.body)
    try:
        TypeAdapter(operation.answer).validate_python(answer.body)
    except ValidationError as error:
        pytest.fail(f"{operation.method} {operation.path} answered off its model:\n{error}")


async def test_every_route_answers_what_its_published_model_declares(
    client: Client, tokens: Tokens, clock: Clock
) -> None:
    called: set[tuple[str, str]] = set()

    async def check(
        method: str,
        path_qs: str,
        token: str | None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        path = path_qs.partition("?")[0]
        answer = await api(client, method, path_qs, token, body, headers=headers)
        path = re.sub(r"/[0-9]+$", "/{id}", path) if path.startswith("/api/interactions/") else path
        conforms(OPERATIONS[method, path], answer)
        called.add((method, path))
        return answer

    await call_goes_to(client, "CA1")
    await check("POST", CUTOVER, tokens.operator, cutover_body(dry_run=True))
    await check("POST", CUTOVER, tokens.operator, cutover_body(percent=50))
    soon = (clock() + timedelta(minutes=1)).isoformat()
    plan = [{"at": soon, "reason": "step 1", "cutover": {"phone": {"admin": 25}}}]
    await check("POST", "/api/plan", tokens.admin, plan)
    timed = {"reason": "partner down", "for": "24h", "channel": "phone"}
    await check("POST", "/api/rollback", tokens.operator, timed)
    clock.advance(timedelta(minutes=2))
    held = await check("GET", "/api/status", tokens.viewer)
    assert [step["held_by_rollback"] for step in held.body["plan"]] == [True]
    await check("POST", "/api/resume", tokens.operator, {"reason": "partner fixed"})
    await check("POST", "/api/rollback", tokens.operator, {"reason": "incident", "for": "1h"})
    await check("POST", "/api/routing/revert", tokens.admin, {"version": 1, "reason": "again"})
    status = await check("GET", "/api/status", tokens.viewer)
    assert status.body["rollback_return_cancelled"] is not None
    document, tag = await edited_routing(client, tokens)
    put = await check("PUT", "/api/routing", tokens.admin, document, {"If-Match": tag})
    again = {"If-Match": put.headers["ETag"]}
    unchanged = await check("PUT", "/api/routing", tokens.admin, document, again)
    assert unchanged.body["changed"] is False
    await check("GET", "/api/routing", tokens.viewer)
    await check("GET", "/api/routing?version=1", tokens.viewer)
    await check("GET", "/api/routing/history", tokens.viewer)
    await check("GET", "/api/routing/diff?from=1&to=2", tokens.viewer)
    await check("POST", "/api/classify", tokens.viewer, {"text": "Kde je moje objednávka?"})
    interactions = await check("GET", "/api/interactions", tokens.viewer)
    assert interactions.body
    await check("GET", f"/api/interactions/{interactions.body[0]['id']}", tokens.viewer)
    searched = {"customer": "+420601234567", "limit": 1}
    assert (await check("POST", "/api/interactions/search", tokens.viewer, searched)).body
    await check("GET", "/api/traffic?hours=24", tokens.viewer)
    await check("GET", "/api/report?since=30d", tokens.viewer)
    await check("GET", "/api/staffing?since=7d", tokens.viewer)
    await check("GET", "/api/statement?month=2026-11", tokens.viewer)
    await check("GET", "/api/sla?since=30d", tokens.viewer)
    await check("GET", "/api/plan", tokens.viewer)
    await check("DELETE", "/api/plan", tokens.admin)
    await check("GET", "/api/openapi.json", None)
    assert called == set(OPERATIONS), "a route the test does not call: add it here"


VERSION = {
    "version": 1,
    "kind": "apply",
    "actor": "a",
    "reason": "r",
    "created_at": "2026-11-23T08:00:00+00:00",
}


@pytest.mark.parametrize("model", [Version, Change])
def test_an_answer_model_refuses_a_key_it_does_not_declare(model: type[Version]) -> None:
    model.model_validate(VERSION)
    with pytest.raises(ValidationError, match="Extra inputs"):
        model.model_validate({**VERSION, "surprise": 1})


def test_the_published_schemas_forbid_undeclared_keys() -> None:
    for model in (Status, Change, RecordedInteraction):
        assert model.model_json_schema()["additionalProperties"] is False
