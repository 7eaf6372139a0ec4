"""HTTP endpoints of the phone channel (Twilio Voice webhooks).

Each handler is: verify the signature, parse into core values, decide (pure), render TwiML,
make the answer durable together with the interaction, answer. If the database cannot be
written, the caller still gets the TwiML and the contact is logged in full
(``contact.unrecorded``) so it can be recorded later (SPEC §7).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import structlog
from aiohttp import web

from integrations import twilio_voice as tv
from integrations.smtp import voicemail_message
from router.core.contact import Channel
from router.core.decide import categorize, decide, stored_bucket, unanswered_fallback
from router.service.calls import (
    abandoned_call_row,
    record_call_end,
    record_call_progress,
    voicemail_forward,
)
from router.service.contacts import customer_hash, record_routed_contact
from router.service.records import Reply
from router.store import DatabaseUnavailable
from router.web.appkeys import (
    clock_key,
    customer_secret_key,
    metrics_key,
    outbox_wake_key,
    routing_key,
    settings_key,
    store_key,
)

log = structlog.get_logger(__name__)

_PHONE = Channel.PHONE.value


def twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml", charset="utf-8")


def base_url(request: web.Request) -> str:
    """Where Twilio reaches us: the configured public URL, else what this request used."""
    public = request.app[settings_key].public_url
    return public if public is not None else f"{request.scheme}://{request.host}"


async def verified_form(request: web.Request) -> dict[str, str]:
    """The POSTed form, or 403 when X-Twilio-Signature does not match.

    The signed URL is rebuilt from SWITCHBOARD_PUBLIC_URL plus the path and query as they
    arrived, so signatures hold behind a proxy that strips a path prefix.
    """
    token = request.app[settings_key].twilio_auth_token
    if token is None:
        log.warning("twilio.refused", reason="TWILIO_AUTH_TOKEN is not set")
        raise web.HTTPForbidden(text="Twilio webhooks are disabled: TWILIO_AUTH_TOKEN is unset\n")
    form = {key: value for key, value in (await request.post()).items() if isinstance(value, str)}
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


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=message + "\n")


def _call_sid(form: dict[str, str]) -> str:
    try:
        return tv.call_sid(form)
    except ValueError as exc:
        raise _bad_request(str(exc)) from exc


async def incoming_call(request: web.Request) -> web.Response:
    """A new call: the IVR menu in the caller's language (nothing is stored yet)."""
    form = await verified_form(request)
    _call_sid(form)
    document = request.app[routing_key].active.document
    language = document.ivr_language(tv.customer_key(form.get("From", "")))
    return twiml(
        tv.render_gather(
            prompt=document.ivr_prompt(language), language=language, base=base_url(request)
        )
    )


