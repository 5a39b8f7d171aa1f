"""Rolling windows as whole UTC days (SPEC 4.1)."""
from __future__ import annotations

from typing import NamedTuple

DAY_US = 86_400_000_000


def day_of(ts_us: int) -> int:
    """The UTC day number (days since 1970-01-01) containing `ts_us`."""
    return ts_us // DAY_US


class DayRange(NamedTuple):
    """Days first..last inclusive; `start_us` is 00:00:00 of the first day."""

    first: int
    last: int

    @property
    def start_us(self) -> int:
        return self.first * DAY_US


def window_days(as_of_us: int, days: int) -> DayRange:
    """The N whole UTC days ending with the day that contains T."""
    last = day_of(as_of_us)
    return DayRange(last - days + 1, last)


def previous_window_days(as_of_us: int, days: int) -> DayRange:
    """[from - N days, from): the N days before the window."""
    current = window_days(as_of_us, days)
    return DayRange(current.first - days, current.first - 1)
