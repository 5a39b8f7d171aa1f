"""Dwell-time percentiles from a mergeable, subtractable histogram (SPEC 4.3).

SPEC 4.3 allows p50/p90 within 5 % of the exact nearest-rank value or within one
hour of it, whichever is larger. We keep, per UTC day and stage, counts of exited
stays by dwell bucket: one bucket for [0, 1 h), then geometric buckets growing by
_GROWTH. Counts are exact, so the nearest-rank element is always in the bucket we
pick; reporting the bucket's harmonic midpoint bounds the error by
(_GROWTH - 1) / (_GROWTH + 1) ≈ 2 % (or 30 minutes in the first bucket).
Buckets add and subtract, so a late event can revert a stay's contribution.
"""
from __future__ import annotations

import math

HOUR_US = 3_600_000_000
_GROWTH = 1.04
_LOG_GROWTH = math.log(_GROWTH)


BUCKET_SCALE = 1 / _LOG_GROWTH


def bucket_of(dwell_us: int, _log=math.log, _scale=BUCKET_SCALE) -> int:
    # StageFlow.moved has a copy of this line (its hot path); tests check they agree.
    if dwell_us < HOUR_US:
        return 0
    return 1 + int(_log(dwell_us / HOUR_US) * _scale)


def bucket_value_us(bucket: int) -> float:
    """The value reported for every dwell in `bucket` (microseconds)."""
    if bucket == 0:
        return HOUR_US / 2
    lo = HOUR_US * _GROWTH ** (bucket - 1)
    hi = lo * _GROWTH
    return 2 * lo * hi / (lo + hi)


def nearest_rank(counts: dict[int, int], n: int, percent: int) -> float:
    """Approximate nearest-rank percentile: the element at rank ceil(percent/100 × n)."""
    rank = -(-percent * n // 100)
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return bucket_value_us(bucket)
    raise ValueError("histogram holds fewer than n values")