async def route_call(request: web.Request) -> web.Response:
    """The IVR answer: decide, dial the destination, record the interaction."""
    started = time.perf_counter()
    form = await verified_form(request)
    sid = _call_sid(form)
    app = request.app
    store, step = app[store_key], request.raw_path
    # No look-up first: a retry loses on the unique provider id and gets the first answer.
    now = app[clock_key]()
    active = app[routing_key].active
    document = active.document
    contact = tv.parse_gather(form, received_at=now)
    contact = replace(contact, language=document.ivr_language(contact.customer_key))
    classification = categorize(contact, document, active.classifier)
    decision = decide(contact, classification, document, now, version=active.version)
    address = document.address(decision.destination, Channel.PHONE)
    base = base_url(request)
    if address is None:  # phone not routed to this destination at all: take a message
        language = contact.language or "en-US"
        body = tv.render_voicemail(
            prompt=document.voicemail_prompt(language),
            language=language,
            action=tv.action_url(base, tv.RECORDED_PATH, destination=decision.destination),
        )
    else:
        body = tv.render_dial(
            address=address,
            action=tv.action_url(
                base, tv.DIAL_STATUS_PATH, attempt=1, destination=decision.destination
            ),
        )
    fields: dict[str, Any] = {
        "channel": _PHONE,
        "provider_id": sid,
        "category": decision.category.value,
        "category_source": decision.category_source.value,
        "rule": decision.rule,
        "side": decision.side.value,
        "destination": decision.destination,
        "reason": decision.reason.value,
        "version": decision.version,
        "language": contact.language,
    }
    secret_hash = customer_hash(app[customer_secret_key], contact.customer_key)
    recorded, fresh = True, True
    try:
        body, fresh = await record_routed_contact(
            store,
            contact,
            decision,
            customer_hash=secret_hash,
            reply=Reply(sid, step, body),
            now=now,
        )
    except DatabaseUnavailable as exc:
        recorded = False
        app[metrics_key].contacts_unrecorded.labels(_PHONE).inc()
        # everything needed to insert the row later, by hand or by a replay script
        log.error(
            "contact.unrecorded",
            **fields,
            customer_hash=secret_hash,
            bucket=stored_bucket(decision.bucket),
            confidence=decision.confidence,
            received_at=now.isoformat(),
            step=step,
            twiml=body,
            error=str(exc),
        )
    if not fresh:  # a retry: answered as the first time, already counted and logged
        return twiml(body)
    latency = time.perf_counter() - started
    app[metrics_key].decision_seconds.labels(_PHONE).observe(latency)
    app[metrics_key].contacts_routed.labels(
        _PHONE, fields["category"], fields["side"], fields["destination"], fields["reason"]
    ).inc()
    log.info("contact.routed", **fields, recorded=recorded, latency_ms=round(latency * 1000, 2))
    return twiml(body)


async def dial_finished(request: web.Request) -> web.Response:
    """The <Dial> outcome: hang up when answered, else fallback once, then voicemail."""
    form = await verified_form(request)
    sid = _call_sid(form)
    app = request.app
    store, step = app[store_key], request.raw_path
    try:
        status = tv.dial_status(form)
    except ValueError as exc:
        raise _bad_request(str(exc)) from exc
    attempt = request.query.get("attempt", "1")
    if attempt not in ("1", "2"):
        raise _bad_request(f"attempt {attempt!r} is not 1 or 2")
    destination = request.query.get("destination", "")
    status_field = "dial_status" if attempt == "1" else "fallback_status"
    now = app[clock_key]()
    document = app[routing_key].active.document
    base = base_url(request)
    changes: dict[str, Any] = {status_field: status}

    fallback = unanswered_fallback(destination, document, now) if attempt == "1" else None
    fallback_address = document.address(fallback, Channel.PHONE) if fallback else None
    if status in tv.ANSWERED:
        body = tv.render_hangup()
        changes["outcome"] = "answered"
    elif fallback is not None and fallback_address is not None:
        body = tv.render_dial(
            address=fallback_address,
            action=tv.action_url(
                base, tv.DIAL_STATUS_PATH, attempt=2, destination=fallback, origin=destination
            ),
        )
        changes.update(
            delivery_failed=True, destination=fallback, reason="unanswered", outcome="fallback"
        )
        log.info("call.fallback", call_sid=sid, failed=destination, to=fallback, status=status)
    else:
        language = document.ivr_language(tv.customer_key(form.get("From", "")))
        body = tv.render_voicemail(
            prompt=document.voicemail_prompt(language),
            language=language,
            # the voicemail is the decided destination's, even after its fallback failed too
            action=tv.action_url(
                base, tv.RECORDED_PATH, destination=request.query.get("origin", destination)
            ),
        )
        changes["outcome"] = "voicemail_offered"
        if attempt == "1":
            changes["delivery_failed"] = True
    try:
        answer = await record_call_progress(
            store,
            channel=_PHONE,
            provider_id=sid,
            changes=changes,
            reply=Reply(sid, step, body),
            now=now,
        )
    except DatabaseUnavailable as exc:
        log.error("call.progress_unrecorded", call_sid=sid, step=step, **changes, error=str(exc))
        answer = body
    return twiml(answer or body)


