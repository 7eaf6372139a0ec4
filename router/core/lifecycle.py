"""The states an interaction and its forwards go through, and the moves allowed between them.

Everything that says which outcome may follow which lives here, as data (one table per
state machine, in the way h11 keeps its protocol states); the store turns a table into the
``WHERE`` clause of every update, so an illegal move changes nothing instead of overwriting a
later state (a late retry never undoes a delivery). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Outcome(StrEnum):
    """Where an interaction stands (``interactions.outcome``)."""

    ROUTED = "routed"  # a call: dialled, or offered voicemail, by /route
    QUEUED = "queued"  # an email or chat message: its forward waits in the outbox
    UNDELIVERABLE = "undeliverable"  # its destination has no address on its channel
    ANSWERED = "answered"  # a call: the dialled destination took it
    FALLBACK = "fallback"  # the first destination failed; now with its fallback
    VOICEMAIL_OFFERED = "voicemail_offered"  # nobody answered: the caller may leave a message
    VOICEMAIL = "voicemail"  # the caller left one (emailed to the destination)
    ABANDONED = "abandoned"  # the caller hung up (in the menu, or before the beep)
    DELIVERED = "delivered"  # the forward (email, chat hand-off, voicemail) arrived
    FAILED = "failed"  # every attempt, the fallback's too, failed


class ForwardStatus(StrEnum):
    """Where one outbox row stands (``outbox.status``)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


_O = Outcome
#: outcome → the outcomes it may become
OUTCOME_MOVES: Mapping[Outcome, frozenset[Outcome]] = {
    _O.ROUTED: frozenset(
        {_O.ANSWERED, _O.FALLBACK, _O.VOICEMAIL_OFFERED, _O.VOICEMAIL, _O.ABANDONED}
    ),
    _O.FALLBACK: frozenset({_O.ANSWERED, _O.VOICEMAIL_OFFERED, _O.DELIVERED, _O.FAILED}),
    _O.VOICEMAIL_OFFERED: frozenset({_O.VOICEMAIL, _O.ABANDONED}),
    # a voicemail is itself forwarded by email; so are email and chat messages
    _O.VOICEMAIL: frozenset({_O.DELIVERED, _O.FALLBACK, _O.FAILED}),
    _O.QUEUED: frozenset({_O.DELIVERED, _O.FALLBACK, _O.FAILED}),
    # an operator's `outbox retry` sends a failed forward again
    _O.FAILED: frozenset({_O.DELIVERED, _O.FALLBACK, _O.FAILED}),
    _O.UNDELIVERABLE: frozenset(),
    _O.ANSWERED: frozenset(),
    _O.ABANDONED: frozenset(),
    _O.DELIVERED: frozenset(),
}

_F = ForwardStatus
#: forward status → the statuses it may become (pending → pending is a retry's attempt)
FORWARD_MOVES: Mapping[ForwardStatus, frozenset[ForwardStatus]] = {
    _F.PENDING: frozenset({_F.PENDING, _F.DELIVERED, _F.FAILED}),
    _F.FAILED: frozenset({_F.PENDING}),  # `switchboard outbox retry`
    _F.DELIVERED: frozenset(),
}


class IllegalMove(ValueError):
    """A state change its table does not allow."""


def outcomes_before(target: Outcome) -> frozenset[Outcome]:
    """Every outcome from which *target* may be reached."""
    return frozenset(state for state, moves in OUTCOME_MOVES.items() if target in moves)


def statuses_before(target: ForwardStatus) -> frozenset[ForwardStatus]:
    """Every forward status from which *target* may be reached."""
    return frozenset(state for state, moves in FORWARD_MOVES.items() if target in moves)


def check_outcome(current: Outcome, target: Outcome) -> None:
    if target not in OUTCOME_MOVES[current]:
        raise IllegalMove(f"an interaction that is {current} cannot become {target}")


def check_forward(current: ForwardStatus, target: ForwardStatus) -> None:
    if target not in FORWARD_MOVES[current]:
        raise IllegalMove(f"a forward that is {current} cannot become {target}")
