"""Opening hours: the grammar of ``hours`` and "is it open at this local time?"."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.core.hours import ALWAYS, DAYS, HoursError, parse_hours

PRAGUE = ZoneInfo("Europe/Prague")
MONDAY = date(2026, 11, 23)  # the week of the shared NOW (Monday 09:30 Prague)


def at(day_offset: int, clock: str) -> datetime:
    """A local wall-clock time in the week of MONDAY (offset 0 = Monday)."""
    hour, minute = map(int, clock.split(":"))
    day = MONDAY + timedelta(days=day_offset)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PRAGUE)


def open_days(spec: object, clock: str = "12:00") -> list[str]:
    hours = parse_hours(spec)
    return [DAYS[offset] for offset in range(7) if hours.is_open(at(offset, clock))]


def test_always_is_open_at_any_time_and_date() -> None:
    hours = parse_hours("always")
    assert hours == ALWAYS
    assert hours.is_open(datetime(2026, 12, 24, 3, 0))
    assert all(hours.is_open(at(offset, "00:00")) for offset in range(7))


def test_a_range_of_days_opens_each_day_in_it_and_no_other() -> None:
    assert open_days({"mon-fri": "08:00-17:00"}) == ["mon", "tue", "wed", "thu", "fri"]


def test_a_range_may_wrap_over_the_weekend() -> None:
    assert open_days({"fri-mon": "08:00-17:00"}) == ["mon", "fri", "sat", "sun"]


def test_day_names_are_case_insensitive() -> None:
    assert open_days({"Mon-WED": "08:00-17:00", "SAT": "09:00-13:00"}) == [
        "mon",
        "tue",
        "wed",
        "sat",
    ]


def test_a_day_not_named_is_closed() -> None:
    assert open_days({"tue": "00:00-24:00", "thu": "00:00-24:00"}) == ["tue", "thu"]


def test_an_empty_mapping_is_never_open() -> None:
    assert open_days({}) == []


@pytest.mark.parametrize(
    ("clock", "is_open"),
    [("07:59", False), ("08:00", True), ("11:59", True), ("12:00", False), ("12:30", False),
     ("13:00", True), ("16:59", True), ("17:00", False), ("23:00", False)],
)  # fmt: skip
def test_several_intervals_leave_the_gaps_closed(clock: str, is_open: bool) -> None:
    hours = parse_hours({"mon-fri": "08:00-12:00, 13:00-17:00"})
    assert hours.is_open(at(0, clock)) is is_open


def test_the_last_second_of_an_interval_is_still_open() -> None:
    hours = parse_hours({"mon": "08:00-17:00"})
    assert hours.is_open(at(0, "16:59").replace(second=59, microsecond=999_999))
    assert not hours.is_open(at(0, "17:00"))


def test_24_00_closes_at_midnight_and_a_night_is_split_across_two_days() -> None:
    hours = parse_hours({"mon": "22:00-24:00", "tue": "00:00-06:00"})
    assert not hours.is_open(at(0, "21:59"))
    assert hours.is_open(at(0, "23:59"))
    assert hours.is_open(at(1, "00:00"))
    assert hours.is_open(at(1, "05:59"))
    assert not hours.is_open(at(1, "06:00"))
    assert not hours.is_open(at(1, "23:00"))


def test_single_digit_hours_and_spaces_are_read() -> None:
    hours = parse_hours({"mon": " 8:00 - 12:00 ,13:00-17:00 "})
    assert hours.week[0] == ((480, 720), (780, 1020))


def test_holiday_dates_are_closed_all_day_whether_strings_or_yaml_dates() -> None:
    hours = parse_hours({"mon-sun": "00:00-24:00", "closed": ["2026-12-24", date(2026, 12, 25)]})
    assert hours.closed == {date(2026, 12, 24), date(2026, 12, 25)}
    assert not hours.is_open(datetime(2026, 12, 24, 10, 0, tzinfo=PRAGUE))
    assert not hours.is_open(datetime(2026, 12, 25, 0, 0, tzinfo=PRAGUE))
    assert hours.is_open(datetime(2026, 12, 23, 23, 59, tzinfo=PRAGUE))
    assert hours.is_open(datetime(2026, 12, 26, 0, 0, tzinfo=PRAGUE))


# Europe/Prague: 2026-03-29 (a Sunday) jumps from 02:00 CET to 03:00 CEST; 2026-10-25 (a
# Sunday) falls back from 03:00 CEST to 02:00 CET. Opening hours follow the wall clock.
@pytest.mark.parametrize(
    ("utc", "is_open"),
    [
        (datetime(2026, 3, 28, 6, 30, tzinfo=UTC), False),  # Saturday 07:30 CET
        (datetime(2026, 3, 28, 7, 0, tzinfo=UTC), True),  # Saturday 08:00 CET
        (datetime(2026, 3, 29, 6, 0, tzinfo=UTC), True),  # DST Sunday 08:00 CEST
        (datetime(2026, 3, 29, 5, 59, tzinfo=UTC), False),  # DST Sunday 07:59 CEST
        (datetime(2026, 3, 29, 14, 59, tzinfo=UTC), True),  # DST Sunday 16:59 CEST
        (datetime(2026, 3, 29, 15, 0, tzinfo=UTC), False),  # DST Sunday 17:00 CEST
        (datetime(2026, 10, 25, 6, 30, tzinfo=UTC), False),  # fall-back Sunday 07:30 CET
        (datetime(2026, 10, 25, 7, 0, tzinfo=UTC), True),  # fall-back Sunday 08:00 CET
        (datetime(2026, 10, 25, 15, 59, tzinfo=UTC), True),  # 16:59 CET
        (datetime(2026, 10, 25, 16, 0, tzinfo=UTC), False),  # 17:00 CET
    ],
)
def test_is_open_follows_the_wall_clock_across_daylight_saving_changes(
    utc: datetime, is_open: bool
) -> None:
    hours = parse_hours({"mon-sun": "08:00-17:00"})
    assert hours.is_open(utc.astimezone(PRAGUE)) is is_open


def test_an_hour_skipped_by_daylight_saving_is_never_open() -> None:
    hours = parse_hours({"sun": "02:00-03:00"})
    start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # Sunday 00:00 CET
    minutes = (start + timedelta(minutes=m) for m in range(24 * 60))
    assert not any(hours.is_open(moment.astimezone(PRAGUE)) for moment in minutes)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("allways", [("", "must be 'always'")]),
        (["mon-fri"], [("", "must be 'always'")]),
        ({"mon-fry": "08:00-17:00"}, [("mon-fry", "not a day or a range")]),
        ({"monday": "08:00-17:00"}, [("monday", "not a day or a range")]),
        ({"mon-wed-fri": "08:00-17:00"}, [("mon-wed-fri", "not a day or a range")]),
        ({"mon-mon": "08:00-17:00"}, [("mon-mon", "two different days")]),
        ({1: "08:00-17:00"}, [("1", "must be a string")]),
        ({"mon": "17:00-08:00"}, [("mon", "end must be after the start")]),
        ({"mon": "08:00-08:00"}, [("mon", "end must be after the start")]),
        ({"mon": "22:00-06:00"}, [("mon", "split a night")]),
        ({"mon": "08:00-24:30"}, [("mon", "valid times")]),
        ({"mon": "08:00-25:00"}, [("mon", "valid times")]),
        ({"mon": "08:60-09:00"}, [("mon", "valid times")]),
        ({"mon": "8-17"}, [("mon", "valid times")]),
        ({"mon": "08:00"}, [("mon", "not an HH:MM-HH:MM interval")]),
        ({"mon": "24:00-24:00"}, [("mon", "cannot start at 24:00")]),
        ({"mon": ""}, [("mon", "leave the day out")]),
        ({"mon": 8}, [("mon", "must be a string")]),
        ({"mon": None}, [("mon", "must be a string")]),
        ({"mon": "08:00-12:00,11:00-13:00"}, [("mon", "08:00-12:00 and 11:00-13:00 overlap")]),
        ({"mon-fri": "08:00-17:00", "fri": "08:00-20:00"}, [("fri", "already named by mon-fri")]),
        ({"closed": "2026-12-24"}, [("closed", "must be a list")]),
        ({"closed": ["2026-12-24", "24.12.2026"]}, [("closed[1]", "not an ISO date")]),
        ({"closed": ["2026-02-30"]}, [("closed[0]", "not an ISO date")]),
        ({"closed": ["20261224"]}, [("closed[0]", "not an ISO date")]),
        ({"closed": [datetime(2026, 12, 24, 10, 0)]}, [("closed[0]", "not an ISO date")]),
    ],
)
def test_malformed_hours_name_the_key_and_the_problem(
    spec: object, expected: list[tuple[str, str]]
) -> None:
    with pytest.raises(HoursError) as caught:
        parse_hours(spec)
    problems = caught.value.problems
    assert [path for path, _ in problems] == [path for path, _ in expected]
    for (_, message), (_, fragment) in zip(problems, expected, strict=True):
        assert fragment in message


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(HoursError) as caught:
        parse_hours(
            {
                "mon-fry": "08:00-17:00",
                "sat": "18:00-09:00, 25:00-26:00",
                "closed": ["2026-12-24", "nope", "2026-13-01"],
            }
        )
    assert [path for path, _ in caught.value.problems] == [
        "mon-fry",
        "sat",
        "sat",
        "closed[1]",
        "closed[2]",
    ]
    assert str(caught.value).splitlines()[0].startswith("mon-fry: not a day")


def test_touching_intervals_are_fine() -> None:
    hours = parse_hours({"mon": "08:00-12:00,12:00-17:00"})
    assert hours.is_open(at(0, "12:00"))


@st.composite
def intervals(draw: st.DrawFn) -> tuple[int, int]:
    start = draw(st.integers(min_value=0, max_value=24 * 60 - 1))
    end = draw(st.integers(min_value=start + 1, max_value=24 * 60))
    return start, end


@given(intervals(), st.integers(min_value=0, max_value=24 * 60 - 1))
def test_is_open_exactly_inside_a_half_open_interval(
    interval: tuple[int, int], minute: int
) -> None:
    start, end = interval
    spec = {"mon": f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"}
    moment = datetime(2026, 11, 23, minute // 60, minute % 60)
    assert parse_hours(spec).is_open(moment) is (start <= minute < end)
