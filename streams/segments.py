"""Creations and closes per owner, team and lead source, per UTC day (SPEC 4.8, v2).

A creation counts for the lead's owner/team/source just after its creating event, a
close (not superseded) for those just after its closing event; both are fixed when
the event is applied (streams/lead.py), so a later reassignment leaves them where they
happened. Like `DealFlow`, an accumulator of signed contributions in day buckets: a
late event is revert-then-add through the lead fold, never a rescan.
"""
from __future__ import annotations

from .deals import DealWindow
from .exact import to_fixed
from .windows import DAY_US, DayRange

#: the dimensions of SPEC 4.8, in report order; a key's first item is its index here
DIMENSIONS = ("owner", "team", "source")
OWNER, TEAM, SOURCE = 0, 1, 2

# One value's day: [created, won, lost, won_amount (exact, see exact.py), cycle_us]
_CREATED, _WON, _LOST, _WON_AMOUNT, _CYCLE = range(5)

Key = tuple[int, "str | None"]      # (dimension index, value); None: never given


class SegmentFlow:
    def __init__(self) -> None:
        self._days: dict[int, dict[Key, list[int]]] = {}

    def _counts(self, ts_us: int, key: Key) -> list[int]:
        day = self._days.get(ts_us // DAY_US)
        if day is None:
            day = self._days[ts_us // DAY_US] = {}
        counts = day.get(key)
        if counts is None:
            counts = day[key] = [0, 0, 0, 0, 0]
        return counts

    def created(self, ts_us: int, owner: str | None, team: str | None, source: str | None, sign: int) -> None:
        for key in ((OWNER, owner), (TEAM, team), (SOURCE, source)):
            self._counts(ts_us, key)[_CREATED] += sign

    def closed(self, ts_us: int, won: bool, amount: float | None, created_us: int,
               owner: str | None, team: str | None, source: str | None, sign: int) -> None:
        fixed = sign * to_fixed(amount) if won and amount else 0
        for key in ((OWNER, owner), (TEAM, team), (SOURCE, source)):
            counts = self._counts(ts_us, key)
            if won:
                counts[_WON] += sign
                counts[_WON_AMOUNT] += fixed
                counts[_CYCLE] += sign * (ts_us - created_us)
            else:
                counts[_LOST] += sign

    def window(self, days: DayRange) -> list[dict[str | None, DealWindow]]:
        """Per dimension (DIMENSIONS order): value -> its creations and closes in the window,
        for the values with at least one (SPEC 5)."""
        totals: dict[Key, list[int]] = {}
        for d in range(days.first, days.last + 1):
            bucket = self._days.get(d)
            if bucket is None:
                continue
            for key, c in bucket.items():
                t = totals.get(key)
                if t is None:
                    totals[key] = list(c)
                else:
                    for i in range(5):
                        t[i] += c[i]
        out: list[dict[str | None, DealWindow]] = [{} for _ in DIMENSIONS]
        for (dim, value), c in totals.items():
            if c[_CREATED] or c[_WON] or c[_LOST]:
                out[dim][value] = DealWindow(created=c[_CREATED], won=c[_WON], lost=c[_LOST],
                                             won_amount=c[_WON_AMOUNT], cycle_us=c[_CYCLE])
        return out

    def merge(self, other: SegmentFlow) -> None:
        """Add another accumulator's contributions (another shard's or worker's leads)."""
        for d, theirs in other._days.items():
            mine = self._days.get(d)
            if mine is None:
                mine = self._days[d] = {}
            for key, c in theirs.items():
                m = mine.get(key)
                if m is None:                       # never share lists: `other` lives on
                    mine[key] = list(c)
                else:
                    for i in range(5):
                        m[i] += c[i]

    # -- the partial-report format (streams/partial.py) ------------------------------------

    def dump(self) -> list:
        return [(d, [(dim, value, c[0], c[1], c[2], str(c[3]), c[4]) for (dim, value), c in bucket.items()])
                for d, bucket in self._days.items()]

    @classmethod
    def load(cls, rows: list) -> SegmentFlow:
        flow = cls()
        for d, entries in rows:
            flow._days[d] = {(dim, value): [created, won, lost, int(won_amount), cycle]
                             for dim, value, created, won, lost, won_amount, cycle in entries}
        return flow


def sort_values(values) -> list:
    """SPEC 5: by value (UTF-8 byte order, which is code point order), null last."""
    return sorted(values, key=lambda v: (v is None, v or ""))
