"""Stage flow accounting (SPEC 4.3): entered, exited by outcome, dwell, transitions; and
the stock it leaves, the open pipeline at each day's start (4.9, v2).

`StageFlow` is an accumulator: stays add (+1) and remove (-1) their contribution
to per-UTC-day buckets, so a late event is revert-then-add, never a rescan, and a
window is the sum of its days' buckets.

The open pipeline at 00:00 of day D, from the events before D only (SPEC 4.9's
`open_at_start`), is a stock: the sum of what every earlier day's events changed in it.
The count is what entered minus what exited, except for a superseding close (SPEC 3.5),
which moves a stay's end but not the instant the lead left the open pipeline
(`leaves_open=False`): each bucket keeps that correction per stage (`open_fix`, rarely
non-zero), so the hot path pays nothing for counts. Amounts are not in entered/exited:
each bucket keeps their change per stage (`open_amount`) when a lead opens (created,
reopened), moves, closes, or changes its amount while open. They ride on the stay calls
the lead fold makes anyway, which is why they live here: one call per stay change.
"""
from __future__ import annotations

import math
from operator import sub
from dataclasses import dataclass

from .dwell import BUCKET_SCALE, HOUR_US, bucket_of, nearest_rank
from .exact import FIXED_CACHE, to_fixed
from .windows import DAY_US, DayRange

# How a stay ended (SPEC 3). The order is the report's field order.
ADVANCED, REGRESSED, WON, LOST = 0, 1, 2, 3
OUTCOME_NAMES = ("advanced", "regressed", "won", "lost")


class _DayFlow:
    """One UTC day of one pipeline. Flat lists and int keys: this is the per-event hot path."""

    __slots__ = ("entered", "exits", "dwell_sum_us", "dwell_hist", "transitions", "open_fix", "open_amount")

    def __init__(self, n_stages: int):
        self.entered = [0] * n_stages
        self.exits = [0] * (4 * n_stages)       # [stage * 4 + outcome]
        self.dwell_sum_us = [0] * n_stages
        self.dwell_hist: dict[int, int] = {}    # [stage * _KEYS + dwell bucket] -> count (zeros allowed)
        self.transitions: dict[int, int] = {}   # [from * _KEYS + to] -> count (zeros allowed)
        self.open_fix = [0] * n_stages          # open leads per stage: the change not in entered - exits
        self.open_amount = [0] * n_stages       # change of their amounts, exact (units of 2**-1074, exact.py)

    def add(self, other: _DayFlow, sign: int = 1) -> None:
        """self += sign × other, every field (zeros left out: adding 0 to a ~1,100-bit amount, or
        to any int past 2**30, still makes a new integer). Never shares a list with `other`."""
        for s in range(len(self.entered)):
            if c := other.entered[s]:
                self.entered[s] += sign * c
            if c := other.dwell_sum_us[s]:
                self.dwell_sum_us[s] += sign * c
            if c := other.open_fix[s]:
                self.open_fix[s] += sign * c
            if c := other.open_amount[s]:
                self.open_amount[s] += c if sign > 0 else -c
        exits = self.exits
        for i, c in enumerate(other.exits):
            exits[i] += sign * c
        for mine, theirs in ((self.dwell_hist, other.dwell_hist), (self.transitions, other.transitions)):
            get = mine.get
            for key, c in theirs.items():
                mine[key] = get(key, 0) + sign * c

    def minus(self, old: _DayFlow) -> _DayFlow:
        """self - old, a new bucket without the zero entries of its two maps: what a day
        re-summed changed (window_totals.py), in one pass; shares no list with either."""
        d = _DayFlow.__new__(_DayFlow)
        d.entered = list(map(sub, self.entered, old.entered))
        d.exits = list(map(sub, self.exits, old.exits))
        d.dwell_sum_us = list(map(sub, self.dwell_sum_us, old.dwell_sum_us))
        d.open_fix = list(map(sub, self.open_fix, old.open_fix))
        d.open_amount = list(map(sub, self.open_amount, old.open_amount))
        d.dwell_hist = _map_minus(self.dwell_hist, old.dwell_hist)
        d.transitions = _map_minus(self.transitions, old.transitions)
        return d

    def open_count(self) -> list[int]:
        """The change of the open leads per stage during the day."""
        exits = self.exits
        return [self.entered[s] - exits[4 * s] - exits[4 * s + 1] - exits[4 * s + 2] - exits[4 * s + 3] + fix
                for s, fix in enumerate(self.open_fix)]


def _map_minus(mine: dict[int, int], theirs: dict[int, int]) -> dict[int, int]:
    """mine - theirs, key by key, without zeros."""
    get = theirs.get
    out = {key: c - o for key, c in mine.items() if c != (o := get(key, 0))}
    for key in theirs.keys() - mine.keys():
        if c := theirs[key]:
            out[key] = -c
    return out


