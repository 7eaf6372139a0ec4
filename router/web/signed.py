"""Reading a request signed with X-Switchboard-Signature (SPEC §5), for the endpoints that
share SWITCHBOARD_CHAT_SECRET: the chat webhook and the partner's feedback."""

from __future__ import annotations

import structlog
from aiohttp import web

from integrations import signing
from router.web.appkeys import clock_key, metrics_key, settings_key
from router.web.bodies import body_bytes

log = structlog.get_logger(__name__)


async def chat_signed_body(request: web.Request, source: str) -> bytes:
    """The raw body once its signature checks out, fresh by the app's clock; 403 (logged,
    counted) otherwise, and for every request while SWITCHBOARD_CHAT_SECRET is unset."""
    secret = request.app[settings_key].chat_secret
    if secret is None:
        log.warning("webhook.refused", source=source, reason="SWITCHBOARD_CHAT_SECRET is not set")
        raise web.HTTPForbidden(text=f"{source} is disabled: SWITCHBOARD_CHAT_SECRET is unset\n")
    body = await body_bytes(request)  # within the route's limit and the body deadline
    now = request.app[clock_key]().timestamp()
    why = signing.verify(secret, body, request.headers.get(signing.HEADER, ""), now)
    if why is not None:
        request.app[metrics_key].signatures_rejected.labels(source).inc()
        log.warning("webhook.refused", source=source, reason=why)
        raise web.HTTPForbidden(text=f"{why}\n")
    return body
