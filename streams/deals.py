"""Lead and deal counts per UTC day: creations, qualifications and closes (SPEC 4.2), in
total and per owner, team and lead source (4.8, v2).

Like `StageFlow`, an accumulator of signed contributions in day buckets. A creation
counts for the lead's owner/team/source just after its creating event, a close (not
superseded) for those just after its closing event: the lead fold (lead.py) passes
them in when it applies the event, so a later reassignment leaves them where they
happened, and a late event re-derives them by revert-then-add like everything else.
Totals and segments share one bucket and one call per creation or close: this is the
per-event hot path.
"""
from __future__ import annotations

from dataclasses import dataclass

from .exact import to_fixed
from .flow import take_touched
from .windows import DAY_US, DayRange

#: the dimensions of SPEC 4.8, in report order
DIMENSIONS = ("owner", "team", "source")

# One segment value's counts in a day: [created, won, lost, won_amount (exact), cycle_us]
_CREATED, _WON, _LOST, _WON_AMOUNT, _CYCLE = range(5)


class _DayDeals:
    __slots__ = ("created", "qualified", "won", "lost", "won_amount", "cycle_us", "segments")

    def __init__(self) -> None:
        self.created = 0
        self.qualified = 0
        self.won = 0
        self.lost = 0
        self.won_amount = 0     # exact, units of 2**-1074 (see exact.py)
        self.cycle_us = 0       # Σ (close time − creation time) of won closes
        # (owner, team, source) (None: never given) -> counts, see _CREATED...: one dict look-up
        # per creation or close; split per dimension when a report asks (`segments`).
        self.segments: dict[tuple, list[int]] = {}

    def add(self, other: _DayDeals, sign: int = 1) -> None:
        """self += sign × other, every field and segment (zero amounts left out, as in
        _DayFlow.add). Never shares a list with `other`."""
        self.created += sign * other.created
        self.qualified += sign * other.qualified
        self.won += sign * other.won
        self.lost += sign * other.lost
        if other.won_amount:
            self.won_amount += other.won_amount if sign > 0 else -other.won_amount
        if other.cycle_us:
            self.cycle_us += sign * other.cycle_us
        segments = self.segments
        for key, c in other.segments.items():
            t = segments.get(key)
            if t is None:
                t = segments[key] = [0, 0, 0, 0, 0]
            t[0] += sign * c[0]
            t[1] += sign * c[1]
            t[2] += sign * c[2]
            if c[3]:                                # the won amount: ~1,100 bits, mostly 0
                t[3] += c[3] if sign > 0 else -c[3]
            if c[4]:
                t[4] += sign * c[4]


    def minus(self, old: _DayDeals) -> _DayDeals:
        """self - old, a new bucket holding only the segments that differ: what a day re-summed
        changed (window_totals.py). One pass, the unchanged segments passed over by a list
        comparison in C; shares no list with either."""
        d = _DayDeals()
        d.created = self.created - old.created
        d.qualified = self.qualified - old.qualified
        d.won = self.won - old.won
        d.lost = self.lost - old.lost
        d.won_amount = self.won_amount - old.won_amount
        d.cycle_us = self.cycle_us - old.cycle_us
        mine, theirs, out = self.segments, old.segments, d.segments
        get = theirs.get
        for key, c in mine.items():
            o = get(key)
            if o is None:
                if any(c):
                    out[key] = list(c)
            elif c != o:
                out[key] = [c[0] - o[0], c[1] - o[1], c[2] - o[2], c[3] - o[3], c[4] - o[4]]
        for key in theirs.keys() - mine.keys():
            if any(o := theirs[key]):
                out[key] = [-x for x in o]
        return d

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
        self.touched: set[int] = set()          # as in StageFlow: days changed since take_touched()

    def _day(self, ts_us: int) -> _DayDeals:
        day = ts_us // DAY_US
        bucket = self._days.get(day)
        if bucket is None:
            bucket = self._days[day] = _DayDeals()
        self._last, self._lo, self._hi = bucket, day * DAY_US, (day + 1) * DAY_US
        self.touched.add(day)
        return bucket

    def take_touched(self) -> set[int]:
        """The days whose buckets may have changed (or gone) since the last call; clears the marks."""
        return take_touched(self)

    def lead_created(self, ts_us: int, segment: tuple, sign: int) -> None:
        """A lead was created at ts_us with `segment` = (owner, team, source) just after."""
        day = self._last if self._lo <= ts_us < self._hi else self._day(ts_us)
        day.created += sign
        c = day.segments.get(segment)
        if c is None:
            c = day.segments[segment] = [0, 0, 0, 0, 0]
        c[_CREATED] += sign

    def lead_qualified(self, ts_us: int, sign: int) -> None:
        (self._last if self._lo <= ts_us < self._hi else self._day(ts_us)).qualified += sign

    def closed(self, ts_us: int, won: bool, amount: float | None, created_us: int, segment: tuple,
               sign: int) -> None:
        """A (not superseded) close at ts_us, attributed to `segment` = (owner, team, source)."""
        day = self._last if self._lo <= ts_us < self._hi else self._day(ts_us)
        c = day.segments.get(segment)
        if c is None:
            c = day.segments[segment] = [0, 0, 0, 0, 0]
        if won:
            # No multiplication of a ~1,100-bit exact amount by `sign` (exact.py): a negation.
            fixed = (to_fixed(amount) if sign > 0 else -to_fixed(amount)) if amount else 0
            cycle = sign * (ts_us - created_us)
            day.won += sign
            c[_WON] += sign
            if fixed:
                day.won_amount += fixed
                c[_WON_AMOUNT] += fixed
            day.cycle_us += cycle
            c[_CYCLE] += cycle
        else:
            day.lost += sign
            c[_LOST] += sign

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

    def segments(self, days: DayRange) -> list[dict[str | None, DealWindow]]:
        """Per dimension (DIMENSIONS order): value -> its creations and closes in the window,
        for the values with at least one of them (SPEC 5)."""
        combined: dict[tuple, list[int]] = {}
        for d in range(days.first, days.last + 1):
            b = self._days.get(d)
            if b is None:
                continue
            get = combined.get
            for key, c in b.segments.items():           # unrolled: days x segments
                t = get(key)
                if t is None:
                    combined[key] = c.copy()
                else:
                    t[0] += c[0]
                    t[1] += c[1]
                    t[2] += c[2]
                    t[3] += c[3]
                    t[4] += c[4]
        return split_segments(combined)

    def merge(self, other: DealFlow) -> None:
        """Add another accumulator's contributions."""
        for d, theirs in other._days.items():
            mine = self._days.get(d)
            if mine is None:                       # never share buckets: `other` lives on
                mine = self._days[d] = _DayDeals()
            mine.add(theirs)

    def drop_days_before(self, day: int) -> None:
        for d in [d for d in self._days if d < day]:
            del self._days[d]
            self.touched.add(d)
        self._last, self._lo, self._hi = None, 0, 0

    # -- the partial-report format (streams/partial.py): exact sums as decimal strings --------

    def dump(self) -> list:
        return [(d, b.created, b.qualified, b.won, b.lost, str(b.won_amount), str(b.cycle_us),
                 [(*segment, c[0], c[1], c[2], str(c[3]), c[4]) for segment, c in b.segments.items()])
                for d, b in self._days.items()]

    @classmethod
    def load(cls, rows: list) -> DealFlow:
        flow = cls()
        for d, created, qualified, won, lost, won_amount, cycle_us, segments in rows:
            b = flow._days[d] = _DayDeals()
            b.created, b.qualified, b.won, b.lost = created, qualified, won, lost
            b.won_amount, b.cycle_us = int(won_amount), int(cycle_us)
            b.segments = {(owner, team, source): [c0, c1, c2, int(c3), c4]
                          for owner, team, source, c0, c1, c2, c3, c4 in segments}
        return flow


def split_segments(combined: dict[tuple, list[int]]) -> list[dict[str | None, DealWindow]]:
    """(owner, team, source) -> counts, as DealFlow.segments answers: per dimension, value ->
    its counts, for the values with at least one creation or close."""
    totals: list[dict[str | None, list[int]]] = [{}, {}, {}]
    owners, teams, sources = totals
    for (owner, team, source), counts in combined.items():     # unrolled: a build splits ~600 a window
        for by_value, value in ((owners, owner), (teams, team), (sources, source)):
            t = by_value.get(value)
            if t is None:
                by_value[value] = counts.copy()
            else:
                t[0] += counts[0]
                t[1] += counts[1]
                t[2] += counts[2]
                t[3] += counts[3]
                t[4] += counts[4]
    return [{value: DealWindow(created=c[_CREATED], won=c[_WON], lost=c[_LOST], won_amount=c[_WON_AMOUNT],
                               cycle_us=c[_CYCLE])
             for value, c in by_value.items() if c[_CREATED] or c[_WON] or c[_LOST]}
            for by_value in totals]


def sort_values(values) -> list:
    """SPEC 5's order of segment entries: by value (UTF-8 byte order = code point order), null last."""
    return sorted(values, key=lambda v: (v is None, v or ""))
