"""Twilio Programmable Voice: request signatures, webhook forms, and TwiML answers.

Everything Twilio-specific about calls lives here (form field names, TwiML verbs, the
signature scheme); the core only ever sees a :class:`~router.contact.Contact`. Field names
follow Twilio's "TwiML Voice: <Gather>", "<Dial>" and "<Record>" references and the
"Webhooks security" page (X-Twilio-Signature over the full URL plus sorted POST params).
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from urllib.parse import urlencode

from multidict import MultiMapping
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Gather, VoiceResponse

from router.core.calls import CallStep, DialFallback, Hangup, TakeVoicemail
from router.core.contact import Channel, Contact, phone_customer_key
from router.core.decide import Decision
from router.core.document import RoutingDocument

SIGNATURE_HEADER = "X-Twilio-Signature"
VOICE_PATH = "/webhooks/twilio/voice"
ROUTE_PATH = f"{VOICE_PATH}/route"
DIAL_STATUS_PATH = f"{VOICE_PATH}/dial-status"
RECORDED_PATH = f"{VOICE_PATH}/recorded"
RECORDING_PATH = f"{VOICE_PATH}/recording"
STATUS_PATH = f"{VOICE_PATH}/status"

#: DialCallStatus values after which the caller was connected (Twilio's <Dial> action docs).
ANSWERED = frozenset({"completed", "answered"})
#: Values that mean the destination did not take the call: fallback, then voicemail.
UNANSWERED = frozenset({"busy", "no-answer", "failed", "canceled"})

_DIAL_TIMEOUT_SECONDS = 20
_VOICEMAIL_MAX_SECONDS = 180


def signature_valid(
    auth_token: str, url: str, form: Mapping[str, str] | MultiMapping[str], signature: str
) -> bool:
    """True when *signature* is Twilio's HMAC of *url* and *form* under *auth_token*.

    *form* keeps every value of a repeated name: Twilio signs them all (its RequestValidator
    sorts the names and appends each value), so a form reduced to one value per name would
    refuse a genuine request."""
    if not signature:
        return False
    validator = RequestValidator(auth_token)
    params = form if isinstance(form, MultiMapping) else dict(form)
    try:
        # The URL as called is the one Twilio signed: one HMAC. Only a mismatch pays for the
        # library's full check, which also tries the URL with its port added or removed.
        expected = str(validator.compute_signature(url, params)).encode()
        if hmac.compare_digest(expected, signature.encode("utf-8")):
            return True
        return bool(validator.validate(url, params, signature))
    except ValueError:
        # A port that is not a number (a Host header made up by a client) or text that is
        # not Unicode (undecodable bytes in the path or header): nothing Twilio signed.
        return False


def sign(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """The X-Twilio-Signature Twilio would send (for simulated calls and tests)."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(form)))


def caller(form: Mapping[str, str]) -> str:
    """The caller's customer key from the form's ``From`` ("" when withheld)."""
    return phone_customer_key(form.get("From", ""))


def call_sid(form: Mapping[str, str]) -> str:
    """The form's CallSid; ValueError when missing, or when it holds a control character:
    Twilio's are ``CA`` and 32 hex digits, and the SID ends up in email headers (a voicemail's
    ``X-Switchboard-Call``), where a line break cannot go."""
    sid = form.get("CallSid", "").strip()
    if not sid:
        raise ValueError("CallSid is missing")
    if not plain(sid):
        raise ValueError(f"CallSid {sid[:40]!r} is not one Twilio sends")
    return sid


def plain(value: str) -> bool:
    """True when *value* has no control characters (line breaks, NUL, escape, …)."""
    return value.isprintable()


def parse_gather(form: Mapping[str, str], *, received_at: datetime) -> Contact:
    """The contact behind a <Gather> result (or the redirect after no input); ValueError
    when the form names no call."""
    digits = form.get("Digits", "").strip() or None
    return Contact(
        channel=Channel.PHONE,
        provider_id=call_sid(form),
        customer_key=caller(form),
        received_at=received_at,
        digits=digits[:1] if digits else None,
        text=form.get("SpeechResult", "").strip(),
    )


#: The longest call Twilio connects is 24 hours ("Call resource": TimeLimit); a duration
#: beyond a day is not one Twilio sends.
_MAX_CALL_SECONDS = 86_400


