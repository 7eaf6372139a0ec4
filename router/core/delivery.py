"""How a forward (email to a mailbox, chat hand-off) is retried and redirected: pure rules.

Default schedule (SPEC §6): first retry after about 1 s, doubling with jitter, capped at
60 s; after 8 failed attempts, or at once on a permanent failure (SMTP 5xx; HTTP 4xx other
than 408 and 429), the forward goes to the fallback destination on the same schedule, and
only when that fails too is it marked failed. The clock and the randomness are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from router.core.lifecycle import ForwardStatus


class Stage(StrEnum):
    PRIMARY = "primary"
    FALLBACK = "fallback"


#: A forward's status; its allowed moves are in :mod:`router.core.lifecycle`.
Status = ForwardStatus


@dataclass(frozen=True, slots=True)
class Schedule:
    base: timedelta = timedelta(seconds=1)
    cap: timedelta = timedelta(seconds=60)
    max_attempts: int = 8

    def delay(self, attempts: int, jitter: float) -> timedelta:
        """Wait before the next try after *attempts* failures; *jitter* in [0, 1) spreads
        retries of many rows over ±25 % so they do not hammer a recovering server at once."""
        raw = self.base * (1 << min(max(attempts - 1, 0), 30))
        capped = min(raw, self.cap)
        return capped * (0.75 + 0.5 * jitter)


#: The share of a claim's lease one send may take. A claimed forward is this worker's until
#: the lease runs out; another replica may take it after that, so a send still running then
#: could be delivered twice. What the lease leaves (a quarter, 30 s of the default 120 s)
#: covers recording the outcome (the database's own timeout is 8 s by default).
SEND_SHARE_OF_LEASE = 0.75


def send_deadline(lease: timedelta) -> timedelta:
    """How long one send of a forward claimed for *lease* may take, all of it together."""
    return lease * SEND_SHARE_OF_LEASE


@dataclass(frozen=True, slots=True)
class Failure:
    message: str
    permanent: bool


@dataclass(frozen=True, slots=True)
class Next:
    """What happens to a row after a failed attempt."""

    status: Status
    stage: Stage
    attempts: int
    next_attempt_at: datetime | None
    to_fallback: bool  # the destination changes to the fallback now


def after_failure(
    *,
    stage: Stage,
    attempts: int,
    has_fallback: bool,
    failure: Failure,
    schedule: Schedule,
    now: datetime,
    jitter: float,
) -> Next:
    """The row's next state after its attempt number *attempts* + 1 failed."""
    tried = attempts + 1
    exhausted = failure.permanent or tried >= schedule.max_attempts
    if not exhausted:
        return Next(
            Status.PENDING, stage, tried, now + schedule.delay(tried, jitter), to_fallback=False
        )
    if stage is Stage.PRIMARY and has_fallback:
        return Next(Status.PENDING, Stage.FALLBACK, 0, now, to_fallback=True)
    return Next(Status.FAILED, stage, tried, None, to_fallback=False)
