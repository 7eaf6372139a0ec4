"""``POST /webhooks/partner/feedback``: the partner reports how a handled interaction ended.

Signed with X-Switchboard-Signature (SWITCHBOARD_CHAT_SECRET, SPEC §5). Body:
``{interaction_id, outcome, rating?, comment?}``; the comment is stored with card numbers
masked. Repeating a report overwrites it (the last word counts), so retries are harmless.
"""

from __future__ import annotations

import json
import time
from typing import Literal

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from integrations import signing
from router.appkeys import clock_key, metrics_key, settings_key, store_key
from router.masking import mask_cards

log = structlog.get_logger(__name__)


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    interaction_id: int = Field(ge=1, strict=True)
    outcome: Literal["resolved", "unresolved", "escalated", "no_contact"]
    rating: int | None = Field(default=None, ge=1, le=5, strict=True)
    comment: str | None = Field(default=None, max_length=4000)


async def partner_feedback(request: web.Request) -> web.Response:
    app = request.app
    secret = app[settings_key].chat_secret
    if secret is None:
        log.warning("feedback.refused", reason="SWITCHBOARD_CHAT_SECRET is not set")
        raise web.HTTPForbidden(text="feedback is disabled: SWITCHBOARD_CHAT_SECRET is unset\n")
    body = await request.read()
    why = signing.verify(secret, body, request.headers.get(signing.HEADER, ""), time.time())
    if why is not None:
        app[metrics_key].signatures_rejected.labels("partner").inc()
        log.warning("feedback.refused", reason=why)
        raise web.HTTPForbidden(text=f"{why}\n")
    try:
        feedback = Feedback.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        problems = (
            [
                {"path": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
                for e in exc.errors()
            ]
            if isinstance(exc, ValidationError)
            else [{"path": "(body)", "message": f"not JSON: {exc}"}]
        )
        return web.json_response(
            {"error": "not a feedback report", "problems": problems}, status=400
        )
    changes = {
        "partner_outcome": feedback.outcome,
        "partner_rating": feedback.rating,
        "partner_comment": mask_cards(feedback.comment) if feedback.comment else None,
        "feedback_at": app[clock_key](),
    }
    try:
        found = await app[store_key].record_feedback(feedback.interaction_id, changes)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.error("feedback.unavailable", error=str(exc))
        raise web.HTTPServiceUnavailable(text="database unavailable; retry later\n") from exc
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
