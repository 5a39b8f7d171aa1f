"""The stale leads of several OpenIndexes at T, kept up to date between reads (OpenSums).

A lead is stale at T when its stay started before T - stale_after (open_index.py). Between
two reads at T0 <= T1, the stale set changes by:

- the stays that crossed their stage's cut, T0 - limit <= stay_start < T1 - limit: a slice
  of each stage's stays (bisection), the live ones added;
- the leads whose entry changed (closed, moved, new stay, owner/team/source/amount) and
  that were stale at T0 or are in a stay that was already past the cut at T0: the index
  names them (`OpenIndex.changed`, a set add per such change; `OpenIndex.mark_before` =
  T0 - the shortest limit), each one re-read. Any other changed lead was not stale at T0,
  and its stay, if stale at T1, is among those that crossed their cut.

So a read costs per change and per crossing stay, not per stale lead: the stale list (in the
report's order), the stale starts per stage (levels by bisection) and the stale leads per
owner, team and source are kept, not rebuilt. An index read for the first time (or whose
changes another reader took, or T going back) is read whole.
Pure: no clock, no I/O. One reader per index: a second one makes both read it whole.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import Counter
from itertools import compress, islice, repeat
from operator import itemgetter, lt
from typing import Iterator, Sequence

from pulse.schemas.config import PipelineConfig

from .open_index import AMOUNT, OWNER, STAGE, STAY_START, OpenIndex

__all__ = ["StaleLeads"]

_STAY_ORDER = itemgetter(0, 1)
_ROW_STAY_START = itemgetter(STAY_START)
_CLOSED = (0, 1 << 80)      # the row of a lead no longer held: its "stay start" never stale
_BULK = 64          # more stay starts than this at once: appended, then sorted (timsort merges the runs)


class _Read:
    """What a StaleLeads holds of one index: its stale entries, and when it read it."""

    __slots__ = ("index", "entries", "as_of", "changed", "_first_cut")

    def __init__(self, index: OpenIndex, as_of: int, first_cut: int | None) -> None:
        self.index = index
        self.entries: dict[str, tuple] = {}         # lead_id -> (stay_start, lead_id, row), stale at as_of
        self._first_cut = first_cut
        self.changed = index.changed = set()        # ours: the index adds to it per change
        self.read_at(as_of)

    def read_at(self, as_of: int) -> None:
        """The stays that crossed their cut up to T = as_of are taken: from now on the index
        marks only the changes of leads whose stay started before as_of - the shortest limit."""
        self.as_of = as_of
        self.index.mark_before = -(1 << 80) if self._first_cut is None else as_of - self._first_cut


class StaleLeads:
    """The stale leads of a changing set of OpenIndexes at a T that moves forward."""

    def __init__(self, pipeline: PipelineConfig) -> None:
        self._limits = [st.stale_after_us for st in pipeline.stages]
        # the shortest limit: no stay that started at or after T - it is stale
        self._first_cut = min((limit for limit in self._limits if limit is not None), default=None)
        self._read: dict[int, _Read] = {}           # id(index) -> _Read
        self.ordered: list[tuple] = []              # (stay_start, lead_id, row): the report's order
        # per stage that can go stale: its stale leads' stay starts, sorted (levels by bisection)
        self._starts: list[list[int] | None] = [None if limit is None else [] for limit in self._limits]
        # stale leads per (owner, team, source) group: one dict update per lead added or removed;
        # per_value splits it per dimension when a report asks (a few hundred groups), then keeps
        # the split up to date (three more per lead: a read changes a few hundred, not a first
        # read's tens of thousands)
        self._per_group: dict[tuple, int] = {}
        self._per_value: tuple[Counter, ...] | None = None
        self._added: dict[int, tuple] = {}          # id(entry) -> entry: added in this catch-up, not yet in place
        self._gone: dict[int, tuple] = {}           # id(entry) -> entry: removed in this catch-up, still in `ordered`

    def catch_up(self, indexes: Sequence[OpenIndex], as_of: int) -> None:
        """Bring the stale set to the indexes as they are now, at T = as_of."""
        given = {id(index): index for index in indexes}
        for key in [key for key in self._read if key not in given]:
            self._forget(self._read.pop(key), detach=True)
        for key, index in given.items():
            read = self._read.get(key)
            if read is not None and (as_of < read.as_of or index.changed is not read.changed):
                self._forget(self._read.pop(key), detach=False)         # T went back, or changes missed
                read = None
            if read is None:
                self._read[key] = read = _Read(index, as_of, self._first_cut)
                self._add_stale_stays(read, None, as_of)
            else:
                self._add_stale_stays(read, read.as_of, as_of)
                changed = read.changed
                read.changed = index.changed = set()
                self._reread(read, changed, as_of)
            read.read_at(as_of)
        self.settle()

    def catch_up_steps(self, index: OpenIndex, as_of: int, leads_per_step: int) -> Iterator[None]:
        """Part of `catch_up` for one index already read, in steps (yielding between): the stays
        that crossed their cut up to T = as_of, then its changed leads, `leads_per_step` at a
        time. The leads not yet re-read stay in the index's change set (the index adds to the
        same set meanwhile), so a catch_up in between, or stopping early, is always safe. An
        index not read yet (or whose changes were dropped: more than its open leads, or T going
        back) is read whole, in two steps; one that another reader reads is left to `catch_up`.
        `settle()` after the steps of every index (catch_up does it for what is left)."""
        read = self._read.get(id(index))
        if read is not None and (as_of < read.as_of or index.changed is not read.changed):
            if index.changed is not None and index.changed is not read.changed:
                return                                  # another reader's: catch_up reads it whole
            self._forget(self._read.pop(id(index)), detach=False)
            index.changed = read = None
            yield
        if read is None:
            if index.changed is not None:               # another reader's (or read meanwhile)
                return
            self._read[id(index)] = read = _Read(index, as_of, self._first_cut)     # ours from now on
            self._add_stale_stays(read, None, as_of)
        else:
            self._add_stale_stays(read, read.as_of, as_of)
            read.read_at(as_of)
            changed = read.changed
            todo = len(changed)             # those marked now: the ones marked meanwhile wait for the next read
            while todo > 0 and changed:
                yield
                if self._read.get(id(index)) is not read or index.changed is not changed:
                    return                  # read again meanwhile (catch_up): nothing of ours is pending
                chunk = set(islice(changed, min(leads_per_step, todo)))     # taken in C, not popped one by one
                changed -= chunk                                            # in place: still the index's set
                todo -= len(chunk)
                self._reread(read, chunk, read.as_of)

    def by_stage_level(self, n: int, as_of: int, any_index: bool) -> tuple[list[int], dict[tuple[int, int], int]]:
        """(stale leads per stage, per (stage, level 1-3)), as open_figures counts them."""
        by_stage = [0] * n
        by_level = {}
        for stage, (limit, starts) in enumerate(zip(self._limits, self._starts)):
            if starts is None:
                continue
            at_3 = bisect_left(starts, as_of - 3 * limit)                # level k: stay_start < T - k × limit
            at_2 = bisect_left(starts, as_of - 2 * limit)
            by_stage[stage] = len(starts)
            if any_index:
                by_level[(stage, 1)] = len(starts) - at_2
                by_level[(stage, 2)] = at_2 - at_3
                by_level[(stage, 3)] = at_3
        return by_stage, by_level

    def _add_stale_stays(self, read: _Read, since: int | None, as_of: int) -> None:
        """Add the index's live stays with since - limit <= stay_start < as_of - limit (since None: all)."""
        index, entries = read.index, read.entries
        get = index.held.get
        for stage, stays in enumerate(index.stays):
            if stays is None:
                continue
            limit = self._limits[stage]
            cut = as_of - limit                                         # stale: stay_start < T - limit
            keys = stays.keys
            if since is None:
                low = None
            elif since - limit >= cut:
                continue
            else:
                low = since - limit
            if stays.ordered:
                crossed = keys[0 if low is None else bisect_left(keys, (low,)):bisect_left(keys, (cut,))]
            else:                                                       # OpenIndex.of: unsorted
                crossed = [k for k in keys if k[0] < cut and (low is None or k[0] >= low)]
            for start, lead_id in crossed:
                row = get(lead_id)
                if row is not None and row[STAGE] == stage and row[STAY_START] == start and lead_id not in entries:
                    self._add(entries, (start, lead_id, row))

    def _reread(self, read: _Read, changed: set[str], as_of: int) -> None:
        """Take the current entry of each changed lead: out of the set, and back in if stale.
        Most changed leads are in a stay that just began: passed over in C (no stay start
        before T - the shortest limit), the rest looked at one by one."""
        entries, held, limits = read.entries, read.index.held, self._limits
        for lead_id in entries.keys() & changed:
            self._remove(entries.pop(lead_id))
        if self._first_cut is None:
            return
        changed = list(changed)
        rows = list(map(held.get, changed, repeat(_CLOSED)))
        may_be_stale = map(lt, map(_ROW_STAY_START, rows), repeat(as_of - self._first_cut))
        for lead_id, row in compress(zip(changed, rows), may_be_stale):
            limit = limits[row[STAGE]]
            if limit is not None and row[STAY_START] < as_of - limit:
                self._add(entries, (row[STAY_START], lead_id, row))

    def _forget(self, read: _Read, detach: bool) -> None:
        """Take an index's stale leads out (and stop its change marks: no reader any more)."""
        if detach and read.index.changed is read.changed:
            read.index.changed = None
        for entry in read.entries.values():
            self._remove(entry)
        read.entries.clear()

    def _add(self, entries: dict[str, tuple], entry: tuple) -> None:
        entries[entry[1]] = entry
        self._added[id(entry)] = entry
        self._count(entry, +1)

    def settle(self) -> None:
        """Put this catch-up's changes in the report's order (catch_up ends with it; after
        catch_up_steps, call it once when every index's steps are done, not per step: it walks
        the stale list, and the added and removed entries wait in _added and _gone meanwhile):
        the removed entries out of `ordered` (in one pass when they are many: a `del` per entry
        moves the list's tail each time), the added ones sorted, then merged in (slices copied
        in C)."""
        for _ in self.settle_steps():
            pass

    def settle_steps(self) -> Iterator[None]:
        """`settle()` in steps, yielding between: the removed entries out, the added ones
        sorted, then merged in (each a walk of the stale list, or a sort of many: at full speed a
        build per 12 s made the whole settle one ~17 ms step at 120,000 leads). Until the merge,
        the added entries still wait in _added, as during catch_up_steps: a catch_up (or settle)
        in between, or stopping, is safe; the merge then finds _added taken and does nothing."""
        self._drop_gone()
        pending = self._added
        if not pending:
            # a new dict all the same: settle_steps suspended between its sort and its merge (a
            # catch_up came between two steps and removed every entry it had sorted) must see it
            # settled, not merge what it sorted (a closed lead would stay in `ordered` for good)
            self._added = {}
            return
        yield
        if self._added is not pending:
            return                                  # settled meanwhile (a catch_up took them)
        added = sorted(pending.values(), key=_STAY_ORDER)
        yield
        if self._added is pending:                  # else settled meanwhile: `added` is stale
            self._merge_added(added)

    def _drop_gone(self) -> None:
        gone = self._gone
        if gone:
            self._gone = {}
            ordered = self.ordered
            at = []
            for entry in gone.values():
                i = bisect_left(ordered, entry[:2])                     # (start, id) < (start, id, row)
                while ordered[i] is not entry:                          # equal keys: only with indexes not disjoint
                    i += 1
                at.append(i)
            if len(at) > _BULK:             # many: the list once, its runs between them copied in C
                at.sort()
                kept, lo = [], 0
                for i in at:
                    kept += ordered[lo:i]
                    lo = i + 1
                kept += ordered[lo:]
                self.ordered = kept
            else:                           # a few: a `del` each (it moves the list's tail)
                for i in sorted(at, reverse=True):
                    del ordered[i]

    def _merge_added(self, added: list[tuple]) -> None:
        """_added (its entries sorted: `added`) into `ordered` and the stay starts."""
        self._added = {}
        ordered, merged, lo = self.ordered, [], 0
        if ordered:
            for entry in added:                                         # after equal keys: as a stable sort
                i = bisect_right(ordered, entry[:2], lo, key=_STAY_ORDER)
                merged += ordered[lo:i]
                merged.append(entry)
                lo = i
            merged += ordered[lo:]
            self.ordered = merged
        else:
            self.ordered = added
        if len(added) > _BULK:
            for entry in added:
                self._starts[entry[2][STAGE]].append(entry[0])
            for starts in self._starts:
                if starts is not None:
                    starts.sort()                                       # sorted runs: merged by timsort
        else:
            for entry in added:
                insort(self._starts[entry[2][STAGE]], entry[0])

    def _remove(self, entry: tuple) -> None:
        if self._added.pop(id(entry), None) is None:                   # else: added and removed in one catch-up
            self._gone[id(entry)] = entry                               # out of `ordered` at settle
            starts = self._starts[entry[2][STAGE]]
            del starts[bisect_left(starts, entry[0])]
        self._count(entry, -1)

    def _count(self, entry: tuple, sign: int) -> None:
        group = entry[2][OWNER:AMOUNT]                  # (owner, team, source), as OpenIndex groups
        per_group = self._per_group
        n = per_group.get(group, 0) + sign
        if n:
            per_group[group] = n
        else:
            del per_group[group]
        if (per_value := self._per_value) is not None:
            for counts, value in zip(per_value, group):
                n = counts[value] + sign
                if n:
                    counts[value] = n
                else:
                    del counts[value]

    @property
    def per_value(self) -> tuple[Counter, Counter, Counter]:
        """The stale leads per owner, per team and per source value (no zero counts)."""
        if self._per_value is None:
            owners, teams, sources = Counter(), Counter(), Counter()
            for (owner, team, source), n in self._per_group.items():
                owners[owner] += n
                teams[team] += n
                sources[source] += n
            self._per_value = (owners, teams, sources)
        return self._per_value