_KEYS = 1 << 16   # key stride: more than any stage count or dwell bucket number
_cached = FIXED_CACHE.get   # to_fixed's memo: `_cached(x) or to_fixed(x)` (x != 0) saves a call


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
        # Days changed since the last take_touched() (window_totals.py reads them), marked off
        # the hot path: when `_day` looks a bucket up (the cached `_last` is always marked).
        self.touched: set[int] = set()

    def _day(self, ts_us: int) -> _DayFlow:
        day = ts_us // DAY_US
        bucket = self._days.get(day)
        if bucket is None:
            bucket = self._days[day] = _DayFlow(self.n_stages)
        self._last, self._lo, self._hi = bucket, day * DAY_US, (day + 1) * DAY_US
        self.touched.add(day)
        return bucket

    def take_touched(self) -> set[int]:
        """The days whose buckets may have changed (or gone) since the last call; clears the marks."""
        return take_touched(self)

    def stay_started(self, stage: int, start_us: int, amount: float | None, sign: int) -> None:
        """The lead is open in `stage` from `start_us` (created or reopened), with `amount`."""
        day = self._last if self._lo <= start_us < self._hi else self._day(start_us)
        day.entered[stage] += sign
        if amount:
            fixed = _cached(amount) or to_fixed(amount)
            if sign > 0:                        # no multiplication of a ~1,100-bit sum by sign
                day.open_amount[stage] += fixed
            else:
                day.open_amount[stage] -= fixed

    def stay_ended(self, stage: int, start_us: int, end_us: int, outcome: int, to_stage: int, sign: int,
                   amount: float | None = None, leaves_open: bool = True) -> None:
        """A stay in `stage` ended at `end_us`; `to_stage` is the next stage of a move (-1 for a
        close). `leaves_open`: the lead left the open pipeline then, with `amount` (see above)."""
        day = self._last if self._lo <= end_us < self._hi else self._day(end_us)
        day.exits[stage * 4 + outcome] += sign
        if not leaves_open:
            day.open_fix[stage] += sign          # the exit above did not take it out of the open pipeline
        elif amount:
            fixed = _cached(amount) or to_fixed(amount)
            if sign > 0:
                day.open_amount[stage] -= fixed
            else:
                day.open_amount[stage] += fixed
        dwell = end_us - start_us
        day.dwell_sum_us[stage] += sign * dwell
        hist = day.dwell_hist
        key = stage * _KEYS + bucket_of(dwell)
        hist[key] = hist.get(key, 0) + sign
        if to_stage >= 0:
            transitions = day.transitions
            key = stage * _KEYS + to_stage
            transitions[key] = transitions.get(key, 0) + sign

    def moved(self, stage: int, start_us: int, ts: int, outcome: int, to_stage: int, amount: float | None,
              sign: int, _log=math.log) -> None:
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
        if amount:
            fixed = _cached(amount) or to_fixed(amount)
            if sign < 0:
                stage, to_stage = to_stage, stage
            money = day.open_amount
            money[stage] -= fixed
            money[to_stage] += fixed

    def open_amount_changed(self, ts: int, stage: int, old: float | None, new: float | None, sign: int) -> None:
        """An open lead in `stage` changed its amount at ts (None counts as 0, SPEC 5)."""
        delta = ((_cached(new) or to_fixed(new)) if new else 0) - ((_cached(old) or to_fixed(old)) if old else 0)
        if delta:
            day = self._last if self._lo <= ts < self._hi else self._day(ts)
            if sign > 0:
                day.open_amount[stage] += delta
            else:
                day.open_amount[stage] -= delta

    def open_at_day_starts(self, days: list[int]) -> dict[int, tuple[list[int], list[int]]]:
        """The open pipeline at 00:00 UTC of each given day number, from the events before it:
        per stage, (open leads, exact amount sums)."""
        count = [0] * self.n_stages
        amount = [0] * self.n_stages
        out = {}
        keys = sorted(self._days)
        i = 0
        for day in sorted(set(days)):
            while i < len(keys) and keys[i] < day:
                b = self._days[keys[i]]
                for s, change in enumerate(b.open_count()):
                    count[s] += change
                    amount[s] += b.open_amount[s]
                i += 1
            out[day] = (list(count), list(amount))
        return out

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
            mine.add(theirs)

    def drop_days_before(self, day: int) -> None:
        """Forget buckets no window can reach any more (live processor housekeeping). Their
        open-pipeline changes are a running stock, so they are kept, summed into day - 1."""
        old = [d for d in self._days if d < day]
        if not old:
            return
        carry = _DayFlow(self.n_stages)
        self.touched.update(old)
        self.touched.add(day - 1)
        for d in old:
            b = self._days.pop(d)
            for s, change in enumerate(b.open_count()):
                carry.open_fix[s] += change         # the carry bucket has no entered/exits
                carry.open_amount[s] += b.open_amount[s]
        self._days[day - 1] = carry
        self._last, self._lo, self._hi = None, 0, 0


def take_touched(flow) -> set[int]:
    """StageFlow/DealFlow.take_touched (`flow`: either). The fast path writes into the cached
    `_last` bucket without a mark; forgetting the cache sends the next write through `_day`,
    which marks it (one slow look-up per source and take, none per event)."""
    touched = flow.touched
    flow.touched = set()
    flow._last, flow._lo, flow._hi = None, 0, 0
    return touched


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
