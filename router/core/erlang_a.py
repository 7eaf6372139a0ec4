"""Erlang A: agents for callers who hang up when kept waiting (``staffing --patience``).

The model (M/M/N+M, Palm's): Erlang C's, except that every waiting caller hangs up after
an exponential patience with mean *patience* seconds (rate ``theta = 1 / patience``). Erlang
C assumes infinite patience and over-staffs when callers do give up; Erlang A also stays
finite when the traffic exceeds the agents (hang-ups keep the queue short), so an overloaded
hour has figures instead of "unstable".

The number of callers in the system is a birth-death chain: arrivals at rate ``lambda``,
departures ``min(n, N) mu + max(n - N, 0) theta``. Its stationary distribution, relative to
n = N, is ``1 / B(N, A)`` summed over n <= N (Erlang B, the same stable recursion as
``router.core.erlang``) and ``prod_{j<=k} lambda / (N mu + j theta)`` for k callers waiting;
the products shrink once ``N mu + k theta > lambda``, and the sum stops when a term no longer
counts. From it, by PASTA (arrivals see the time average):

* the probability of waiting: the arrival finds all N agents busy;
* the share of callers who hang up: ``theta E[queue] / lambda``;
* the occupancy: the answered traffic ``A (1 - abandoned)`` over N.

The service level, the share of *all* offered calls answered within *t* (a caller who
hangs up counts as not answered), needs the waiting time of an arrival that finds k callers
ahead: it reaches an agent after k + 1 stages, the one with j ahead ending at rate
``N mu + j theta`` (a completion, or a hang-up ahead), while it hangs up itself at rate
theta. Those stages form a small absorbing Markov chain, started from the distribution
arrivals see, and the probability of being absorbed as "answered" by time t is computed by
uniformisation (a Poisson-weighted sum of matrix-free steps), in slices short enough that
no weight underflows.

Pure: numbers in, numbers out; no I/O.
"""

from __future__ import annotations

import math

from router.core.erlang import Staffed, erlang_b

__all__ = ["MAX_QUEUE", "QueueTooLong", "agents_needed_a", "staffed_a"]

_TAIL = 1e-13  # waiting-state weights smaller than this share of the total are dropped
_SLICE = 40.0  # uniformisation per slice of at most this many expected jumps
#: The longest queue modelled. A longer one means callers so patient, and agents so few,
#: that thousands wait: no target wait is met there (see agents_needed_a).
MAX_QUEUE = 5_000


class QueueTooLong(ValueError):
    """The queue of this staffing would hold more than MAX_QUEUE callers."""


def _waiting_weights(
    agents: int, rate: float, mu: float, theta: float
) -> tuple[list[float], float]:
    """pi(N + k) / pi(N + peak) for k = 0, 1, ... until the tail no longer counts, and
    log(pi(N + peak) / pi(N)): scaled by the largest, so that no weight overflows when
    the agents are fewer than the traffic and the queue peaks far from N."""
    # the weights grow while lambda > N mu + k theta, then shrink
    peak = max(0, math.ceil((rate - agents * mu) / theta))
    if peak > MAX_QUEUE:
        raise QueueTooLong(f"about {peak} callers would wait")
    logs = [0.0]
    k = 0
    while True:
        k += 1
        logs.append(logs[-1] + math.log(rate / (agents * mu + k * theta)))
        if k <= peak:
            continue
        top = logs[peak]
        # past the peak each term shrinks by at least the ratio of the next: stop when the
        # rest of the tail is negligible against the peak (the largest term)
        ratio = rate / (agents * mu + (k + 1) * theta)
        if math.exp(logs[-1] - top) / (1 - ratio) < _TAIL:
            return [math.exp(value - top) for value in logs], top
        if k > peak + MAX_QUEUE:  # a tail that long: as many callers, as long a wait
            raise QueueTooLong(f"more than {k} callers may wait")


