"""The open leads' figures across several OpenIndexes (a worker's partitions) at T, read often.

`open_figures` (open_index.py) adds up every index's groups on each call. `OpenSums` keeps
the cross-index sums instead (per owner, team and source value: open leads and exact
amount per stage; the total is their sum over one dimension) and, at each read, adds
only what changed since the last:

- per index it keeps a copy of the groups it has added; a group whose counts or amounts
  differ from its copy adds (new - old) to the sums of its three values. The index marks
  the groups that changed (`OpenIndex.changed_groups`, a set this reader gives it), so a
  read looks at those only; a first read, or one whose marks another reader took, walks
  every group (~700 per index), never the leads;
- an index read for the first time is added whole; one no longer given, subtracted whole
  (indexes are told apart by identity: the reader keeps them alive);
- the stale leads (they depend on T) are kept by StaleLeads (open_stale.py): a read costs
  per lead changed and per stay that went stale since the last, not per stale lead.

`figures()` equals `open_figures(indexes, pipeline, as_of)`, field by field.
Pure: no clock, no I/O. Not thread-safe. Keep one OpenSums per set of indexes, across reads
(a second reader of an index makes both read it whole: StaleLeads).
"""
from __future__ import annotations

from operator import add
from typing import Iterable, Iterator, Sequence

from pulse.schemas.config import PipelineConfig

from .deals import DIMENSIONS, sort_values
from .open_index import OpenFigures, OpenIndex
from .open_pipeline import OpenPipeline
from .open_stale import StaleLeads

__all__ = ["OpenSums"]


class _Sum:
    """Open leads and their exact amount per stage, of one value (or of all)."""

    __slots__ = ("sums", "totals")

    def __init__(self, n: int) -> None:
        self.sums = [0] * (2 * n)               # open leads per stage, then their exact amount per stage
        self.totals: dict | None = None        # OpenPipeline.totals of these sums, until they change


