"""Calls after routing: dial outcomes, voicemail, the final status (or an IVR hang-up).

Each step is decided by the pure core (:mod:`router.core.calls`), rendered by the handler's
*render* callback (TwiML lives in ``integrations/``) and recorded in one unit of work with
the answer given, so a repeated request to the same step gets the same answer and records
nothing twice. Moves between outcomes follow :mod:`router.core.lifecycle`; one it does not
allow (a callback arriving out of order) leaves the outcome as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from router.core.calls import CallProgress, CallStep, DialFallback, after_dial, time_to_answer
from router.core.contact import Category, CategorySource, Channel, Reason, Side
from router.core.decide import bucket, stored_bucket
from router.core.document import RoutingDocument
from router.core.lifecycle import OUTCOME_MOVES, Outcome
from router.service.contacts import customer_hash, target
from router.service.ports import ContactUnitOfWork, DatabaseUnavailable
from router.service.recording import recorded
from router.service.records import (
    AttemptKind,
    NewAttempt,
    NewForward,
    NewInteraction,
    Reply,
    StoredContact,
    new_forward,
)
from router.service.routing import ActiveRouting

log = structlog.get_logger(__name__)

_PHONE = Channel.PHONE.value


async def call_dialled(
    uow: ContactUnitOfWork,
    routing: ActiveRouting,
    now: datetime,
    *,
    call_sid: str,
    step: str,
    caller: str,
    status: str,
    answered: bool,
    attempt: int,
    destination: str,
    origin: str | None,
    render: Callable[[CallStep, RoutingDocument], str],
    talk_seconds: int | None = None,
) -> str:
    """A ``<Dial>`` ended with *status*: hang up, dial the fallback once, or take a
    voicemail. Returns the answer; it is given even when the database is down. An answered
    dial's *talk_seconds* (the time connected) is kept as the call's handle time, and with
    *now* (when Twilio reported it) and the time that dial was given, its time to answer."""
    document = routing.document
    next_step, progress = after_dial(
        answered=answered,
        status=status,
        attempt=attempt,
        destination=destination,
        origin=origin,
        language=document.ivr_language(caller),
        document=document,
        now=now,
    )
    if answered and talk_seconds is not None:
        progress = replace(progress, handle_seconds=talk_seconds)
    body = render(next_step, document)
    dialled = NewAttempt(
        at=now,
        kind=AttemptKind.DIAL,
        number=attempt,
        destination=destination,
        address=document.address(destination, Channel.PHONE)
        if destination in document.destinations
        else None,
        status=status,
        seconds=talk_seconds if answered else None,
    )
    if isinstance(next_step, DialFallback):
        log.info(
            "call.fallback",
            call_sid=call_sid,
            failed=destination,
            to=next_step.destination,
            status=status,
        )
    timed = None
    if answered and talk_seconds is not None:

        def timed(stored: StoredContact, progress: CallProgress) -> CallProgress:
            seconds = time_to_answer(
                dialled_at=stored.dialled_at(attempt), reported_at=now, talk_seconds=talk_seconds
            )
            return replace(progress, answer_seconds=seconds)

    try:
        return await _progress(
            uow, call_sid, step, progress, body, now, attempts=[dialled], timed=timed
        )
    except DatabaseUnavailable as exc:
        log.error(
            "call.progress_unrecorded",
            call_sid=call_sid,
            step=step,
            **progress.changes(),
            error=str(exc),
        )
        return body


async def voicemail_left(
    uow: ContactUnitOfWork,
    routing: ActiveRouting,
    now: datetime,
    *,
    call_sid: str,
    step: str,
    destination: str,
    recording_url: str | None,
    compose: Callable[[str], bytes],
    answer: str,
    recording_seconds: int | None = None,
) -> tuple[str, bool]:
    """The caller's message was recorded (or they hung up before it): keep the recording's
    URL with the call and email the voicemail, composed by *compose* for the destination's
    mailbox address, through the outbox. Returns the answer and whether a forward was
    queued."""
    document = routing.document
    progress = CallProgress(
        outcome=Outcome.VOICEMAIL if recording_url else Outcome.ABANDONED,
        recording_url=recording_url,
    )
    forwards: list[NewForward] = []
    mailbox = (
        target(document, destination, Channel.EMAIL)
        if recording_url and destination in document.destinations
        else None
    )
    if mailbox is not None:
        meta = {"generated": True, "reason": "unanswered", "sender": "switchboard@localhost"}
        forwards.append(new_forward(Channel.EMAIL, mailbox, compose(mailbox.address), meta, now))
    left = NewAttempt(
        at=now,
        kind=AttemptKind.VOICEMAIL,
        number=1,
        destination=destination,
        status="recorded" if recording_url else "hung_up",
        seconds=recording_seconds,
        url=recording_url,
    )
    try:
        body = await _progress(
            uow, call_sid, step, progress, answer, now, forwards, attempts=[left]
        )
    except DatabaseUnavailable as exc:
        log.error(
            "call.voicemail_unrecorded", call_sid=call_sid, **progress.changes(), error=str(exc)
        )
        return answer, False
    log.info("call.voicemail", call_sid=call_sid, recorded=recording_url is not None)
    return body, bool(forwards)


async def call_recorded(
    uow: ContactUnitOfWork,
    now: datetime,
    *,
    call_sid: str,
    recording_ref: str,
    url: str | None,
    status: str,
    seconds: int | None,
    destination: str,
    attempt: int,
    answer: str,
) -> bool:
    """A recorded dial's recording is ready: keep its link with the call, as an attempt of
    kind recording (a call may also have a voicemail, kept on the interaction). Once per
    *recording_ref* (the provider's recording id), however often it is posted. False when
    no call *call_sid* was recorded (its route was never stored: logged, nothing kept).
    Raises :class:`DatabaseUnavailable` (the provider retries)."""
    ready = NewAttempt(
        at=now,
        kind=AttemptKind.RECORDING,
        number=attempt,
        destination=destination,
        status=status,
        seconds=seconds,
        url=url,
        provider_ref=recording_ref,
    )

    async def record(uow: ContactUnitOfWork) -> bool:
        current = await uow.contact(_PHONE, call_sid)
        if current is None:
            return False
        if await uow.add_reply(Reply(call_sid, f"recording {recording_ref}", answer, now)):
            await uow.add_attempt(current.interaction_id, ready)
        return True

    known = await recorded(uow, record)
    if known:
        log.info("call.recorded", call_sid=call_sid, recording=recording_ref, status=status)
    else:
        # Twilio retries a callback that is not answered 2xx, and a retry would find no call
        # either: answered 200, logged with what finds the recording at Twilio
        log.warning("call.recording_unknown", call_sid=call_sid, recording=recording_ref)
    return known


async def call_ended(
    uow: ContactUnitOfWork,
    routing: ActiveRouting,
    now: datetime,
    *,
    call_sid: str,
    step: str,
    caller: str,
    secret: bytes,
    call_status: str | None,
    duration_seconds: int | None,
    answer: str,
) -> bool:
    """Put the call's final status on its interaction. A call without one (the caller hung
    up in the IVR, before choosing) gets one now, abandoned, so every call is counted. True
    when it was abandoned. Raises :class:`DatabaseUnavailable` (the provider retries)."""
    progress = CallProgress(call_status=call_status, duration_seconds=duration_seconds)

    async def record(uow: ContactUnitOfWork) -> bool:
        current = await uow.contact(_PHONE, call_sid)
        if current is not None:
            await uow.update_interaction(current.interaction_id, progress, now)
            return False
        started = now - timedelta(seconds=duration_seconds or 0)
        row = abandoned_call(routing, call_sid, caller, customer_hash(secret, caller), started, now)
        interaction_id = await uow.add_interaction(row)
        if interaction_id is None:  # a retry of this callback inserted it first
            again = await uow.contact(_PHONE, call_sid)
            assert again is not None
            interaction_id = again.interaction_id
        await uow.update_interaction(interaction_id, progress, now)
        await uow.add_reply(Reply(call_sid, step, answer, now))
        return True

    if not await recorded(uow, record):
        return False
    log.info("call.abandoned", call_sid=call_sid, version=routing.version, **progress.changes())
    return True


def abandoned_call(
    routing: ActiveRouting,
    call_sid: str,
    caller: str,
    key_hash: str,
    started_at: datetime,
    now: datetime,
) -> NewInteraction:
    """The interaction of a call whose caller hung up in the IVR menu: no category, no
    destination; the status callback is the first we hear of it after the menu."""
    return NewInteraction(
        channel=Channel.PHONE,
        provider_id=call_sid,
        customer_hash=key_hash,
        category=Category.UNKNOWN,
        category_source=CategorySource.HANGUP,
        rule=None,
        confidence=None,
        side=Side.BASELINE,
        destination="",
        first_destination="",
        reason=Reason.ABANDONED,
        version=routing.version,
        bucket=stored_bucket(bucket(caller)),
        language=routing.document.ivr_language(caller),
        received_at=started_at,
        decided_at=now,
        updated_at=now,
        outcome=Outcome.ABANDONED,
    )


async def _progress(
    uow: ContactUnitOfWork,
    call_sid: str,
    step: str,
    progress: CallProgress,
    body: str,
    now: datetime,
    forwards: Sequence[NewForward] = (),
    *,
    attempts: Sequence[NewAttempt] = (),
    timed: Callable[[StoredContact, CallProgress], CallProgress] | None = None,
) -> str:
    """Record one step of a call with its answer and the attempts it logs; the earlier
    answer for a repeated step. *timed* completes the progress with what needs the call as
    recorded (its dial times)."""

    async def record(uow: ContactUnitOfWork) -> str:
        if not await uow.add_reply(Reply(call_sid, step, body, now)):
            earlier = await uow.reply(call_sid, step)
            return earlier if earlier is not None else body
        current = await uow.contact(_PHONE, call_sid)
        if current is None:
            log.warning("call.unknown", provider_id=call_sid, step=step)
            return body
        change = progress if timed is None else timed(current, progress)
        moving_from = current.outcome
        if (
            change.outcome is not None
            and moving_from is not None
            and change.outcome not in OUTCOME_MOVES[moving_from]
        ):
            log.warning(
                "call.out_of_order",
                call_sid=call_sid,
                step=step,
                outcome=moving_from.value,
                ignored=change.outcome.value,
            )
            change = replace(change, outcome=None)
        await uow.update_interaction(current.interaction_id, change, now)
        for forward in forwards:
            await uow.add_forward(current.interaction_id, forward)
        for attempt in attempts:
            await uow.add_attempt(current.interaction_id, attempt)
        return body

    return await recorded(uow, record)
