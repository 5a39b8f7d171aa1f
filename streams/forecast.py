"""The open pipeline at the start of each UTC day, and forecast against actual (SPEC 4.9, v2).

`open_at_start` of a window is the open pipeline computed from the events before the
window's `from` (00:00 UTC of its first day). An open lead's (stage, amount) changes
only at its events, so the open pipeline at midnight D is the sum, over every change
made by an event at time ts < D, of that change. `OpenHistory` keeps those changes as a
difference array over day starts: a change made at ts counts from the first midnight
after ts, i.e. in bucket ts // DAY + 1, and the open pipeline at the start of day D is
the sum of the buckets up to D. Changes are signed like every other contribution of the
lead fold (streams/lead.py), so a late event re-derives a lead's contribution to every
day's opening figures by revert-then-add, with no rescan.
"""
from __future__ import annotations

from typing import NamedTuple

from pulse.config import PipelineConfig

from .exact import FIXED_CACHE, from_fixed, to_fixed, weighted_sum

_cached = FIXED_CACHE.get
from .windows import DAY_US


class _Change:
    """What the events of one UTC day changed in the open pipeline, per stage."""

    __slots__ = ("count", "amount")

    def __init__(self, n_stages: int):
        self.count = [0] * n_stages
        self.amount = [0] * n_stages     # exact, units of 2**-1074 (exact.py)


class OpenTotals(NamedTuple):
    count: int
    amount: float
    weighted_amount: float

    def as_dict(self) -> dict:
        return {"count": self.count, "amount": self.amount, "weighted_amount": self.weighted_amount}


class OpenHistory:
    def __init__(self, n_stages: int):
        self.n_stages = n_stages
        self._days: dict[int, _Change] = {}     # first midnight after the change (day number) -> changes
        self._last: _Change | None = None       # as in StageFlow: the last bucket and its day's bounds
        self._lo = self._hi = 0

    def _bucket(self, ts_us: int) -> _Change:
        day = ts_us // DAY_US
        b = self._days.get(day + 1)
        if b is None:
            b = self._days[day + 1] = _Change(self.n_stages)
        self._last, self._lo, self._hi = b, day * DAY_US, (day + 1) * DAY_US
        return b

    # These run once per stage change, creation and close: the per-event hot path. The cached
    # bucket is tested inline, and money moves without multiplying a ~1,100-bit sum by `sign`.

    def opened(self, ts_us: int, stage: int, amount: float | None, sign: int) -> None:
        """The lead is open in `stage` from ts (a creation or a reopen)."""
        b = self._last if self._lo <= ts_us < self._hi else self._bucket(ts_us)
        b.count[stage] += sign
        if amount:
            fixed = _cached(amount) or to_fixed(amount)
            if sign > 0:
                b.amount[stage] += fixed
            else:
                b.amount[stage] -= fixed

    def closed(self, ts_us: int, stage: int, amount: float | None, sign: int) -> None:
        """The lead, open in `stage`, closes at ts."""
        b = self._last if self._lo <= ts_us < self._hi else self._bucket(ts_us)
        b.count[stage] -= sign
        if amount:
            fixed = _cached(amount) or to_fixed(amount)
            if sign > 0:
                b.amount[stage] -= fixed
            else:
                b.amount[stage] += fixed

    def moved(self, ts_us: int, from_stage: int, to_stage: int, amount: float | None, sign: int) -> None:
        b = self._last if self._lo <= ts_us < self._hi else self._bucket(ts_us)
        count = b.count
        count[from_stage] -= sign
        count[to_stage] += sign
        if amount:
            fixed = _cached(amount) or to_fixed(amount)
            if sign < 0:
                from_stage, to_stage = to_stage, from_stage
            money = b.amount
            money[from_stage] -= fixed
            money[to_stage] += fixed

    def amount_changed(self, ts_us: int, stage: int, old: float | None, new: float | None, sign: int) -> None:
        """An open lead in `stage` changed its amount at ts (None counts as 0, SPEC 5)."""
        delta = (to_fixed(new) if new else 0) - (to_fixed(old) if old else 0)
        if delta:
            self._bucket(ts_us).amount[stage] += sign * delta

    def at_day_starts(self, days: list[int], pipeline: PipelineConfig) -> dict[int, OpenTotals]:
        """The open pipeline totals (SPEC 4.4) at 00:00 UTC of each given day number."""
        wanted = sorted(set(days))
        count = [0] * self.n_stages
        amount = [0] * self.n_stages
        out: dict[int, OpenTotals] = {}
        keys = sorted(self._days)
        i = 0
        for day in wanted:
            while i < len(keys) and keys[i] <= day:
                b = self._days[keys[i]]
                for s in range(self.n_stages):
                    count[s] += b.count[s]
                    amount[s] += b.amount[s]
                i += 1
            out[day] = OpenTotals(
                sum(count), from_fixed(sum(amount)),
                weighted_sum((st.probability, amount[st.index]) for st in pipeline.stages))
        return out

    def merge(self, other: OpenHistory) -> None:
        for k, theirs in other._days.items():
            mine = self._days.get(k)
            if mine is None:                        # never share buckets: `other` lives on
                mine = self._days[k] = _Change(self.n_stages)
            for s in range(self.n_stages):
                mine.count[s] += theirs.count[s]
                mine.amount[s] += theirs.amount[s]

    # -- the partial-report format (streams/partial.py) ------------------------------------

    def dump(self) -> list:
        return [(k, b.count, [str(a) for a in b.amount]) for k, b in self._days.items()]

    @classmethod
    def load(cls, n_stages: int, rows: list) -> OpenHistory:
        h = cls(n_stages)
        for k, count, amount in rows:
            b = h._days[k] = _Change(n_stages)
            b.count, b.amount = list(count), [int(a) for a in amount]
        return h


def forecast(open_at_start: OpenTotals, won_amount: float) -> dict:
    """SPEC 4.9: what the weighted pipeline at the window's start promised against what was won in it."""
    weighted = open_at_start.weighted_amount
    return {"open_at_start": open_at_start.as_dict(), "attainment": won_amount / weighted if weighted else None}
