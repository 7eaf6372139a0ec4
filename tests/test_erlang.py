"""Erlang B and C (router/core/erlang.py) against published tables and worked examples, and
at the edges: no calls, an unstable queue, hundreds and thousands of erlangs."""

from __future__ import annotations

import math

import pytest

from router.core.erlang import (
    agents_needed,
    average_speed_of_answer,
    erlang_b,
    erlang_c,
    service_level,
    staffed,
)

# -- published figures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agents", "traffic"),
    [(10, 4.46), (20, 12.03), (50, 37.90), (100, 84.06)],
)
def test_erlang_b_matches_the_published_table_at_one_percent_blocking(
    agents: int, traffic: float
) -> None:
    """The Erlang B table (traffic in erlangs carried by N lines at 1 % blocking), as
    printed in every teletraffic handbook, e.g. ITU-D "Teletraffic Engineering Handbook"
    (Iversen), table of the Erlang B formula; the table rounds the traffic to 0.01 erlang,
    so the blocking is 1 % to within that rounding."""
    assert erlang_b(agents, traffic) == pytest.approx(0.01, abs=0.0002)


def test_the_call_centre_helper_worked_example_needs_14_agents() -> None:
    """Call Centre Helper, "Erlang C Formula – Made Simple With an Easy Worked Example":
    100 calls in 30 minutes, AHT 180 s (10 erlangs), 80 % within 20 s; the article's answer
    is 14 agents, at a service level of about 88 %. The finer figures (probability of
    waiting 17.4 %, service level 88.8 %, ASA 7.8 s, occupancy 71.4 %; 79.6 % with 13
    agents) were worked out separately in exact rational arithmetic (Python's fractions,
    the textbook formula with factorials), not with this module."""
    traffic = 100 / 1800 * 180
    assert traffic == pytest.approx(10.0)
    result = agents_needed(traffic, 180, 0.80, 20)
    assert result.agents == 14
    assert result.wait_probability == pytest.approx(0.174, abs=0.0005)
    assert result.service_level == pytest.approx(0.888, abs=0.0005)
    assert result.asa == pytest.approx(7.8, abs=0.05)
    assert result.occupancy == pytest.approx(0.714, abs=0.0005)
    assert service_level(13, traffic, 180, 20) == pytest.approx(0.796, abs=0.0005)


def test_the_erlang_c_formula_worked_example_of_westbay() -> None:
    """Westbay Engineers (erlang.com), "The Erlang-C Formula", the step-by-step example:
    360 calls per half hour, 4-minute calls, 55 agents, 15 s target: 48 erlangs, occupancy
    0.873. Its probability of waiting (0.239), ASA (8.2 s) and service level (84.6 % within
    15 s) checked separately in exact rational arithmetic, as above."""
    traffic = 360 / 1800 * 240
    result = staffed(55, traffic, 240, 15)
    assert traffic == pytest.approx(48.0)
    assert result.occupancy == pytest.approx(0.873, abs=0.0005)
    assert result.wait_probability == pytest.approx(0.239, abs=0.0005)
    assert result.asa == pytest.approx(8.2, abs=0.05)
    assert result.service_level == pytest.approx(0.846, abs=0.0005)


def test_erlang_c_at_small_sizes_equals_the_closed_form() -> None:
    """Hand arithmetic: one agent is M/M/1, where a call waits with probability A; two
    agents at one erlang: C = (1/2 * 2) / (1 + 1 + 1/2 * 2) = 1/3."""
    assert erlang_c(1, 0.25) == pytest.approx(0.25)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    # M/M/1: P(wait > t) = A e^{-(1 - A) t / aht}
    assert service_level(1, 0.5, 60, 60) == pytest.approx(1 - 0.5 * math.exp(-0.5))
    assert average_speed_of_answer(1, 0.5, 60) == pytest.approx(60.0)  # A aht / (1 - A)


# -- the edges -----------------------------------------------------------------------------------


def test_no_calls_need_no_agent_and_wait_for_nothing() -> None:
    result = agents_needed(0.0, 180, 0.8, 20)
    assert (result.agents, result.service_level, result.asa, result.occupancy) == (0, 1.0, 0, 0)
    assert erlang_c(3, 0.0) == 0.0
    assert erlang_b(0, 5.0) == 1.0  # no line: every call is lost


@pytest.mark.parametrize(("agents", "traffic"), [(5, 5.0), (5, 7.5), (1, 1.0)])
def test_traffic_at_or_above_the_agents_is_an_unstable_queue(agents: int, traffic: float) -> None:
    assert erlang_c(agents, traffic) == 1.0
    assert service_level(agents, traffic, 180, 20) == 0.0
    assert average_speed_of_answer(agents, traffic, 180) == math.inf
    assert staffed(agents, traffic, 180, 20).occupancy == traffic / agents


def test_the_fewest_agents_are_found_just_above_the_traffic() -> None:
    """The search never stops at an unstable staffing and never skips the fewest that meet
    the target: one agent fewer misses it."""
    for traffic in (0.01, 0.5, 1.0, 2.999, 3.0, 17.3, 64.0):
        result = agents_needed(traffic, 240, 0.8, 20)
        assert result.agents > traffic
        assert result.service_level >= 0.8
        assert service_level(result.agents - 1, traffic, 240, 20) < 0.8


@pytest.mark.parametrize("traffic", [300.0, 800.0, 5000.0])
def test_hundreds_and_thousands_of_erlangs_do_not_overflow(traffic: float) -> None:
    """A**N / N! overflows a float from about 170 agents on; the recursion does not. With
    many agents the pool is efficient: the agents needed exceed the traffic by a few square
    roots of it (the square-root staffing rule), and occupancy approaches 1."""
    result = agents_needed(traffic, 180, 0.8, 20)
    assert traffic < result.agents < traffic + 3 * math.sqrt(traffic)
    assert 0.8 <= result.service_level < 1
    assert service_level(result.agents - 1, traffic, 180, 20) < 0.8
    assert math.isfinite(result.asa)
    assert result.occupancy > 0.9
    assert 0 < erlang_c(result.agents, traffic) < 1


def test_erlang_c_agrees_with_the_direct_formula_where_that_one_still_fits_a_float() -> None:
    """The textbook form, A^N/N! * N/(N-A) over the sum, evaluated in log space so it does
    not overflow, against the recursion at 150 agents."""
    agents, traffic = 150, 138.0
    logs = [k * math.log(traffic) - math.lgamma(k + 1) for k in range(agents)]
    top = (
        agents * math.log(traffic) - math.lgamma(agents + 1) + math.log(agents / (agents - traffic))
    )
    peak = max([*logs, top])
    below = sum(math.exp(value - peak) for value in logs)
    expected = math.exp(top - peak) / (below + math.exp(top - peak))
    assert erlang_c(agents, traffic) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: erlang_b(-1, 1.0), "agents"),
        (lambda: erlang_c(3, -1.0), "traffic"),
        (lambda: erlang_c(3, math.nan), "traffic"),
        (lambda: agents_needed(2.0, 0, 0.8, 20), "handle time"),
        (lambda: agents_needed(2.0, 180, 1.0, 20), "share"),
        (lambda: agents_needed(2.0, 180, 0.8, -1), "target wait"),
    ],
)
def test_impossible_inputs_are_value_errors(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match=message):
        call()
