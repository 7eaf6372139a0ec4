"""What the Twilio webhooks (voice and messaging) share in the web shell: the verified form
and the TwiML response. The signature scheme itself is in ``integrations/twilio_voice.py``."""

from __future__ import annotations

import structlog
from aiohttp import web
from multidict import MultiDictProxy

from integrations import twilio_voice as tv
from router.web.appkeys import metrics_key, settings_key
from router.web.bodies import urlencoded_form

log = structlog.get_logger(__name__)


def twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml", charset="utf-8")


def base_url(request: web.Request) -> str:
    """Where Twilio reaches us: the configured public URL, else what this request used."""
    public = request.app[settings_key].public_url
    return public if public is not None else f"{request.scheme}://{request.host}"


async def verified_form(request: web.Request) -> MultiDictProxy[str]:
    """The POSTed form, or 403 when X-Twilio-Signature does not match.

    The signature covers the parsed form, so the form is read first: one that cannot be
    read (not a UTF-8 urlencoded form, too large, too slow) is refused before any signature
    is looked at (``router/web/bodies.py``: 400, 413, 408, 415). Every value of a repeated
    name is kept, as Twilio signs them all.

    The signed URL is rebuilt from SWITCHBOARD_PUBLIC_URL plus the path and query as they
    arrived, so signatures hold behind a proxy that strips a path prefix.
    """
    token = request.app[settings_key].twilio_auth_token
    if token is None:
        log.warning("twilio.refused", reason="TWILIO_AUTH_TOKEN is not set")
        raise web.HTTPForbidden(text="Twilio webhooks are disabled: TWILIO_AUTH_TOKEN is unset\n")
    form = await urlencoded_form(request)
    url = base_url(request) + request.raw_path
    signature = request.headers.get(tv.SIGNATURE_HEADER, "")
    if not tv.signature_valid(token, url, form, signature):
        request.app[metrics_key].signatures_rejected.labels("twilio").inc()
        log.warning(
            "twilio.signature_rejected",
            url=url,
            signature_present=bool(signature),
            call_sid=form.get("CallSid"),
        )
        raise web.HTTPForbidden(text="invalid X-Twilio-Signature\n")
    return form
