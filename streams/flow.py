"""Stage flow accounting (SPEC 4.3): entered, exited by outcome, dwell, transitions.

`StageFlow` is an accumulator: stays add (+1) and remove (-1) their contribution
to per-UTC-day buckets, so a late event is revert-then-add, never a rescan, and a
window is the sum of its days' buckets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .dwell import BUCKET_SCALE, HOUR_US, bucket_of, nearest_rank
from .windows import DAY_US, DayRange

# How a stay ended (SPEC 3). The order is the report's field order.
ADVANCED, REGRESSED, WON, LOST = 0, 1, 2, 3
OUTCOME_NAMES = ("advanced", "regressed", "won", "lost")


class _DayFlow:
    """One UTC day of one pipeline. Flat lists and int keys: this is the per-event hot path."""

    __slots__ = ("entered", "exits", "dwell_sum_us", "dwell_hist", "transitions")

    def __init__(self, n_stages: int):
        self.entered = [0] * n_stages
        self.exits = [0] * (4 * n_stages)       # [stage * 4 + outcome]
        self.dwell_sum_us = [0] * n_stages
        self.dwell_hist: dict[int, int] = {}    # [stage * _KEYS + dwell bucket] -> count (zeros allowed)
        self.transitions: dict[int, int] = {}   # [from * _KEYS + to] -> count (zeros allowed)


_KEYS = 1 << 16   # key stride: more than any stage count or dwell bucket number


@dataclass(slots=True)
class StageWindow:
    """One stage's flow over a window."""

    entered: int
    exits: list[int]            # by outcome: advanced, regressed, won, lost
    dwell_sum_us: int
    dwell_hist: dict[int, int]

    @property
    def exited(self) -> int:
        return sum(self.exits)


class StageFlow:
    def __init__(self, n_stages: int):
        self.n_stages = n_stages
        self._days: dict[int, _DayFlow] = {}
        # The last bucket looked up and its day's bounds [_lo, _hi): events come mostly in
        # time order, and finding a bucket by day takes a big-integer division.
        self._last: _DayFlow | None = None
        self._lo = self._hi = 0

    def _day(self, ts_us: int) -> _DayFlow:
        day = ts_us // DAY_US
        bucket = self._days.get(day)
        if bucket is None:
            bucket = self._days[day] = _DayFlow(self.n_stages)
        self._last, self._lo, self._hi = bucket, day * DAY_US, (day + 1) * DAY_US
        return bucket

    def stay_started(self, stage: int, start_us: int, sign: int) -> None:
        day = self._last if self._lo <= start_us < self._hi else self._day(start_us)
        day.entered[stage] += sign

    def stay_ended(self, stage: int, start_us: int, end_us: int, outcome: int, to_stage: int, sign: int) -> None:
        """A stay in `stage` ended at `end_us`; `to_stage` is the next stage of a move (-1 for a close)."""
        day = self._last if self._lo <= end_us < self._hi else self._day(end_us)
        day.exits[stage * 4 + outcome] += sign
        dwell = end_us - start_us
        day.dwell_sum_us[stage] += sign * dwell
        hist = day.dwell_hist
        key = stage * _KEYS + bucket_of(dwell)
        hist[key] = hist.get(key, 0) + sign
        if to_stage >= 0:
            transitions = day.transitions
            key = stage * _KEYS + to_stage
            transitions[key] = transitions.get(key, 0) + sign

    def moved(self, stage: int, start_us: int, ts: int, outcome: int, to_stage: int, sign: int,
              _log=math.log) -> None:
        """A stage change at `ts`: the stay in `stage` ends (ADVANCED or REGRESSED), one in `to_stage` starts.

        The same as stay_ended + stay_started, with one day-bucket look-up and bucket_of
        inlined: the hot path (tests check it agrees with the two).
        """
        day = self._last if self._lo <= ts < self._hi else self._day(ts)
        day.exits[stage * 4 + outcome] += sign
        dwell = ts - start_us
        day.dwell_sum_us[stage] += sign * dwell
        hist = day.dwell_hist
        key = stage * _KEYS + (0 if dwell < HOUR_US else 1 + int(_log(dwell / HOUR_US) * BUCKET_SCALE))
        hist[key] = hist.get(key, 0) + sign
        transitions = day.transitions
        key = stage * _KEYS + to_stage
        transitions[key] = transitions.get(key, 0) + sign
        day.entered[to_stage] += sign

    def window(self, days: DayRange) -> tuple[list[StageWindow], dict[tuple[int, int], int]]:
        """Per-stage totals and transition counts (non-zero only) over the days of a window."""
        n = self.n_stages
        stages = [StageWindow(0, [0, 0, 0, 0], 0, {}) for _ in range(n)]
        transitions: dict[tuple[int, int], int] = {}
        for d in range(days.first, days.last + 1):
            bucket = self._days.get(d)
            if bucket is None:
                continue
            for s, sw in enumerate(stages):
                sw.entered += bucket.entered[s]
                for o in range(4):
                    sw.exits[o] += bucket.exits[s * 4 + o]
                sw.dwell_sum_us += bucket.dwell_sum_us[s]
            for key, c in bucket.dwell_hist.items():
                if c:
                    hist = stages[key // _KEYS].dwell_hist
                    b = key % _KEYS
                    hist[b] = hist.get(b, 0) + c
            for key, c in bucket.transitions.items():
                pair = divmod(key, _KEYS)
                transitions[pair] = transitions.get(pair, 0) + c
        return stages, {k: c for k, c in transitions.items() if c}

    def merge(self, other: StageFlow) -> None:
        """Add another accumulator's contributions (e.g. another worker's or shard's leads)."""
        for d, theirs in other._days.items():
            mine = self._days.get(d)
            if mine is None:                       # never share buckets: `other` lives on
                mine = self._days[d] = _DayFlow(self.n_stages)
            for s in range(self.n_stages):
                mine.entered[s] += theirs.entered[s]
                mine.dwell_sum_us[s] += theirs.dwell_sum_us[s]
            for i, c in enumerate(theirs.exits):
                mine.exits[i] += c
            for key, c in theirs.dwell_hist.items():
                mine.dwell_hist[key] = mine.dwell_hist.get(key, 0) + c
            for key, c in theirs.transitions.items():
                mine.transitions[key] = mine.transitions.get(key, 0) + c

    def drop_days_before(self, day: int) -> None:
        """Forget buckets no window can reach any more (live processor housekeeping)."""
        for d in [d for d in self._days if d < day]:
            del self._days[d]
        self._last, self._lo, self._hi = None, 0, 0


def stage_report(sw: StageWindow) -> dict:
    """The report's per-stage object of a window (SPEC 4.3, 5)."""
    exited = sw.exited
    advanced, regressed, won, lost = sw.exits
    if exited:
        dwell = {
            "mean": sw.dwell_sum_us / (exited * DAY_US),
            "p50": nearest_rank(sw.dwell_hist, exited, 50) / DAY_US,
            "p90": nearest_rank(sw.dwell_hist, exited, 90) / DAY_US,
        }
    else:
        dwell = {"mean": None, "p50": None, "p90": None}
    return {
        "entered": sw.entered,
        "exited": exited,
        "advanced": advanced,
        "regressed": regressed,
        "won": won,
        "lost": lost,
        "conversion_rate": (advanced + won) / exited if exited else None,
        "drop_off_rate": lost / exited if exited else None,
        "dwell_days": dwell,
    }
