"""Cross-partition window sums kept up to date by deltas, for a snapshot built in process.

A report over several partitions used to merge every partition's `StageFlow` and
`DealFlow` (all their day buckets) into fresh ones and sum each window's days again.
`FlowTotals` and `DealTotals` answer the same read calls with the same results, at a
cost that follows what changed since the previous `refresh`:

* each source marks the days it changed (`take_touched`: off its per-event fast path);
  a refresh re-sums only those days over the sources into the merged day buckets
  (a new bucket per changed day, never shared with a source; a day no source holds any
  more is gone). A change in the set of sources (by identity: a partition assigned,
  revoked or rebuilt) re-sums every day once.
* every window range asked for keeps its running total: a changed day inside it adds
  (new merged bucket - old); when the range moves with T, the days that left are
  subtracted and the days that entered added; a first request (or a jump of more than
  half its length) sums its days.
* the open stock (`open_at_day_starts`) is a running total of every merged day's open
  change; the stock at 00:00 of day D is that total less the changes of the days >= D.

Exact integers throughout, so the sums equal the merged accumulators' to the unit. The
totals may hold zero counts where a merge of day buckets holds none; the answers drop them
exactly where StageFlow.window and DealFlow.segments drop theirs (every day count is the
true count of its stays, never negative, so a zero total means no contribution at all).

A source's marks have one reader: one FlowTotals (DealTotals) per set of sources.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, Sequence, TypeVar

from .deals import DealFlow, DealWindow, _DayDeals, split_segments
from .flow import _KEYS, StageFlow, StageWindow, _DayFlow
from .windows import DayRange

B = TypeVar("B")        # a day bucket: _DayFlow or _DayDeals

_MAX_RANGES = 8         # the report asks 3 windows, the LVR's 30 days and the 30 before


class _Range(Generic[B]):
    __slots__ = ("first", "last", "total")

    def __init__(self, first: int, last: int, total: B):
        self.first, self.last, self.total = first, last, total


class _RangeTotals(Generic[B]):
    """Running totals of day ranges over the merged buckets, the most recently used first."""

    def __init__(self, zero: Callable[[], B], add: Callable[[B, B, int], None]):
        self._zero, self._add = zero, add
        self._ranges: list[_Range[B]] = []

    def day_changed(self, day: int, delta: B) -> None:
        for r in self._ranges:
            if r.first <= day <= r.last:
                self._add(r.total, delta, 1)

    def total(self, days: DayRange, merged: dict[int, B]) -> B:
        """The sum of the merged buckets of `days` (kept: do not change it)."""
        first, last = days.first, days.last
        length = last - first + 1
        ranges = self._ranges
        best = None
        for r in ranges:
            if r.last - r.first + 1 == length and 2 * abs(r.first - first) < length:
                if best is None or abs(r.first - first) < abs(best.first - first):
                    best = r
        add = self._add
        if best is None:                        # a first request, or a jump: sum its days
            best = _Range(first, last, self._zero())
            for d in range(first, last + 1):
                if (b := merged.get(d)) is not None:
                    add(best.total, b, 1)
            if len(ranges) >= _MAX_RANGES:
                ranges.pop()
        else:                                   # move it: the days that left out, those that entered in
            ranges.remove(best)
            old = range(best.first, best.last + 1)
            for d in old:
                if not first <= d <= last and (b := merged.get(d)) is not None:
                    add(best.total, b, -1)
            for d in range(first, last + 1):
                if d not in old and (b := merged.get(d)) is not None:
                    add(best.total, b, 1)
            best.first, best.last = first, last
        ranges.insert(0, best)
        return best.total


class _MergedDays(Generic[B]):
    """Σ over the sources of their bucket of each day, re-summed for the days they changed."""

    def __init__(self, zero: Callable[[], B], add: Callable[[B, B, int], None], minus: Callable[[B, B], B]):
        self._zero, self._add, self._minus = zero, add, minus
        self._sources: list = []
        self._pending: set[int] = set()         # days taken from the sources, not yet re-summed
        self.days: dict[int, B] = {}
        self.ranges = _RangeTotals(zero, add)

    def refresh(self, sources: Sequence[StageFlow] | Sequence[DealFlow],
                on_change: Callable[[B], None] | None = None) -> None:
        for _ in self.refresh_steps(sources, on_change, None):
            pass

    def refresh_steps(self, sources: Sequence[StageFlow] | Sequence[DealFlow],
                      on_change: Callable[[B], None] | None, days_per_step: int | None) -> Iterator[None]:
        """`refresh` a few days at a time (None: all at once), yielding between. The sources may
        change in between (a day touched again is marked again and re-summed at the next
        refresh); the days not yet re-summed stay pending when the caller stops iterating (the
        next refresh takes them), so stopping early is always safe. A refresh run in between
        ends this one (at its next step)."""
        pending = self._pending
        for s in sources:
            pending |= s.take_touched()
        if {id(s) for s in sources} != {id(s) for s in self._sources}:
            pending.update(self.days)                  # the days of sources gone
            for s in sources:
                pending.update(s._days)                # and of sources new
        mine = self._sources = list(sources)
        add, days = self._add, self.days
        done = 0
        while pending:
            if days_per_step and done and done % days_per_step == 0:
                yield
                if self._sources is not mine:           # another refresh ran meanwhile (perhaps other sources)
                    return
            d = pending.pop()
            done += 1
            new = None
            for s in sources:
                if (b := s._days.get(d)) is not None:
                    if new is None:
                        new = self._zero()
                    add(new, b, 1)
            old = days.pop(d, None)
            if new is not None:
                days[d] = new
            if old is None and new is None:
                continue
            # new - old once, without its zero entries: a late event changes a few keys of a day
            delta = self._minus(new if new is not None else self._zero(), old if old is not None else self._zero())
            self.ranges.day_changed(d, delta)
            if on_change is not None:
                on_change(delta)

    def total(self, days: DayRange) -> B:
        return self.ranges.total(days, self.days)


class _Totals:
    """What FlowTotals and DealTotals share: their merged day buckets."""

    _merged: _MergedDays

    def slide(self, days: DayRange) -> None:
        """Move the running total nearest `days` to it (what `window(days)` would do first)."""
        self._merged.total(days)


class FlowTotals(_Totals):
    """StageFlow's read API (window, open_at_day_starts) over the sum of several StageFlows."""

    def __init__(self, n_stages: int) -> None:
        self.n_stages = n_stages
        self._merged: _MergedDays[_DayFlow] = _MergedDays(lambda: _DayFlow(n_stages), _DayFlow.add, _DayFlow.minus)
        self._open_count = [0] * n_stages       # Σ of every merged day's open change
        self._open_amount = [0] * n_stages

    def refresh(self, sources: Sequence[StageFlow]) -> None:
        """Take what changed in the sources since the last refresh."""
        self._merged.refresh(sources, self._open_changed)

    def refresh_steps(self, sources: Sequence[StageFlow], days_per_step: int) -> Iterator[None]:
        """`refresh` in steps of a few days (_MergedDays.refresh_steps)."""
        return self._merged.refresh_steps(sources, self._open_changed, days_per_step)

    def _open_changed(self, delta: _DayFlow) -> None:
        count, amount = self._open_count, self._open_amount
        for s, change in enumerate(delta.open_count()):
            count[s] += change
            amount[s] += delta.open_amount[s]

    def window(self, days: DayRange) -> tuple[list[StageWindow], dict[tuple[int, int], int]]:
        """== StageFlow.window(days) of the sources merged."""
        t = self._merged.total(days)
        hists: list[dict[int, int]] = [{} for _ in range(self.n_stages)]
        for key, c in t.dwell_hist.items():
            if c:
                hists[key // _KEYS][key % _KEYS] = c
        stages = [StageWindow(t.entered[s], t.exits[4 * s:4 * s + 4], t.dwell_sum_us[s], hists[s])
                  for s in range(self.n_stages)]
        return stages, {divmod(key, _KEYS): c for key, c in t.transitions.items() if c}

    def open_at_day_starts(self, days: list[int]) -> dict[int, tuple[list[int], list[int]]]:
        """== StageFlow.open_at_day_starts(days) of the sources merged: the running stock less
        the changes of the days at or after each day (the windows' starts: few days)."""
        wanted = sorted(set(days))
        if not wanted:
            return {}
        count, amount = list(self._open_count), list(self._open_amount)
        merged = self._merged.days
        later = sorted((d for d in merged if d >= wanted[0]), reverse=True)
        out = {}
        i = 0
        for day in reversed(wanted):
            while i < len(later) and later[i] >= day:
                b = merged[later[i]]
                for s, change in enumerate(b.open_count()):
                    count[s] -= change
                    amount[s] -= b.open_amount[s]
                i += 1
            out[day] = (list(count), list(amount))
        return {day: out[day] for day in wanted}


class DealTotals(_Totals):
    """DealFlow's read API (window, segments) over the sum of several DealFlows."""

    def __init__(self) -> None:
        self._merged: _MergedDays[_DayDeals] = _MergedDays(_DayDeals, _DayDeals.add, _DayDeals.minus)

    def refresh(self, sources: Sequence[DealFlow]) -> None:
        """Take what changed in the sources since the last refresh."""
        self._merged.refresh(sources)

    def refresh_steps(self, sources: Sequence[DealFlow], days_per_step: int) -> Iterator[None]:
        """`refresh` in steps of a few days (_MergedDays.refresh_steps)."""
        return self._merged.refresh_steps(sources, None, days_per_step)

    def window(self, days: DayRange) -> DealWindow:
        """== DealFlow.window(days) of the sources merged."""
        t = self._merged.total(days)
        return DealWindow(t.created, t.qualified, t.won, t.lost, t.won_amount, t.cycle_us)

    def segments(self, days: DayRange) -> list[dict[str | None, DealWindow]]:
        """== DealFlow.segments(days) of the sources merged."""
        return split_segments(self._merged.total(days).segments)
