"""HTTP endpoints of the phone channel (Twilio Voice webhooks).

Each handler is: verify the signature, parse the form into core values, hand them to one
service function (which decides, renders through the TwiML renderer it is given and makes
the answer durable with the interaction), answer. If the database cannot be written, the
caller still gets the TwiML and the contact is logged in full (``contact.unrecorded``) so
it can be recorded later (SPEC §7).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import structlog
from aiohttp import web

from integrations import twilio_voice as tv
from integrations.smtp import voicemail_message
from router.service.calls import call_dialled, call_ended, call_recorded, voicemail_left
from router.service.contacts import Answer, route_contact
from router.service.ports import DatabaseUnavailable
from router.web.appkeys import (
    clock_key,
    customer_secret_key,
    metrics_key,
    routing_key,
    store_key,
)
from router.web.forwarded import database_unavailable, wake_outbox
from router.web.twilio import base_url, twiml, verified_form

log = structlog.get_logger(__name__)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=message + "\n")


def _call_sid(form: Mapping[str, str]) -> str:
    try:
        return tv.call_sid(form)
    except ValueError as exc:
        raise _bad_request(str(exc)) from exc


def _seconds(form: Mapping[str, str], name: str) -> int | None:
    try:
        return tv.seconds(form, name)
    except ValueError as exc:
        raise _bad_request(str(exc)) from exc


def _query(request: web.Request, name: str) -> str | None:
    """A query value of our own action URLs (destination, origin): 400 when it holds a control
    character, since it goes into email headers (a voicemail's) where a line break cannot."""
    value = request.query.get(name)
    if value is not None and not tv.plain(value):
        raise _bad_request(f"{name} {value[:40]!r} is not a destination name")
    return value


async def incoming_call(request: web.Request) -> web.Response:
    """A new call: the IVR menu in the caller's language (nothing is stored yet)."""
    form = await verified_form(request)
    _call_sid(form)
    document = request.app[routing_key].active.document
    language = document.ivr_language(tv.caller(form))
    return twiml(
        tv.render_gather(
            prompt=document.ivr_prompt(language), language=language, base=base_url(request)
        )
    )


async def route_call(request: web.Request) -> web.Response:
    """The IVR answer: dial the destination decided for the contact, record the interaction.

    No look-up first: a retry loses on the unique provider id and gets the first answer."""
    form = await verified_form(request)
    app = request.app
    try:
        contact = tv.parse_gather(form, received_at=app[clock_key]())
    except ValueError as exc:
        raise _bad_request(str(exc)) from exc
    routed = await route_contact(
        contact,
        app[store_key].unit_of_work(),
        app[routing_key].active,
        contact.received_at,
        secret=app[customer_secret_key],
        metrics=app[metrics_key],
        answer=Answer(request.raw_path, tv.render_route(base_url(request))),
        source="twilio",
    )
    assert routed.answer is not None
    return twiml(routed.answer)


async def dial_finished(request: web.Request) -> web.Response:
    """The <Dial> outcome: hang up when answered, else fallback once, then voicemail."""
    form = await verified_form(request)
    sid = _call_sid(form)
    try:
        status = tv.dial_status(form)
    except ValueError as exc:
        raise _bad_request(str(exc)) from exc
    attempt = request.query.get("attempt", "1")
    if attempt not in ("1", "2"):
        raise _bad_request(f"attempt {attempt!r} is not 1 or 2")
    destination, origin = _query(request, "destination"), _query(request, "origin")
    app = request.app
    body = await call_dialled(
        app[store_key].unit_of_work(),
        app[routing_key].active,
        app[clock_key](),
        call_sid=sid,
        step=request.raw_path,
        caller=tv.caller(form),
        status=status,
        answered=status in tv.ANSWERED,
        attempt=int(attempt),
        destination=destination or "",
        origin=origin,
        render=tv.render_call_step(base_url(request)),
        talk_seconds=tv.dial_duration(form),
    )
    return twiml(body)


async def voicemail_recorded(request: web.Request) -> web.Response:
    """The <Record> outcome: keep the recording's URL with the interaction, email the
    voicemail to the destination through the outbox, say goodbye."""
    form = await verified_form(request)
    sid = _call_sid(form)
    app = request.app
    active = app[routing_key].active
    caller = tv.caller(form)
    language = active.document.ivr_language(caller)
    recording = form.get("RecordingUrl", "").strip() or None
    destination = _query(request, "destination") or ""
    duration = None  # only mentioned in the voicemail email: a bad value is left out
    with contextlib.suppress(ValueError):
        duration = tv.seconds(form, "RecordingDuration")

    def compose(mailbox: str) -> bytes:
        return voicemail_message(
            to=mailbox,
            destination=destination,
            caller_hint=caller or "number withheld",
            recording_url=recording or "",
            duration_seconds=duration,
            call_sid=sid,
        )

    body, queued = await voicemail_left(
        app[store_key].unit_of_work(),
        active,
        app[clock_key](),
        call_sid=sid,
        step=request.raw_path,
        destination=destination,
        recording_url=recording,
        compose=compose,
        answer=tv.render_goodbye(message=active.document.goodbye(language), language=language),
        recording_seconds=duration,
    )
    if queued:
        wake_outbox(app, "email")
    return twiml(body)


async def recording_ready(request: web.Request) -> web.Response:
    """A recorded dial's recording is ready (destination ``record: true``): keep its link
    with the call. 200 also for a call never recorded (logged): a retry would not find it
    either; 503 while the database is down, so Twilio tries again."""
    form = await verified_form(request)
    try:
        ready = tv.parse_recording(form)
    except ValueError as exc:
        raise _bad_request(str(exc)) from exc
    attempt = request.query.get("attempt", "1")
    if attempt not in ("1", "2"):
        raise _bad_request(f"attempt {attempt!r} is not 1 or 2")
    app = request.app
    body = tv.render_empty()
    try:
        await call_recorded(
            app[store_key].unit_of_work(),
            app[clock_key](),
            call_sid=ready.call_sid,
            recording_ref=ready.recording_sid,
            url=ready.url,
            status=ready.status,
            seconds=ready.seconds,
            destination=_query(request, "destination") or "",
            attempt=int(attempt),
            answer=body,
        )
    except DatabaseUnavailable as exc:
        log.error("call.recording_unrecorded", call_sid=ready.call_sid, error=str(exc))
        raise database_unavailable() from exc
    return twiml(body)


async def call_status(request: web.Request) -> web.Response:
    """Twilio's status callback: the call's final status and duration. A call we never
    routed (the caller hung up in the IVR menu) is recorded here, as abandoned."""
    form = await verified_form(request)
    sid = _call_sid(form)
    duration = _seconds(form, "CallDuration")
    app = request.app
    body = tv.render_empty()
    try:
        await call_ended(
            app[store_key].unit_of_work(),
            app[routing_key].active,
            app[clock_key](),
            call_sid=sid,
            step=request.raw_path,
            caller=tv.caller(form),
            secret=app[customer_secret_key],
            call_status=form.get("CallStatus", "").strip() or None,
            duration_seconds=duration,
            answer=body,
        )
    except DatabaseUnavailable as exc:
        # Twilio retries status callbacks only on some failures; ask it to, and log
        log.error("call.status_unrecorded", call_sid=sid, error=str(exc))
        raise database_unavailable() from exc
    return twiml(body)


def add_routes(app: web.Application) -> None:
    app.router.add_post(tv.VOICE_PATH, incoming_call)
    app.router.add_post(tv.ROUTE_PATH, route_call)
    app.router.add_post(tv.DIAL_STATUS_PATH, dial_finished)
    app.router.add_post(tv.RECORDED_PATH, voicemail_recorded)
    app.router.add_post(tv.STATUS_PATH, call_status)
    app.router.add_post(tv.RECORDING_PATH, recording_ready)
