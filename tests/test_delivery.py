"""The retry and redirect rules of forwards, on plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core.delivery import Failure, Schedule, Stage, Status, after_failure

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SCHEDULE = Schedule()
TRANSIENT = Failure("451 try later", permanent=False)
PERMANENT = Failure("550 no such user", permanent=True)


def test_the_first_retry_comes_after_about_a_second_and_doubles() -> None:
    delays = [SCHEDULE.delay(n, 0.5) for n in range(1, 9)]
    assert delays[0] == timedelta(seconds=1)
    assert delays[1] == timedelta(seconds=2)
    assert delays[5] == timedelta(seconds=32)
    assert delays[6] == delays[7] == timedelta(seconds=60)  # capped


@given(st.integers(1, 50), st.floats(0, 0.999))
def test_jitter_stays_within_a_quarter_of_the_delay(attempts: int, jitter: float) -> None:
    plain = SCHEDULE.delay(attempts, 0.5)
    assert plain * 0.75 <= SCHEDULE.delay(attempts, jitter) <= plain * 1.25


def test_transient_failures_retry_until_the_attempts_run_out_then_fall_back() -> None:
    attempts = 0
    for _ in range(7):
        step = after_failure(
            stage=Stage.PRIMARY,
            attempts=attempts,
            has_fallback=True,
            failure=TRANSIENT,
            schedule=SCHEDULE,
            now=NOW,
            jitter=0.5,
        )
        assert (step.status, step.stage, step.to_fallback) == (Status.PENDING, Stage.PRIMARY, False)
        assert step.next_attempt_at is not None and step.next_attempt_at > NOW
        attempts = step.attempts
    eighth = after_failure(
        stage=Stage.PRIMARY,
        attempts=attempts,
        has_fallback=True,
        failure=TRANSIENT,
        schedule=SCHEDULE,
        now=NOW,
        jitter=0.5,
    )
    assert (eighth.stage, eighth.attempts, eighth.to_fallback) == (Stage.FALLBACK, 0, True)
    assert eighth.next_attempt_at == NOW


@pytest.mark.parametrize("has_fallback", [True, False])
def test_a_permanent_failure_skips_the_retries(has_fallback: bool) -> None:
    step = after_failure(
        stage=Stage.PRIMARY,
        attempts=0,
        has_fallback=has_fallback,
        failure=PERMANENT,
        schedule=SCHEDULE,
        now=NOW,
        jitter=0.5,
    )
    if has_fallback:
        assert (step.status, step.stage) == (Status.PENDING, Stage.FALLBACK)
    else:
        assert step.status is Status.FAILED


def test_when_the_fallback_fails_too_the_forward_is_failed() -> None:
    step = after_failure(
        stage=Stage.FALLBACK,
        attempts=7,
        has_fallback=True,
        failure=TRANSIENT,
        schedule=SCHEDULE,
        now=NOW,
        jitter=0.5,
    )
    assert (step.status, step.next_attempt_at) == (Status.FAILED, None)
