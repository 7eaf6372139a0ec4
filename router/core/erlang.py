"""Erlang B and Erlang C: how many agents a stream of calls needs (``switchboard staffing``).

The model (M/M/N, "Erlang C"): calls arrive at random (Poisson) at a steady rate, handle
times are exponential with mean *aht*, N agents take calls first come first served, and
nobody hangs up while waiting. The offered traffic is ``A = rate x aht`` erlangs: the
number of agents busy on average. With ``N <= A`` the queue grows without bound; with
``N > A``:

* the probability that a call waits, Erlang C: ``C(N, A)``;
* the service level, the share of calls answered within *t*:
  ``1 - C(N, A) * exp(-(N - A) * t / aht)``;
* the average speed of answer: ``C(N, A) * aht / (N - A)``;
* the occupancy, the share of agents' time spent on calls: ``A / N``.

Numerics: the textbook form of C has ``A**N / N!``, which overflows a float from about 170
agents on. Here C comes from Erlang B (the blocking probability of N lines), computed by its
recursion ``B(0) = 1, B(n) = A B(n-1) / (n + A B(n-1))``, whose every term lies in [0, 1],
and ``C = N B / (N - A (1 - B))``. That is exact in exact arithmetic and stays accurate in
floats for thousands of agents and erlangs. The staffing search walks the recursion up from
N = 1 once, so finding the agents for A erlangs costs about A steps.

Pure: numbers in, numbers out; no I/O, no imports from the rest of the package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "Staffed",
    "agents_needed",
    "average_speed_of_answer",
    "erlang_b",
    "erlang_c",
    "service_level",
    "staffed",
]


def _next_b(blocking: float, agents: int, traffic: float) -> float:
    """B(agents) from B(agents - 1)."""
    return traffic * blocking / (agents + traffic * blocking)


def erlang_b(agents: int, traffic: float) -> float:
    """The probability that a call finds all *agents* lines busy and is lost (Erlang B)."""
    _check(agents, traffic)
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = _next_b(blocking, n, traffic)
    return blocking


def _c_from_b(blocking: float, agents: int, traffic: float) -> float:
    if agents <= traffic:
        return 1.0  # unstable: in the long run every call waits
    return agents * blocking / (agents - traffic * (1.0 - blocking))


def erlang_c(agents: int, traffic: float) -> float:
    """The probability that a call has to wait for one of *agents* (Erlang C); 1.0 when
    *traffic* >= *agents* (the queue grows without bound), 0.0 without traffic."""
    return _c_from_b(erlang_b(agents, traffic), agents, traffic)


def _service_level(wait: float, agents: int, traffic: float, aht: float, target: float) -> float:
    if traffic == 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    return max(0.0, 1.0 - wait * math.exp(-(agents - traffic) * target / aht))


def service_level(agents: int, traffic: float, aht: float, target: float) -> float:
    """The share of calls answered within *target* seconds by *agents* agents, when the
    calls bring *traffic* erlangs with an average handle time of *aht* seconds."""
    _check_times(aht, target)
    return _service_level(erlang_c(agents, traffic), agents, traffic, aht, target)


def average_speed_of_answer(agents: int, traffic: float, aht: float) -> float:
    """The mean wait of all calls, in seconds; infinite when *traffic* >= *agents*."""
    _check_times(aht, 0.0)
    if traffic == 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return erlang_c(agents, traffic) * aht / (agents - traffic)


@dataclass(frozen=True, slots=True)
class Staffed:
    """What *agents* agents achieve on *traffic* erlangs."""

    agents: int
    traffic: float
    wait_probability: float  # Erlang C
    service_level: float  # share answered within the target wait
    asa: float  # average speed of answer, seconds
    occupancy: float  # traffic / agents; 0.0 without agents
    abandoned: float = 0.0  # share of callers who hang up while waiting (Erlang A only)


def staffed(agents: int, traffic: float, aht: float, target: float) -> Staffed:
    """The figures of *agents* agents on *traffic* erlangs (handle time *aht* seconds,
    service level measured at *target* seconds)."""
    _check_times(aht, target)
    wait = erlang_c(agents, traffic)
    return _figures(wait, agents, traffic, aht, target)


def _figures(wait: float, agents: int, traffic: float, aht: float, target: float) -> Staffed:
    stable = agents > traffic
    asa = 0.0 if traffic == 0 else wait * aht / (agents - traffic) if stable else math.inf
    return Staffed(
        agents=agents,
        traffic=traffic,
        wait_probability=wait if traffic > 0 else 0.0,
        service_level=_service_level(wait, agents, traffic, aht, target),
        asa=asa,
        occupancy=traffic / agents if agents else 0.0,
    )


def agents_needed(traffic: float, aht: float, share: float, target: float) -> Staffed:
    """The fewest agents that answer at least *share* (0 < share < 1) of calls within
    *target* seconds, with their figures. No traffic needs no agent."""
    _check(0, traffic)
    _check_times(aht, target)
    if not 0 < share < 1:
        raise ValueError(f"the share answered in time must be between 0 and 1, not {share}")
    if traffic == 0:
        return _figures(0.0, 0, 0.0, aht, target)
    # The first stable staffing is floor(A) + 1; below it the service level is 0. B is
    # carried up the recursion to there, then one agent at a time until the target is met.
    # The service level rises to 1 as agents are added, so the loop ends: within a few
    # square roots of A above A for any share short of 1.
    agents = math.floor(traffic) + 1
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = _next_b(blocking, n, traffic)
    while True:
        wait = _c_from_b(blocking, agents, traffic)
        if _service_level(wait, agents, traffic, aht, target) >= share:
            return _figures(wait, agents, traffic, aht, target)
        agents += 1
        blocking = _next_b(blocking, agents, traffic)


def _check(agents: int, traffic: float) -> None:
    if agents < 0:
        raise ValueError(f"agents cannot be negative: {agents}")
    if not (traffic >= 0 and math.isfinite(traffic)):
        raise ValueError(f"traffic must be a finite number of erlangs >= 0, not {traffic}")


def _check_times(aht: float, target: float) -> None:
    if not (aht > 0 and math.isfinite(aht)):
        raise ValueError(f"the average handle time must be a positive number, not {aht}")
    if not (target >= 0 and math.isfinite(target)):
        raise ValueError(f"the target wait must be a number of seconds >= 0, not {target}")
