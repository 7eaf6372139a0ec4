"""Durations as operators write them: 90s, 15m, 24h, 2d."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core.durations import MAX_DURATION, format_duration, parse_duration, parse_since


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("2d", timedelta(days=2)),
        ("1s", timedelta(seconds=1)),
        (" 15m ", timedelta(minutes=15)),
    ],
)
def test_parse_duration_reads_one_number_and_one_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "15", "m", "0s", "0d", "-5m", "+5m", "1.5h", "1h30m", "15 m", "15M", "2w", "15min",
     "1e3s", "١٥m", "99999999999999999d"],
)  # fmt: skip
def test_parse_duration_refuses_anything_else_with_the_accepted_form(text: str) -> None:
    with pytest.raises(ValueError, match="duration") as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


def test_parse_duration_refuses_a_number_with_a_value_error_not_a_type_error() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_duration(15)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(86_400, "1d"), (90, "90s"), (5_400, "90m"), (3_600, "1h"), (172_800, "2d"),
     (90_000, "25h"), (60, "1m"), (86_401, "86401s")],
)  # fmt: skip
def test_format_duration_uses_the_largest_exact_unit(seconds: int, expected: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == expected


@pytest.mark.parametrize("duration", [timedelta(0), timedelta(seconds=-60), timedelta(seconds=1.5)])
def test_format_duration_refuses_what_cannot_be_written(duration: timedelta) -> None:
    with pytest.raises(ValueError, match="positive whole number of seconds"):
        format_duration(duration)


@given(st.integers(min_value=1, max_value=int(MAX_DURATION.total_seconds())))
def test_format_then_parse_gives_the_same_duration(seconds: int) -> None:
    duration = timedelta(seconds=seconds)
    assert parse_duration(format_duration(duration)) == duration


@given(st.integers(min_value=1, max_value=36_500), st.sampled_from("smhd"))
def test_format_never_picks_a_smaller_unit_than_it_could(amount: int, unit: str) -> None:
    text = format_duration(parse_duration(f"{amount}{unit}"))
    sizes = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, written_unit = int(text[:-1]), text[-1]
    assert number * sizes[written_unit] == amount * sizes[unit]
    larger = [size for size in sizes.values() if size > sizes[written_unit]]
    assert all((number * sizes[written_unit]) % size for size in larger)


@pytest.mark.parametrize("text", ["36501d", "99999999d", "876001h", "1" + "0" * 5000 + "s"])
def test_a_duration_longer_than_a_century_is_refused_as_too_long(text: str) -> None:
    with pytest.raises(ValueError, match="longer than 36500d"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["99999999d", "36501d"])
def test_since_further_back_than_a_datetime_reaches_is_a_value_error(text: str) -> None:
    """``since=99999999d`` was an OverflowError (a 500 over HTTP): ``now - duration``."""
    with pytest.raises(ValueError, match="longer than 36500d"):
        parse_since(text, datetime(2026, 11, 23, tzinfo=UTC))


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_since_at_the_edge_of_the_calendar_outside_utc_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="outside the years 1 to 9999"):
        parse_since(text, datetime(2026, 11, 23, tzinfo=UTC))


def test_since_reaches_back_a_whole_century() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    assert parse_since("36500d", now) == now - MAX_DURATION