async def voicemail_recorded(request: web.Request) -> web.Response:
    """The <Record> outcome: keep the recording's URL with the interaction, email the
    voicemail to the destination through the outbox, say goodbye."""
    form = await verified_form(request)
    sid = _call_sid(form)
    app = request.app
    store, step = app[store_key], request.raw_path
    document = app[routing_key].active.document
    now = app[clock_key]()
    caller = tv.customer_key(form.get("From", ""))
    language = document.ivr_language(caller)
    body = tv.render_goodbye(message=document.goodbye(language), language=language)
    recording = form.get("RecordingUrl", "").strip() or None
    changes: dict[str, Any] = {
        "recording_url": recording,
        "outcome": "voicemail" if recording else "abandoned",
    }
    destination = request.query.get("destination", "")
    forwards: list[dict[str, Any]] = []
    if recording and destination in document.destinations:
        duration = form.get("RecordingDuration", "").strip()
        message = voicemail_message(
            to=document.address(destination, Channel.EMAIL) or "",
            destination=destination,
            caller_hint=caller or "number withheld",
            recording_url=recording,
            duration_seconds=int(duration) if duration.isdigit() else None,
            call_sid=sid,
        )
        forwards = voicemail_forward(destination, document, message, now)
    try:
        answer = await record_call_progress(
            store,
            channel=_PHONE,
            provider_id=sid,
            changes=changes,
            reply=Reply(sid, step, body),
            now=now,
            forwards=forwards,
        )
    except DatabaseUnavailable as exc:
        log.error("call.voicemail_unrecorded", call_sid=sid, **changes, error=str(exc))
        answer = body
    if forwards:
        app[outbox_wake_key].set()
    log.info("call.voicemail", call_sid=sid, recorded=recording is not None)
    return twiml(answer or body)


async def call_status(request: web.Request) -> web.Response:
    """Twilio's status callback: the call's final status and duration. A call we never
    routed (the caller hung up in the IVR menu) is recorded here, as abandoned."""
    form = await verified_form(request)
    sid = _call_sid(form)
    app = request.app
    now = app[clock_key]()
    changes: dict[str, Any] = {"call_status": form.get("CallStatus", "").strip() or None}
    duration = form.get("CallDuration", "").strip()
    if duration:
        if not duration.isdigit():
            raise _bad_request(f"CallDuration {duration!r} is not a number of seconds")
        changes["duration_seconds"] = int(duration)
    active = app[routing_key].active
    key = tv.customer_key(form.get("From", ""))
    abandoned = abandoned_call_row(
        provider_id=sid,
        customer_hash=customer_hash(app[customer_secret_key], key),
        customer_key=key,
        language=active.document.ivr_language(key),
        version=active.version,
        started_at=now - timedelta(seconds=changes.get("duration_seconds", 0)),
        now=now,
    )
    body = tv.render_empty()
    try:
        hung_up = await record_call_end(
            app[store_key],
            provider_id=sid,
            changes=changes,
            abandoned=abandoned,
            reply=Reply(sid, request.raw_path, body),
            now=now,
        )
    except DatabaseUnavailable as exc:
        # Twilio retries status callbacks only on some failures; ask it to, and log
        log.error("call.status_unrecorded", call_sid=sid, **changes, error=str(exc))
        raise web.HTTPServiceUnavailable(text="database unavailable, retry later\n") from exc
    if hung_up:
        log.info("call.abandoned", call_sid=sid, version=active.version, **changes)
    return twiml(body)


def add_routes(app: web.Application) -> None:
    app.router.add_post(tv.VOICE_PATH, incoming_call)
    app.router.add_post(tv.ROUTE_PATH, route_call)
    app.router.add_post(tv.DIAL_STATUS_PATH, dial_finished)
    app.router.add_post(tv.RECORDED_PATH, voicemail_recorded)
    app.router.add_post(tv.STATUS_PATH, call_status)
