"""Stage flow accounting (SPEC 4.3): entered, exited by outcome, dwell, transitions.

`StageFlow` is an accumulator: stays add (+1) and remove (-1) their contribution
to per-UTC-day buckets, so a late event is revert-then-add, never a rescan, and a
window is the sum of its days' buckets.
"""
from __future__ import annotations

from dataclasses import dataclass

from .dwell import bucket_of, nearest_rank
from .windows import DAY_US, DayRange

# How a stay ended (SPEC 3). The order is the report's field order.
ADVANCED, REGRESSED, WON, LOST = 0, 1, 2, 3
OUTCOME_NAMES = ("advanced", "regressed", "won", "lost")


class _DayFlow:
    """One UTC day of one pipeline, every list indexed by stage."""

    __slots__ = ("entered", "exits", "dwell_sum_us", "dwell_hist", "transitions")

    def __init__(self, n_stages: int):
        self.entered = [0] * n_stages
        self.exits = [0] * (4 * n_stages)       # [stage * 4 + outcome]
        self.dwell_sum_us = [0] * n_stages
        self.dwell_hist: list[dict[int, int]] = [{} for _ in range(n_stages)]
        self.transitions: dict[tuple[int, int], int] = {}


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

    def _day(self, ts_us: int) -> _DayFlow:
        day = ts_us // DAY_US
        bucket = self._days.get(day)
        if bucket is None:
            bucket = self._days[day] = _DayFlow(self.n_stages)
        return bucket

    def stay_started(self, stage: int, start_us: int, sign: int) -> None:
        self._day(start_us).entered[stage] += sign

    def stay_ended(self, stage: int, start_us: int, end_us: int, outcome: int, to_stage: int, sign: int) -> None:
        """A stay in `stage` ended at `end_us`; `to_stage` is the next stage of a move (-1 for a close)."""
        day = self._day(end_us)
        day.exits[stage * 4 + outcome] += sign
        dwell = end_us - start_us
        day.dwell_sum_us[stage] += sign * dwell
        hist = day.dwell_hist[stage]
        b = bucket_of(dwell)
        left = hist.get(b, 0) + sign
        if left:
            hist[b] = left
        else:
            del hist[b]
        if to_stage >= 0:
            key = (stage, to_stage)
            left = day.transitions.get(key, 0) + sign
            if left:
                day.transitions[key] = left
            else:
                del day.transitions[key]

    def window(self, days: DayRange) -> tuple[list[StageWindow], dict[tuple[int, int], int]]:
        """Per-stage totals and transition counts over the days of a window."""
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
                for b, c in bucket.dwell_hist[s].items():
                    sw.dwell_hist[b] = sw.dwell_hist.get(b, 0) + c
            for key, c in bucket.transitions.items():
                transitions[key] = transitions.get(key, 0) + c
        return stages, {k: c for k, c in transitions.items() if c}

    def drop_days_before(self, day: int) -> None:
        """Forget buckets no window can reach any more (live processor housekeeping)."""
        for d in [d for d in self._days if d < day]:
            del self._days[d]


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
