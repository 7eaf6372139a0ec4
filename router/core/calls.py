"""What happens to a call after its first ``<Dial>``: SPEC §3 step 5 as pure functions.

A dialled destination that does not answer hands the call to its fallback once (reason
``unanswered``); if that fails too, or there is no open fallback, the caller may leave a
voicemail for the destination first decided. No caller is dropped. The steps are values;
``integrations/twilio_voice.py`` renders them as TwiML.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime

from router.core.contact import Channel, Reason
from router.core.decide import unanswered_fallback
from router.core.document import RoutingDocument
from router.core.lifecycle import Outcome


@dataclass(frozen=True, slots=True)
class Hangup:
    """The caller was connected and the call is over."""


@dataclass(frozen=True, slots=True)
class DialFallback:
    """Dial *destination* at *address*, the fallback of *origin*, which did not answer."""

    destination: str
    address: str
    origin: str


@dataclass(frozen=True, slots=True)
class TakeVoicemail:
    """Let the caller leave a message for *destination*, in *language*."""

    destination: str
    language: str


CallStep = Hangup | DialFallback | TakeVoicemail


@dataclass(frozen=True, slots=True)
class CallProgress:
    """What a step changes on the call's interaction (None: unchanged)."""

    outcome: Outcome | None = None
    dial_status: str | None = None
    fallback_status: str | None = None
    destination: str | None = None
    reason: Reason | None = None
    delivery_failed: bool | None = None
    recording_url: str | None = None
    call_status: str | None = None
    duration_seconds: int | None = None
    handle_seconds: int | None = None  # the answered <Dial>'s talk time (staffing)
    answer_seconds: float | None = None  # the answered <Dial>'s time to answer (sla)
    fallback_dialled_at: datetime | None = None  # when the fallback <Dial> was given

    def changes(self) -> dict[str, object]:
        """Only the columns this step sets, enums as their stored text."""
        values: dict[str, object] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                values[field.name] = value.value if isinstance(value, Outcome | Reason) else value
        return values


def after_dial(
    *,
    answered: bool,
    status: str,
    attempt: int,
    destination: str,
    origin: str | None,
    language: str,
    document: RoutingDocument,
    now: datetime,
) -> tuple[CallStep, CallProgress]:
    """The next step after dial *attempt* (1: the decided destination, 2: its fallback) to
    *destination* ended with *status*; *origin* is the destination first decided."""
    first = attempt == 1
    heard = CallProgress(dial_status=status) if first else CallProgress(fallback_status=status)
    if answered:
        return Hangup(), replace(heard, outcome=Outcome.ANSWERED)
    fallback = unanswered_fallback(destination, document, now) if first else None
    address = document.address(fallback, Channel.PHONE) if fallback else None
    if fallback is not None and address is not None:
        step = DialFallback(fallback, address, origin=destination)
        progress = replace(
            heard,
            outcome=Outcome.FALLBACK,
            destination=fallback,
            reason=Reason.UNANSWERED,
            delivery_failed=True,
            fallback_dialled_at=now,  # its time to answer is measured from here
        )
        return step, progress
    # the voicemail is the decided destination's, even after its fallback failed too
    voicemail = TakeVoicemail(origin or destination, language)
    progress = replace(
        heard, outcome=Outcome.VOICEMAIL_OFFERED, delivery_failed=True if first else None
    )
    return voicemail, progress


def time_to_answer(
    *, dialled_at: datetime | None, reported_at: datetime, talk_seconds: int | None
) -> float | None:
    """Seconds from a ``<Dial>`` being given to Twilio (*dialled_at*: the answer to the
    route, or to the first dial's failure for the fallback's) to the agent answering.

    Twilio reports an answered dial once it is over, with the time connected
    (``DialCallDuration``, *talk_seconds*); what came before that, from the ``<Dial>`` to the
    report, was ringing: (*reported_at* - *dialled_at*) - *talk_seconds*. Tenths of a second,
    and never below zero: the duration is a whole number of seconds, and a call answered at
    once may come out a fraction below. None when either time is unknown.
    """
    if dialled_at is None or talk_seconds is None:
        return None
    ringing = (reported_at - dialled_at).total_seconds() - talk_seconds
    return max(0.0, round(ringing, 1))
