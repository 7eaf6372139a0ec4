"""``make soak`` (bench/soak.py): the flatness criterion on plain numbers, and a short soak
end to end against the real ``switchboard serve``."""

from __future__ import annotations

import math

import pytest

from bench.soak import (
    FLAT_TOLERANCE_MB,
    GOAL_MB,
    Sample,
    SoakOptions,
    growth_mb,
    memory_verdict,
    soak,
    table_rows,
    text_plot,
    window,
)


def linear(start: float, end: float, count: int) -> list[float]:
    return [start + (end - start) * index / (count - 1) for index in range(count)]


def test_a_flat_series_is_flat() -> None:
    verdict = memory_verdict([90.0, 91.0, 90.5] * 40)
    assert abs(verdict.growth_mb) < 1.0
    assert verdict.flat and verdict.below_goal and verdict.met


def test_a_steadily_rising_series_is_not_flat() -> None:
    # 100 -> 140 MB over the run: a leak of 4 MB a minute over 10 minutes
    verdict = memory_verdict(linear(100.0, 140.0, 120))
    assert verdict.growth_mb == pytest.approx(0.4 * 40.0, abs=1.0)
    assert not verdict.flat and not verdict.met
    assert verdict.below_goal  # the peak alone would not have caught it


def test_warm_up_growth_before_the_middle_is_not_a_leak() -> None:
    warm_up = linear(60.0, 95.0, 36)  # the first 30 % of 120 samples
    verdict = memory_verdict(warm_up + [95.0] * 84)
    assert verdict.growth_mb == pytest.approx(0.0)
    assert verdict.flat


def test_a_late_rise_beyond_the_tolerance_is_not_flat() -> None:
    series = [100.0] * 96 + [100.0 + FLAT_TOLERANCE_MB + 5.0] * 24
    assert growth_mb(series) == pytest.approx(FLAT_TOLERANCE_MB + 5.0)
    assert not memory_verdict(series).flat


def test_a_peak_above_the_goal_is_not_met_even_when_flat() -> None:
    verdict = memory_verdict([GOAL_MB + 1.0] * 20)
    assert verdict.flat and not verdict.below_goal and not verdict.met
    assert "not met" in verdict.line()


def test_the_verdict_line_names_both_figures_and_goals() -> None:
    line = memory_verdict(linear(80.0, 82.0, 50)).line()
    assert line.startswith("goal 5 memory: max 82.0 MB (goal <= 150 MB) met; ")
    assert "growth over the second half +0.8 MB (flat if <= 10 MB) met" in line


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_short_series_still_get_windows(count: int) -> None:
    values = [float(index) for index in range(count)]
    assert window(values, 0.4, 0.6) and window(values, 0.8, 1.0)
    assert not math.isnan(growth_mb(values))


def test_no_samples_give_no_figure() -> None:
    verdict = memory_verdict([])
    assert math.isnan(verdict.max_mb) and not verdict.met


def test_table_and_plot_cover_the_run() -> None:
    samples = [
        Sample(seconds * 5.0, 90_000 + seconds * 10, seconds * 500, anon_kb=60_000)
        for seconds in range(121)
    ]
    rows = table_rows(samples)
    assert rows[0] == ["0.0", "87.9", "58.6", "0"]
    assert rows[-1][0] == "10.0" and len(rows) == 21  # every 30 s and the last
    plot = text_plot(samples)
    assert len(plot) == 10 and all("|" in line for line in plot[:8])
    assert plot[-1].rstrip().endswith("10.0 min")


async def test_a_short_soak_end_to_end() -> None:
    options = SoakOptions(minutes=0.3, rate=30.0, sample_seconds=1.0, concurrency=8)
    result = await soak(options)

    assert result.failures() == []
    # the samples are of the serve process itself (the console script's Python, no wrapper)
    assert result.argv[-1] == "serve" and result.argv[-2].endswith("/switchboard")
    assert len(result.samples) >= 10
    assert all(sample.rss_kb > sample.anon_kb > 10_000 for sample in result.samples)
    counts = [sample.requests for sample in result.samples]
    assert counts == sorted(counts) and counts[-1] == result.tally.requests
    # every kind of request ran and was answered 2xx
    assert not result.tally.errors
    for kind in ("voice", "route", "dial-status", "status", "email", "chat", "messaging"):
        assert result.tally.ok[kind] > 0, kind
    assert result.tally.ok["change cutover"] == 1
    assert any(kind.startswith("read ") for kind in result.tally.ok)
    # the work really happened: one interaction per answered contact, every forward delivered
    assert result.rows.interactions == result.tally.contacts
    assert result.rows.outbox_status("delivered") == result.rows.outbox.total()
    assert result.sink["count"] >= result.tally.contacts["email"]
    assert result.rate == pytest.approx(options.rate, rel=0.3)

    verdict = result.verdict
    assert verdict.max_mb == max(sample.mb for sample in result.samples)
    assert not math.isnan(verdict.growth_mb)
    rendered = result.section().render()
    assert (
        verdict.line() in rendered
        and "| minute | RSS MB | of it anon MB | requests so far |" in rendered
    )
