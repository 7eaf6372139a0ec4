"""The state tables of interactions and forwards (router/core/lifecycle.py), and the call
steps after a dial (router/core/calls.py), on plain values."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest

from router.core.calls import CallProgress, DialFallback, Hangup, TakeVoicemail, after_dial
from router.core.contact import Reason
from router.core.document import shipped_document
from router.core.lifecycle import (
    FORWARD_MOVES,
    OUTCOME_MOVES,
    ForwardStatus,
    IllegalMove,
    Outcome,
    check_forward,
    check_outcome,
    outcomes_before,
    statuses_before,
)

NOW = datetime(2026, 11, 30, 8, 30, tzinfo=UTC)  # a Monday, 09:30 in Prague
NIGHT = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)  # the hotline is closed


def test_every_state_has_its_row_and_moves_only_to_known_states() -> None:
    assert set(OUTCOME_MOVES) == set(Outcome)
    assert set(FORWARD_MOVES) == set(ForwardStatus)
    for moves in OUTCOME_MOVES.values():
        assert moves <= set(Outcome)


@pytest.mark.parametrize("final", [Outcome.ANSWERED, Outcome.DELIVERED, Outcome.UNDELIVERABLE])
def test_final_outcomes_never_change(final: Outcome) -> None:
    for target in Outcome:
        with pytest.raises(IllegalMove):
            check_outcome(final, target)


def test_a_delivered_forward_is_never_undone() -> None:
    for target in ForwardStatus:
        with pytest.raises(IllegalMove):
            check_forward(ForwardStatus.DELIVERED, target)
    assert statuses_before(ForwardStatus.DELIVERED) == {ForwardStatus.PENDING}
    check_forward(ForwardStatus.FAILED, ForwardStatus.PENDING)  # an operator's retry


@pytest.mark.parametrize(
    ("path"),
    [
        # a call answered at once; by the fallback; a voicemail emailed; an IVR hang-up
        [Outcome.ROUTED, Outcome.ANSWERED],
        [Outcome.ROUTED, Outcome.FALLBACK, Outcome.ANSWERED],
        [
            Outcome.ROUTED,
            Outcome.FALLBACK,
            Outcome.VOICEMAIL_OFFERED,
            Outcome.VOICEMAIL,
            Outcome.DELIVERED,
        ],
        [Outcome.ROUTED, Outcome.VOICEMAIL_OFFERED, Outcome.ABANDONED],
        # an email or chat forward: delivered, redirected, failed and retried by hand
        [Outcome.QUEUED, Outcome.DELIVERED],
        [Outcome.QUEUED, Outcome.FALLBACK, Outcome.FAILED, Outcome.DELIVERED],
    ],
)
def test_the_paths_contacts_take_are_allowed(path: list[Outcome]) -> None:
    for current, target in pairwise(path):
        check_outcome(current, target)
        assert current in outcomes_before(target)


def test_a_late_callback_cannot_reopen_an_answered_call() -> None:
    with pytest.raises(IllegalMove, match="answered cannot become voicemail_offered"):
        check_outcome(Outcome.ANSWERED, Outcome.VOICEMAIL_OFFERED)


# -- after a <Dial> -------------------------------------------------------------------------


def dialled(**overrides: object) -> tuple[object, CallProgress]:
    arguments: dict[str, object] = {
        "answered": False,
        "status": "no-answer",
        "attempt": 1,
        "destination": "hotline",
        "origin": None,
        "language": "cs-CZ",
        "document": shipped_document(),
        "now": NOW,
    }
    arguments.update(overrides)
    return after_dial(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize("attempt", [1, 2])
def test_an_answered_dial_hangs_up(attempt: int) -> None:
    step, progress = dialled(answered=True, status="completed", attempt=attempt)
    assert step == Hangup()
    assert progress.outcome is Outcome.ANSWERED
    status_field = "dial_status" if attempt == 1 else "fallback_status"
    assert progress.changes() == {"outcome": "answered", status_field: "completed"}


@pytest.mark.parametrize("status", ["busy", "no-answer", "failed", "canceled"])
def test_an_unanswered_first_dial_goes_to_the_open_fallback_once(status: str) -> None:
    step, progress = dialled(status=status)
    assert step == DialFallback("partner", "+420800100200", origin="hotline")
    assert progress == CallProgress(
        outcome=Outcome.FALLBACK,
        dial_status=status,
        destination="partner",
        reason=Reason.UNANSWERED,
        delivery_failed=True,
        fallback_dialled_at=NOW,  # the fallback's time to answer runs from now (sla)
    )


def test_an_unanswered_fallback_takes_a_voicemail_for_the_first_destination() -> None:
    step, progress = dialled(attempt=2, destination="partner", origin="hotline")
    assert step == TakeVoicemail("hotline", "cs-CZ")
    assert progress.changes() == {"outcome": "voicemail_offered", "fallback_status": "no-answer"}


def test_without_an_open_fallback_the_caller_leaves_a_voicemail() -> None:
    step, progress = dialled(destination="partner", now=NIGHT)  # the hotline is closed
    assert step == TakeVoicemail("partner", "cs-CZ")
    assert progress.changes() == {
        "outcome": "voicemail_offered",
        "dial_status": "no-answer",
        "delivery_failed": True,
    }
