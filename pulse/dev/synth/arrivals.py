"""Synth layer 1, arrivals: lead creation times from an inhomogeneous Poisson process with
weekday seasonality, a working-hours daily profile and a mild growth trend."""
from __future__ import annotations

import heapq
import math
import random
from typing import Iterable, Iterator

from .world import DAY, HOUR, _TEAM_OFFSETS, _WEEKDAY_WEIGHT, _weekday


def _times_in_day(rng: random.Random, day_start: int, k: int) -> list[int]:
    """k lead-creation times for the UTC day starting at `day_start` (may spill ±14 h)."""
    out = []
    for _ in range(k):
        if rng.random() < 0.8:      # in someone's working day
            off = rng.choice(_TEAM_OFFSETS)
            h = min(max(rng.gauss(13.0, 2.6), 5.0), 23.0)
            out.append(day_start + int(h * HOUR) - off)
        else:                       # web forms, imports, night owls
            out.append(day_start + int(rng.random() * DAY))
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    if lam < 30:
        L, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= L:
                return k
            k += 1
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def _day_weight(day: int, i: int, days: float, growth: float) -> float:
    return _WEEKDAY_WEIGHT[_weekday(day)] * (1.0 + growth * i / days)


def _reorder(per_day: Iterable[list[int]], first_day: int) -> Iterator[int]:
    """Sorted merge of per-day time lists whose items spill at most a day either side."""
    heap: list[int] = []
    for i, times in enumerate(per_day):
        for t in times:
            heapq.heappush(heap, t)
        safe = (first_day + i - 1) * DAY
        while heap and heap[0] < safe:
            yield heapq.heappop(heap)
    while heap:
        yield heapq.heappop(heap)


def fixed_arrivals(seed: int | str, n: int, start: int, days: int, growth: float = 0.3) -> Iterator[int]:
    """Exactly `n` lead-creation times in [start, start + days·86400), ascending.

    Inhomogeneous Poisson conditioned on its count: weekday weights, a linear growth
    of `growth` over the period, working-hours profile. Times spilling out of the
    period are clamped into it."""
    rng = random.Random(f"pulse-synth:arrivals:{seed}")
    first_day = start // DAY
    end = start + days * DAY
    cum, acc = [], 0.0
    for i in range(days):
        acc += _day_weight(first_day + i, i, days, growth)
        cum.append(acc)
    counts = [0] * days
    for d in rng.choices(range(days), cum_weights=cum, k=n):
        counts[d] += 1
    per_day = (_inside(rng, _times_in_day(rng, start + i * DAY, counts[i]), start + i * DAY, start, end)
               for i in range(days))
    return _reorder(per_day, first_day)


def _inside(rng: random.Random, times: list[int], day_start: int, lo: int, hi: int | None) -> list[int]:
    """`times`, each one that spilled out of [lo, hi) redrawn uniformly in its day."""
    out = []
    for t in times:
        if t < lo or (hi is not None and t >= hi):
            a = max(lo, day_start)
            b = day_start + DAY if hi is None else min(hi, day_start + DAY)
            t = a + int(rng.random() * (b - a))
        out.append(t)
    return out


def poisson_arrivals(seed: int | str, start: int, rate_per_day: float, growth_per_day: float = 0.0,
                     days: int | None = None) -> Iterator[int]:
    """Unbounded (or `days`-long) Poisson lead-creation times from `start`, ascending."""
    rng = random.Random(f"pulse-synth:arrivals:{seed}")
    first_day = start // DAY

    def per_day() -> Iterator[list[int]]:
        i = 0
        while days is None or i < days:
            lam = rate_per_day * _WEEKDAY_WEIGHT[_weekday(first_day + i)] * (1.0 + growth_per_day * i)
            yield _inside(rng, _times_in_day(rng, start + i * DAY, _poisson(rng, lam)), start + i * DAY, start, None)
            i += 1

    return _reorder(per_day(), first_day)
