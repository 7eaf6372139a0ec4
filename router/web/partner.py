"""``POST /webhooks/partner/feedback``: the partner reports how a handled interaction ended.

Signed with X-Switchboard-Signature (SWITCHBOARD_CHAT_SECRET, SPEC §5). Body:
``{interaction_id, outcome, rating?, comment?}``; the comment is stored with card numbers
masked. Repeating a report overwrites it (the last word counts), so retries are harmless.
"""

from __future__ import annotations

from typing import Literal

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.core.jsondata import parse_json
from router.core.masking import mask_cards
from router.core.problems import Problem, problems_of
from router.service.ports import DatabaseUnavailable
from router.service.records import MAX_ROW_INTEGER, PartnerFeedback
from router.web.appkeys import clock_key, store_key
from router.web.forwarded import database_unavailable
from router.web.signed import chat_signed_body

log = structlog.get_logger(__name__)

BODY_PATH = "(body)"  # the path of a problem with the body as a whole


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    interaction_id: int = Field(ge=1, le=MAX_ROW_INTEGER, strict=True)
    outcome: Literal["resolved", "unresolved", "escalated", "no_contact"]
    rating: int | None = Field(default=None, ge=1, le=5, strict=True)
    comment: str | None = Field(default=None, max_length=4000)


def refused(problems: list[Problem]) -> web.Response:
    body = {
        "error": "not a feedback report",
        "problems": [{"path": p.path, "message": p.message} for p in problems],
    }
    return web.json_response(body, status=400)


async def partner_feedback(request: web.Request) -> web.Response:
    app = request.app
    body = await chat_signed_body(request, "partner")
    try:
        data = parse_json(body)
    except ValueError as exc:  # also too deep, not UTF-8
        return refused([Problem(BODY_PATH, f"not JSON: {exc}")])
    try:
        feedback = Feedback.model_validate(data)
    except ValidationError as exc:
        return refused(problems_of(exc, data, root=BODY_PATH))
    report = PartnerFeedback(
        partner_outcome=feedback.outcome,
        partner_rating=feedback.rating,
        partner_comment=mask_cards(feedback.comment) if feedback.comment else None,
        feedback_at=app[clock_key](),
    )
    try:
        found = await app[store_key].record_feedback(feedback.interaction_id, report)
    except DatabaseUnavailable as exc:
        log.error("feedback.unavailable", error=str(exc))
        raise database_unavailable() from exc
    if not found:
        raise web.HTTPNotFound(text=f"there is no interaction {feedback.interaction_id}\n")
    log.info(
        "feedback.recorded",
        interaction_id=feedback.interaction_id,
        outcome=feedback.outcome,
        rating=feedback.rating,
    )
    return web.json_response({"interaction_id": feedback.interaction_id, "recorded": True})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/partner/feedback", partner_feedback)
