"""Erlang A (router/core/erlang_a.py), checked where its answer is known exactly: without
hang-ups it is Erlang C; when patience equals the handle time every caller leaves at the
same rate, waiting or served, so the number in the system is Poisson (as with infinitely
many agents); over a long enough wait every caller who does not hang up is answered; deep
in overload the agents serve what they can and the rest hang up. We know of no published
Erlang A table to hold it against, so these exact cases stand in for one."""

from __future__ import annotations

import math

import pytest

from router.core.erlang import agents_needed, service_level
from router.core.erlang_a import QueueTooLong, agents_needed_a, staffed_a


def poisson(mean: float, size: int) -> list[float]:
    terms = [math.exp(-mean)]
    for k in range(1, size):
        terms.append(terms[-1] * mean / k)
    return terms


def test_callers_who_never_hang_up_are_erlang_c() -> None:
    """The Call Centre Helper example (10 erlangs, AHT 180 s, 80/20: 14 agents, see
    tests/test_erlang.py) with a patience of 30 years."""
    patient = agents_needed_a(10.0, 180, 1e9, 0.8, 20)
    assert patient.agents == agents_needed(10.0, 180, 0.8, 20).agents == 14
    assert patient.service_level == pytest.approx(service_level(14, 10.0, 180, 20), abs=1e-6)
    assert patient.abandoned == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize(("agents", "traffic"), [(12, 10.0), (3, 4.5), (40, 35.0)])
def test_patience_equal_to_the_handle_time_gives_a_poisson_number_in_the_system(
    agents: int, traffic: float
) -> None:
    result = staffed_a(agents, traffic, 180, 180, 20)
    terms = poisson(traffic, 200)
    waiting = sum(terms[agents:])
    queue = sum((k - agents) * p for k, p in enumerate(terms) if k > agents)
    assert result.wait_probability == pytest.approx(waiting, rel=1e-9)
    assert result.abandoned == pytest.approx(queue / traffic, rel=1e-9)  # theta E[Q] / lambda
    assert result.asa == pytest.approx(queue / traffic * 180, rel=1e-9)  # Little: E[Q] / lambda


@pytest.mark.parametrize(("agents", "traffic", "patience"), [(12, 10.0, 60), (5, 8.0, 120)])
def test_over_a_long_wait_everyone_who_stays_is_answered(
    agents: int, traffic: float, patience: float
) -> None:
    """The service level comes from the waiting time's distribution (a Markov chain solved
    over time), the hang-ups from the stationary queue: they must agree at t -> infinity."""
    long_wait = staffed_a(agents, traffic, 180, patience, 100_000)
    assert long_wait.service_level == pytest.approx(1 - long_wait.abandoned, abs=1e-9)
    at_once = staffed_a(agents, traffic, 180, patience, 0)
    assert at_once.service_level == pytest.approx(1 - at_once.wait_probability, abs=1e-12)


def test_an_overloaded_hour_has_figures_and_the_surplus_hangs_up() -> None:
    """100 erlangs on 50 agents: Erlang C has no answer (the queue grows forever); with
    hang-ups the agents are busy all the time and about half the callers give up."""
    result = staffed_a(50, 100.0, 180, 60, 20)
    assert result.occupancy == pytest.approx(1.0, abs=0.01)
    assert result.abandoned == pytest.approx(0.5, abs=0.01)
    assert result.wait_probability == pytest.approx(1.0, abs=0.01)
    assert math.isfinite(result.asa)


def test_hang_ups_need_fewer_agents_than_erlang_c_and_the_fewest_are_found() -> None:
    for traffic, patience in [(2.0, 60.0), (10.0, 120.0), (150.0, 90.0)]:
        result = agents_needed_a(traffic, 240, patience, 0.8, 20)
        assert result.service_level >= 0.8
        assert result.agents <= agents_needed(traffic, 240, 0.8, 20).agents
        fewer = staffed_a(result.agents - 1, traffic, 240, patience, 20)
        assert fewer.service_level < 0.8


def test_no_calls_need_no_agent_and_impossible_inputs_are_refused() -> None:
    assert agents_needed_a(0.0, 180, 60, 0.8, 20).agents == 0
    idle = staffed_a(500, 1.0, 180, 60, 20)  # all 500 busy: below a float's resolution
    assert (idle.wait_probability, idle.service_level, idle.abandoned) == (0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="patience"):
        staffed_a(3, 1.0, 180, 0, 20)
    with pytest.raises(ValueError, match="share"):
        agents_needed_a(1.0, 180, 60, 1.0, 20)


def test_a_queue_of_thousands_is_refused_rather_than_computed() -> None:
    """Callers who wait for ever and fewer agents than the traffic: the queue grows to the
    size of the patience; the search passes over such staffings (their wait is hours)."""
    with pytest.raises(QueueTooLong):
        staffed_a(8, 10.0, 180, 1e9, 20)