def seconds(form: Mapping[str, str], name: str) -> int | None:
    """A duration field (CallDuration, RecordingDuration) in whole seconds, None when
    absent; ValueError for anything Twilio does not send: not ASCII digits ("²" passes
    ``str.isdigit``, not ``int``), or longer than a day."""
    value = form.get(name, "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or int(value[:12]) > _MAX_CALL_SECONDS:
        raise ValueError(f"{name} {value[:40]!r} is not a number of seconds Twilio sends")
    return int(value)


def dial_status(form: Mapping[str, str]) -> str:
    status = form.get("DialCallStatus", "").strip().lower()
    if status not in ANSWERED | UNANSWERED:
        raise ValueError(f"DialCallStatus {status!r} is not one Twilio sends")
    return status


def dial_duration(form: Mapping[str, str]) -> int | None:
    """``DialCallDuration``: seconds the caller was connected to the dialled party (Twilio's
    <Dial> action parameters). None when absent or not a whole number: the call goes on
    all the same, only its handle time is unknown."""
    value = form.get("DialCallDuration", "").strip()
    return int(value) if value.isdigit() else None


def action_url(base: str, path: str, **query: str | int) -> str:
    return f"{base}{path}" + (f"?{urlencode(query)}" if query else "")


def _xml(response: VoiceResponse) -> str:
    return str(response.to_xml())


# The renderers below are pure functions of a few strings, and a call centre dials the same
# few destinations all day: caching their TwiML saves building an XML tree per call (about a
# tenth of a routed call's CPU, measured with pyinstrument; bench/RESULTS.md).


@lru_cache(maxsize=1024)
def render_gather(*, prompt: str, language: str, base: str) -> str:
    """The IVR menu: one key or a spoken answer; no input falls through to /route."""
    response = VoiceResponse()
    gather = Gather(
        input="dtmf speech",
        num_digits=1,
        action=action_url(base, ROUTE_PATH),
        method="POST",
        language=language,
        timeout=6,
        speech_timeout="auto",
    )
    gather.say(prompt, language=language)
    response.append(gather)
    response.redirect(action_url(base, ROUTE_PATH), method="POST")
    return _xml(response)


@lru_cache(maxsize=1024)
def render_dial(*, address: str, action: str, recording_callback: str | None = None) -> str:
    """Connect the caller to a number or SIP URI; Twilio posts the outcome to *action*.
    With *recording_callback* the call is recorded from answer, each party on its own
    channel, and Twilio posts the finished recording there ("TwiML Voice: <Dial>":
    record, recordingStatusCallback, recordingStatusCallbackEvent)."""
    response = VoiceResponse()
    recording: dict[str, str] = {}
    if recording_callback is not None:
        recording = {
            "record": "record-from-answer-dual",
            "recording_status_callback": recording_callback,
            "recording_status_callback_event": "completed",
            "recording_status_callback_method": "POST",
        }
    dial = response.dial(
        action=action,
        method="POST",
        timeout=_DIAL_TIMEOUT_SECONDS,
        answer_on_bridge=True,
        **recording,
    )
    if address.lower().startswith("sip:"):
        dial.sip(address)
    else:
        dial.number(address)
    return _xml(response)


@lru_cache(maxsize=1024)
def render_voicemail(*, prompt: str, language: str, action: str) -> str:
    response = VoiceResponse()
    response.say(prompt, language=language)
    response.record(
        action=action,
        method="POST",
        max_length=_VOICEMAIL_MAX_SECONDS,
        play_beep=True,
        timeout=5,
    )
    return _xml(response)


@lru_cache(maxsize=1024)
def render_goodbye(*, message: str, language: str) -> str:
    response = VoiceResponse()
    response.say(message, language=language)
    response.hangup()
    return _xml(response)


def render_hangup() -> str:
    response = VoiceResponse()
    response.hangup()
    return _xml(response)


def render_empty() -> str:
    return _xml(VoiceResponse())


def _recording_callback(
    base: str, document: RoutingDocument, destination: str, attempt: int
) -> str | None:
    """Where Twilio posts the recording of a dial to *destination*, when it records calls."""
    team = document.destinations.get(destination)
    if team is None or not team.records_calls:
        return None
    return action_url(base, RECORDING_PATH, attempt=attempt, destination=destination)


@dataclass(frozen=True, slots=True)
class RecordingReady:
    """Twilio's recording status callback of a recorded <Dial> ("Recordings":
    RecordingStatusCallback parameters). *call_sid* is the call the caller made (the parent
    call, whose <Dial> recorded), which is the interaction's provider id."""

    call_sid: str
    recording_sid: str
    url: str | None
    status: str
    seconds: int | None


def parse_recording(form: Mapping[str, str]) -> RecordingReady:
    """The recording callback's form; ValueError when it names no call or recording."""
    sid = form.get("RecordingSid", "").strip()
    if not sid or not plain(sid):
        raise ValueError("RecordingSid is missing or not one Twilio sends")
    url = form.get("RecordingUrl", "").strip() or None
    if url is not None and not (url.startswith("https://") and plain(url)):
        raise ValueError(f"RecordingUrl {url[:60]!r} is not one Twilio sends")
    duration = None
    with contextlib.suppress(ValueError):  # only shown: a bad value is left out
        duration = seconds(form, "RecordingDuration")
    return RecordingReady(
        call_sid=call_sid(form),
        recording_sid=sid,
        url=url,
        status=form.get("RecordingStatus", "").strip().lower() or "completed",
        seconds=duration,
    )


def render_route(base: str) -> Callable[[Contact, Decision, RoutingDocument], str]:
    """The answer to /route: dial the decided destination, or take a message when it has no
    phone address. Twilio posts the dial's outcome to /dial-status (attempt 1)."""

    def render(contact: Contact, decision: Decision, document: RoutingDocument) -> str:
        address = document.address(decision.destination, Channel.PHONE)
        if address is None:
            language = contact.language or "en-US"
            return render_voicemail(
                prompt=document.voicemail_prompt(language),
                language=language,
                action=action_url(base, RECORDED_PATH, destination=decision.destination),
            )
        return render_dial(
            address=address,
            action=action_url(base, DIAL_STATUS_PATH, attempt=1, destination=decision.destination),
            recording_callback=_recording_callback(base, document, decision.destination, 1),
        )

    return render


def render_call_step(base: str) -> Callable[[CallStep, RoutingDocument], str]:
    """The answer to /dial-status: hang up, dial the fallback (attempt 2), or take a
    voicemail for the destination first decided."""

    def render(step: CallStep, document: RoutingDocument) -> str:
        match step:
            case Hangup():
                return render_hangup()
            case DialFallback(destination=fallback, address=address, origin=origin):
                return render_dial(
                    address=address,
                    action=action_url(
                        base, DIAL_STATUS_PATH, attempt=2, destination=fallback, origin=origin
                    ),
                    recording_callback=_recording_callback(base, document, fallback, 2),
                )
            case TakeVoicemail(destination=destination, language=language):
                return render_voicemail(
                    prompt=document.voicemail_prompt(language),
                    language=language,
                    action=action_url(base, RECORDED_PATH, destination=destination),
                )

    return render
