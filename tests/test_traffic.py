"""router/core/traffic.py with plain values: the hours of a window and the contacts in them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from router.core.document import validate_document
from router.core.traffic import MAX_HOURS, hourly, window

from .conftest import shipped_data

NOW = datetime(2026, 11, 23, 8, 42, 17, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_the_window_is_whole_hours_with_the_current_one_last() -> None:
    since, until = window(NOW, 3)
    assert since == datetime(2026, 11, 23, 6, tzinfo=UTC)
    assert until == datetime(2026, 11, 23, 9, tzinfo=UTC)
    india = timezone(timedelta(hours=5, minutes=30))
    assert window(NOW.astimezone(india), 1) == (until - HOUR, until)


@pytest.mark.parametrize("hours", [0, -1, MAX_HOURS + 1])
def test_a_window_out_of_range_is_refused(hours: int) -> None:
    with pytest.raises(ValueError, match="hours must be"):
        window(NOW, hours)


def test_every_hour_gets_a_bucket_and_counts_land_in_theirs() -> None:
    document = validate_document(shipped_data())
    since, until = window(NOW, 4)
    counts = [
        (since, "phone", "partner", 3),
        (since, "email", "partner", 2),
        (since + 2 * HOUR, "phone", "hotline", 5),
        (since + 3 * HOUR, "chat", "old-team", 1),  # renamed since: kept, kind unknown
        (since + 3 * HOUR, "phone", "", 2),  # hung up in the IVR menu: no destination
        (since - HOUR, "phone", "partner", 7),  # outside the window: ignored
    ]
    traffic = hourly(counts, document, since, until)
    data = traffic.as_json()
    assert data["hours"] == 4
    assert [bucket["start"] for bucket in data["buckets"]] == [
        (since + n * HOUR).isoformat() for n in range(4)
    ]
    assert data["buckets"][0]["counts"] == {"partner": {"phone": 3, "email": 2, "chat": 0}}
    assert data["buckets"][1]["counts"] == {}
    assert data["buckets"][2]["counts"] == {"hotline": {"phone": 5, "email": 0, "chat": 0}}
    assert data["destinations"] == {
        "partner": "external",
        "hotline": "in_house",
        "old-team": "unknown",
        "": "none",
    }
    total = sum(n for b in data["buckets"] for per in b["counts"].values() for n in per.values())
    assert total == 13