def _answered_within(
    start: list[float], agents: int, mu: float, theta: float, target: float
) -> float:
    """P(answered by *target* s) for a waiting caller whose number of callers ahead is
    distributed as *start* (summing to 1)."""
    if target == 0:
        return 0.0
    ahead = len(start)
    leave = [agents * mu + j * theta for j in range(ahead)]  # to j-1 (j = 0: answered)
    uniform = leave[-1] + theta
    slices = max(1, math.ceil(uniform * target / _SLICE))
    jumps = uniform * target / slices
    state = list(start)
    answered = 0.0
    for _ in range(slices):
        # Poisson(jumps)-weighted sum of the uniformised chain's steps over one slice
        weight = math.exp(-jumps)
        covered = weight
        mixed = [weight * p for p in state]
        mixed_answered = 0.0
        current, current_answered = state, 0.0
        n = 0
        while covered < 1 - 1e-14 and n < 10_000:
            n += 1
            current_answered += current[0] * leave[0] / uniform
            current = [
                current[j] * (1 - (leave[j] + theta) / uniform)
                + (current[j + 1] * leave[j + 1] / uniform if j + 1 < ahead else 0.0)
                for j in range(ahead)
            ]
            weight *= jumps / n
            covered += weight
            mixed = [m + weight * c for m, c in zip(mixed, current, strict=True)]
            mixed_answered += weight * current_answered
        answered += mixed_answered
        state = mixed
    return answered


def staffed_a(agents: int, traffic: float, aht: float, patience: float, target: float) -> Staffed:
    """What *agents* agents achieve on *traffic* erlangs (handle time *aht* s) when callers
    wait *patience* seconds on average, with the service level measured at *target* s."""
    if not (patience > 0 and math.isfinite(patience)):
        raise ValueError(f"the patience must be a positive number of seconds, not {patience}")
    if not (aht > 0 and math.isfinite(aht)):
        raise ValueError(f"the average handle time must be a positive number, not {aht}")
    if not (target >= 0 and math.isfinite(target)):
        raise ValueError(f"the target wait must be a number of seconds >= 0, not {target}")
    if agents < 0 or not (traffic >= 0 and math.isfinite(traffic)):
        raise ValueError(f"impossible agents ({agents}) or traffic ({traffic})")
    if traffic == 0:
        return Staffed(agents, 0.0, 0.0, 1.0, 0.0, 0.0)
    mu, theta = 1 / aht, 1 / patience
    rate = traffic * mu
    blocking = erlang_b(agents, traffic) if agents else 1.0
    if blocking == 0.0:  # so many agents that all busy is below a float's resolution
        return Staffed(agents, traffic, 0.0, 1.0, 0.0, traffic / agents)
    waiting, scale = _waiting_weights(agents, rate, mu, theta)
    # pi(n < N) / pi(N) from Erlang B: sum_{n<=N} pi(n) / pi(N) = 1 / B(N, A); on the
    # weights' scale (pi(N + peak) = 1) it is multiplied by pi(N) / pi(N + peak)
    below = (1 / blocking - 1) * math.exp(-scale)
    in_queue = sum(waiting)
    total = below + in_queue
    wait_probability = in_queue / total  # arrivals that find every agent busy
    queue = sum(k * w for k, w in enumerate(waiting)) / total  # E[callers waiting]
    abandoned = theta * queue / rate
    seen = [w / in_queue for w in waiting]
    answered_late = _answered_within(seen, agents, mu, theta, target) if agents else 0.0
    return Staffed(
        agents=agents,
        traffic=traffic,
        wait_probability=wait_probability,
        service_level=min(1.0, below / total + wait_probability * answered_late),
        asa=queue / rate,  # Little: the mean wait of all callers, those who hang up too
        occupancy=traffic * (1 - abandoned) / agents if agents else 0.0,
        abandoned=abandoned,
    )


def agents_needed_a(
    traffic: float, aht: float, patience: float, share: float, target: float
) -> Staffed:
    """The fewest agents that answer at least *share* of all offered calls within *target*
    seconds when callers wait *patience* seconds on average (Erlang A)."""
    if not 0 < share < 1:
        raise ValueError(f"the share answered in time must be between 0 and 1, not {share}")
    if traffic == 0:
        return staffed_a(0, 0.0, aht, patience, target)
    # N agents answer at most N mu calls a second, so a share of the offered calls needs
    # N >= share x A; the service level only grows with N from there.
    agents = max(1, math.ceil(share * traffic))
    while True:
        try:
            result = staffed_a(agents, traffic, aht, patience, target)
        except QueueTooLong:
            # thousands waiting: their wait runs to hours, beyond any target here
            agents += 1
            continue
        if result.service_level >= share:
            return result
        agents += 1
