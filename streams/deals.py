"""Lead and deal counts per UTC day (SPEC 4.2): creations, qualifications, closes.

Like `StageFlow`, an accumulator of signed contributions in day buckets.
"""
from __future__ import annotations

from dataclasses import dataclass

from .exact import to_fixed
from .windows import DAY_US, DayRange


class _DayDeals:
    __slots__ = ("created", "qualified", "won", "lost", "won_amount", "cycle_us")

    def __init__(self) -> None:
        self.created = 0
        self.qualified = 0
        self.won = 0
        self.lost = 0
        self.won_amount = 0     # exact, units of 2**-1074 (see exact.py)
        self.cycle_us = 0       # Σ (close time − creation time) of won closes


@dataclass(slots=True)
class DealWindow:
    created: int = 0
    qualified: int = 0
    won: int = 0
    lost: int = 0
    won_amount: int = 0
    cycle_us: int = 0


class DealFlow:
    def __init__(self) -> None:
        self._days: dict[int, _DayDeals] = {}
        self._last: _DayDeals | None = None     # as in StageFlow: the last bucket and its day's bounds
        self._lo = self._hi = 0

    def _day(self, ts_us: int) -> _DayDeals:
        if self._lo <= ts_us < self._hi:
            return self._last
        day = ts_us // DAY_US
        bucket = self._days.get(day)
        if bucket is None:
            bucket = self._days[day] = _DayDeals()
        self._last, self._lo, self._hi = bucket, day * DAY_US, (day + 1) * DAY_US
        return bucket

    def lead_created(self, ts_us: int, sign: int) -> None:
        self._day(ts_us).created += sign

    def lead_qualified(self, ts_us: int, sign: int) -> None:
        self._day(ts_us).qualified += sign

    def closed(self, ts_us: int, won: bool, amount: float | None, created_us: int, sign: int) -> None:
        day = self._day(ts_us)
        if won:
            day.won += sign
            if amount:
                day.won_amount += sign * to_fixed(amount)
            day.cycle_us += sign * (ts_us - created_us)
        else:
            day.lost += sign

    def window(self, days: DayRange) -> DealWindow:
        total = DealWindow()
        for d in range(days.first, days.last + 1):
            b = self._days.get(d)
            if b is None:
                continue
            total.created += b.created
            total.qualified += b.qualified
            total.won += b.won
            total.lost += b.lost
            total.won_amount += b.won_amount
            total.cycle_us += b.cycle_us
        return total

    def merge(self, other: DealFlow) -> None:
        """Add another accumulator's contributions."""
        for d, theirs in other._days.items():
            mine = self._days.get(d)
            if mine is None:                       # never share buckets: `other` lives on
                mine = self._days[d] = _DayDeals()
            for f in _DayDeals.__slots__:
                setattr(mine, f, getattr(mine, f) + getattr(theirs, f))

    def drop_days_before(self, day: int) -> None:
        for d in [d for d in self._days if d < day]:
            del self._days[d]
        self._last, self._lo, self._hi = None, 0, 0
