"""The open leads' figures across several OpenIndexes (a worker's partitions) at T, read often.

`open_figures` (open_index.py) adds up every index's groups on each call. `OpenSums` keeps
the cross-index sums instead (in total, and per owner, team and source value: open leads
and exact amount per stage) and, at each read, adds only what changed since the last:

- per index it keeps a copy of the groups it has added; a group whose counts or amounts
  differ from its copy adds (new - old) to the sums of its three values and the total.
  The diff is a walk over the groups (~700 per index), not over the leads, and costs the
  per-event path nothing (no change marks in OpenIndex);
- an index read for the first time is added whole; one no longer given, subtracted whole
  (indexes are told apart by identity: the reader keeps them alive);
- the stale leads depend on T, so they are read per call: per (index, stage) the stale
  prefix of its stays (bisection), the live ones kept, their levels counted by bisection
  within the run, the runs merged in one sort (timsort merges sorted runs).

`figures()` equals `open_figures(indexes, pipeline, as_of)`, field by field.
Pure: no clock, no I/O. Not thread-safe; one reader object per set of indexes.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from operator import itemgetter
from typing import Sequence

from pulse.schemas.config import PipelineConfig

from .deals import DIMENSIONS, sort_values
from .open_index import OWNER, SOURCE, STAGE, STAY_START, TEAM, OpenFigures, OpenIndex
from .open_pipeline import OpenPipeline

__all__ = ["OpenSums"]

_LEAD_ID = itemgetter(1)
_ROW = itemgetter(2)
_STAY_ORDER = itemgetter(0, 1)
_DIMENSION_FIELDS = tuple(map(itemgetter, (OWNER, TEAM, SOURCE)))


class _Sum:
    """Open leads and their exact amount per stage, of one value (or of all)."""

    __slots__ = ("counts", "amounts", "totals")

    def __init__(self, n: int) -> None:
        self.counts = [0] * n
        self.amounts = [0] * n
        self.totals: dict | None = None        # OpenPipeline.totals of these sums, until they change


class OpenSums:
    """The open figures of a changing set of OpenIndexes, kept by deltas between reads."""

    def __init__(self, pipeline: PipelineConfig) -> None:
        self._pipeline = pipeline
        self._n = len(pipeline.stages)
        self._limits = [st.stale_after_us for st in pipeline.stages]
        # id(index) -> (index, {group key: (counts, amounts) as last added})
        self._added: dict[int, tuple[OpenIndex, dict[tuple, tuple[list[int], list[int]]]]] = {}
        self._total = _Sum(self._n)
        self._by_value: tuple[dict, ...] = tuple({} for _ in DIMENSIONS)    # value -> _Sum
        self._order: list[list | None] = [None for _ in DIMENSIONS]         # sort_values of a dimension's values

    def figures(self, indexes: Sequence[OpenIndex], as_of: int) -> OpenFigures:
        """== open_figures(indexes, pipeline, as_of): every field, the stale order included."""
        self._catch_up(indexes)
        n, pipeline = self._n, self._pipeline
        by_stage = [0] * n
        by_level = {(stage, level): 0 for stage, limit in enumerate(self._limits) if limit is not None
                    for level in (1, 2, 3)} if indexes else {}
        stale: list[tuple] = []
        for index in indexes:
            self._stale_of_index(index, as_of, stale, by_stage, by_level)
        try:
            stale.sort()        # the runs, merged: (stay_start, lead_id), age descending, then lead_id
        except TypeError:       # a lead in two indexes (they must be disjoint): rows were compared
            stale = []
            for index in indexes:
                self._stale_of_index(index, as_of, stale, [0] * n, {})
            stale.sort(key=_STAY_ORDER)
        stale_rows = list(map(_ROW, stale))
        stale_of = [Counter(map(field, stale_rows)) for field in _DIMENSION_FIELDS]
        total = OpenPipeline(n)
        total.count = self._total.counts[:]
        total.amount = self._total.amounts[:]
        segments = {}
        for d, (dim, by_value, stale_counts) in enumerate(zip(DIMENSIONS, self._by_value, stale_of)):
            order = self._order[d]
            if order is None:
                order = self._order[d] = sort_values(by_value)
            segments[dim] = [{"value": v, **self._totals(by_value[v]), "stale": stale_counts.get(v, 0)}
                             for v in order]
        return OpenFigures(total, by_stage, by_level, segments, stale, as_of, pipeline)

    def _totals(self, of_value: _Sum) -> dict:
        if of_value.totals is None:
            sums = OpenPipeline(self._n)
            sums.count, sums.amount = of_value.counts, of_value.amounts
            of_value.totals = sums.totals(self._pipeline)
        return of_value.totals

    def _catch_up(self, indexes: Sequence[OpenIndex]) -> None:
        """Bring the sums to the indexes' groups as they are now."""
        given = {id(index): index for index in indexes}
        for key in [key for key in self._added if key not in given]:
            _, copies = self._added.pop(key)
            for group, (counts, amounts) in copies.items():
                self._add(group, counts, amounts, -1)
        for key, index in given.items():
            entry = self._added.get(key)
            if entry is None:
                entry = self._added[key] = (index, {})
            copies = entry[1]
            groups = index.groups
            if len(copies) == len(groups) and copies == groups:
                continue                        # nothing changed (compared in C)
            for group in [group for group in copies if group not in groups]:
                counts, amounts = copies.pop(group)
                self._add(group, counts, amounts, -1)
            for group, (counts, amounts) in groups.items():
                old = copies.get(group)
                if old is None:
                    self._add(group, counts, amounts, +1)
                elif old[0] != counts or old[1] != amounts:
                    self._add_delta(group, old, counts, amounts)
                else:
                    continue
                copies[group] = (counts[:], amounts[:])

    def _add(self, group: tuple, counts: list[int], amounts: list[int], sign: int) -> None:
        """Add (sign +1) or subtract (-1) a whole group's sums."""
        zeros = [0] * self._n
        if sign > 0:
            self._add_delta(group, (zeros, zeros), counts, amounts)
        else:
            self._add_delta(group, (counts, amounts), zeros, zeros)

    def _add_delta(self, group: tuple, old: tuple[list[int], list[int]], counts: list[int], amounts: list[int]) -> None:
        """Add a group's (new - old) to the total and to the sums of its owner, team and source."""
        old_counts, old_amounts = old
        changes = [(stage, counts[stage] - old_counts[stage], amounts[stage] - old_amounts[stage])
                   for stage in range(self._n)
                   if counts[stage] != old_counts[stage] or amounts[stage] != old_amounts[stage]]
        total = self._total
        for stage, count, amount in changes:
            total.counts[stage] += count
            total.amounts[stage] += amount
        for d, (by_value, value) in enumerate(zip(self._by_value, group)):
            of_value = by_value.get(value)
            if of_value is None:
                of_value = by_value[value] = _Sum(self._n)
                self._order[d] = None
            of_value.totals = None
            value_counts, value_amounts = of_value.counts, of_value.amounts
            for stage, count, amount in changes:
                value_counts[stage] += count
                value_amounts[stage] += amount
            if not any(value_counts):           # no open lead has the value: no entry (as open_figures)
                del by_value[value]
                self._order[d] = None

    def _stale_of_index(self, index: OpenIndex, as_of: int, stale: list[tuple],
                        by_stage: list[int], by_level: dict[tuple[int, int], int]) -> None:
        """Add the index's stale leads to `stale` as (stay_start, lead_id, row), one sorted run
        per stage, and count them by stage and level."""
        get = index.held.get
        for stage, stays in enumerate(index.stays):
            if stays is None:
                continue
            limit = self._limits[stage]
            cut = as_of - limit                                         # stale: stay_start < T - limit
            keys = stays.keys
            if stays.ordered:
                prefix = keys[:bisect_left(keys, (cut,))]
            else:                                                       # OpenIndex.of: unsorted
                prefix = sorted(k for k in keys if k[0] < cut)
            run = [(start, lead_id, row) for (start, lead_id), row in zip(prefix, map(get, map(_LEAD_ID, prefix)))
                   if row is not None and row[STAGE] == stage and row[STAY_START] == start]   # skip ended stays
            if not run:
                continue
            at_3 = bisect_left(run, (as_of - 3 * limit,))              # level k: stay_start < T - k × limit
            at_2 = bisect_left(run, (as_of - 2 * limit,))
            by_stage[stage] += len(run)
            if by_level:
                by_level[(stage, 3)] += at_3
                by_level[(stage, 2)] += at_2 - at_3
                by_level[(stage, 1)] += len(run) - at_2
            stale += run