class OpenSums:
    """The open figures of a changing set of OpenIndexes, kept by deltas between reads."""

    def __init__(self, pipeline: PipelineConfig) -> None:
        self._pipeline = pipeline
        self._n = len(pipeline.stages)
        # id(index) -> [index, {group key: its counts + amounts per stage, as last added}, the
        # index's group marks this reader gave it (OpenIndex.changed_groups)]
        self._added: dict[int, list] = {}
        self._by_value: tuple[dict, ...] = tuple({} for _ in DIMENSIONS)    # value -> _Sum
        self._order: list[list | None] = [None for _ in DIMENSIONS]         # sort_values of a dimension's values
        self._stale = StaleLeads(pipeline)

    def figures(self, indexes: Sequence[OpenIndex], as_of: int) -> OpenFigures:
        """== open_figures(indexes, pipeline, as_of): every field, the stale order included."""
        self._catch_up(indexes)
        self._stale.catch_up(indexes, as_of)
        n, pipeline = self._n, self._pipeline
        by_stage, by_level = self._stale.by_stage_level(n, as_of, bool(indexes))
        stale = self._stale.ordered[:]          # the figures' own: the kept list changes at the next read
        stale_of = self._stale.per_value
        total = self._open_pipeline(self._sum_of_values())
        segments = {}
        for d, (dim, by_value, stale_counts) in enumerate(zip(DIMENSIONS, self._by_value, stale_of)):
            order = self._order[d]
            if order is None:
                order = self._order[d] = sort_values(by_value)
            segments[dim] = [{"value": v, **self._totals(by_value[v]), "stale": stale_counts.get(v, 0)}
                             for v in order]
        return OpenFigures(total, by_stage, by_level, segments, stale, as_of, pipeline)

    def _sum_of_values(self) -> _Sum:
        """The total: every group has one value per dimension, so the sums of any dimension's
        values add up to it (exactly). Added up here, from the dimension with the fewest values,
        rather than kept: a fourth target for every group delta would cost more."""
        total = _Sum(self._n)
        for of_value in min(self._by_value, key=len).values():
            total.sums = list(map(add, total.sums, of_value.sums))
        return total

    def _totals(self, of_value: _Sum) -> dict:
        if of_value.totals is None:
            of_value.totals = self._open_pipeline(of_value).totals(self._pipeline)
        return of_value.totals

    def _open_pipeline(self, of: _Sum) -> OpenPipeline:
        n = self._n
        sums = OpenPipeline(n)
        sums.count, sums.amount = of.sums[:n], of.sums[n:]
        return sums

    def catch_up_steps(self, indexes: Sequence[OpenIndex], as_of: int, leads_per_step: int) -> Iterator[None]:
        """Take what changed in the indexes into the sums, in steps (yielding between): per index
        its groups, then its changed leads at most `leads_per_step` at a time (StaleLeads). The
        indexes may change in between; a figures() call in between, or stopping early, is
        always safe: what was not taken stays marked, and figures() takes it."""
        for index in indexes:
            self._catch_up_index(index)
            yield
            yield from self._stale.catch_up_steps(index, as_of, leads_per_step)
            yield
        yield from self._stale.settle_steps()
        yield                   # the caller's build (figures()) comes next: a step of its own

    def _catch_up(self, indexes: Sequence[OpenIndex]) -> None:
        """Bring the sums to the indexes' groups as they are now."""
        given = {id(index): index for index in indexes}
        zeros = [0] * (2 * self._n)
        for key in [key for key in self._added if key not in given]:
            index, copies, marks = self._added.pop(key)
            if index.changed_groups is marks:
                index.changed_groups = None         # no reader any more: the index stops marking
            for group, old in copies.items():
                self._add_delta(group, old, zeros)
        for index in given.values():
            self._catch_up_index(index)

    def _catch_up_index(self, index: OpenIndex) -> None:
        """Take the index's groups that changed since this reader's last read: the ones the index
        marked in the set this reader gave it (OpenIndex.changed_groups), or every group at a first
        read or when the index's marks are not that set (another reader took them: both then walk
        every group, as two StaleLeads of one index read it whole)."""
        zeros = [0] * (2 * self._n)
        entry = self._added.get(id(index))
        if entry is None:
            entry = self._added[id(index)] = [index, {}, None]
        copies, given, marks = entry[1], entry[2], index.changed_groups
        groups = index.groups
        entry[2] = index.changed_groups = set()     # the marks from now on
        # the marked groups, else every group held now or added before (one gone since included)
        walk: Iterable[tuple] = marks if given is not None and marks is given else groups.keys() | copies.keys()
        for group in walk:
            pair = groups.get(group)
            if pair is None:                        # gone since (marked, if marks, when its last lead left)
                if group in copies:
                    self._add_delta(group, copies.pop(group), zeros)
                continue
            now = pair[0] + pair[1]
            old = copies.get(group, zeros)
            if now != old:
                self._add_delta(group, old, now)
                copies[group] = now

    def _add_delta(self, group: tuple, old: list[int], now: list[int]) -> None:
        """Add a group's (now - old) sums to the sums of its owner, team and source values.
        Only the entries that changed: a stage move changes two counts and at most two amounts, and
        adding a zero to a ~1,100-bit amount (exact.py) still makes a new ~150-byte integer."""
        delta = [(i, a - b) for i, (a, b) in enumerate(zip(now, old)) if a != b]
        n = self._n
        for d, (by_value, value) in enumerate(zip(self._by_value, group)):
            of_value = by_value.get(value)
            if of_value is None:
                of_value = by_value[value] = _Sum(n)
                self._order[d] = None
            of_value.totals = None
            sums = of_value.sums
            for i, change in delta:
                sums[i] += change
            if not any(sums[:n]):               # no open lead has the value: no entry (as open_figures)
                del by_value[value]
                self._order[d] = None
