"""The open leads' figures across several OpenIndexes (a worker's partitions) at T, read often.

`open_figures` (open_index.py) adds up every index's groups on each call. `OpenSums` keeps
the cross-index sums instead (per owner, team and source value: open leads and exact
amount per stage; the total is their sum over one dimension) and, at each read, adds
only what changed since the last:

- per group it keeps the group's sum over the indexes as last added; a group whose sum
  now differs adds (new - old) to the sums of its three values. The indexes mark the
  groups that changed (`OpenIndex.changed_groups`, a set this reader gives each), so a
  read sums those only, over every index: at full speed nearly every group changes
  between two builds in every partition, and a group's delta is taken into its values
  once, not once per index. A first read, one whose marks another reader took, or a
  change in the set of indexes (told apart by identity: the reader keeps them alive)
  walks every group (~200 per pipeline), never the leads;
- the stale leads (they depend on T) are kept by StaleLeads (open_stale.py): a read costs
  per lead changed and per stay that went stale since the last, not per stale lead.

`figures()` equals `open_figures(indexes, pipeline, as_of)`, field by field.
Pure: no clock, no I/O. Not thread-safe. Keep one OpenSums per set of indexes, across reads
(a second reader of an index makes both read it whole: StaleLeads).
"""
from __future__ import annotations

from operator import add
from typing import Iterator, Sequence

from pulse.schemas.config import PipelineConfig

from .deals import DIMENSIONS, sort_values
from .open_index import OpenFigures, OpenIndex
from .open_pipeline import OpenPipeline
from .open_stale import StaleLeads

__all__ = ["OpenSums"]


class _Sum:
    """Open leads and their exact amount per stage, of one value (or of all)."""

    __slots__ = ("sums", "totals", "open", "dim")

    def __init__(self, n: int, dim: int = -1) -> None:
        self.sums = [0] * (2 * n)               # open leads per stage, then their exact amount per stage
        self.totals: dict | None = None        # OpenPipeline.totals of these sums, until they change
        self.open = 0                           # Σ open leads (0: the value has no entry in the figures)
        self.dim = dim                          # its dimension (DIMENSIONS), -1 for the total


class OpenSums:
    """The open figures of a changing set of OpenIndexes, kept by deltas between reads."""

    def __init__(self, pipeline: PipelineConfig) -> None:
        self._pipeline = pipeline
        self._n = len(pipeline.stages)
        # group -> its counts + amounts per stage summed over the indexes, as last added
        self._added: dict[tuple, list[int]] = {}
        self._indexes: list[OpenIndex] = []         # those of the last read
        self._marks: dict[int, set] = {}            # id(index) -> the group marks this reader gave it
        # value -> _Sum, kept when its open leads fall to 0 (skipped; swept when they pile up)
        self._by_value: tuple[dict, ...] = tuple({} for _ in DIMENSIONS)
        # group -> the _Sums of its owner, team and source values: one look-up per group delta
        self._targets: dict[tuple, tuple[_Sum, ...]] = {}
        self._order: list[list | None] = [None for _ in DIMENSIONS]         # sort_values of the values with open leads
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
                order = self._order[d] = self._values_with_open_leads(by_value)
            segments[dim] = [{"value": v, **self._totals(by_value[v]), "stale": stale_counts.get(v, 0)}
                             for v in order]
        return OpenFigures(total, by_stage, by_level, segments, stale, as_of, pipeline)

    def _values_with_open_leads(self, by_value: dict) -> list:
        """The values of one dimension with open leads, in SPEC 5's order. The others' entries go
        when they are more than those (and than 64): the group look-ups are then made again."""
        values = [v for v, of_value in by_value.items() if of_value.open]
        if len(by_value) - len(values) > max(64, len(values)):
            for v in [v for v, of_value in by_value.items() if not of_value.open]:
                del by_value[v]
            self._targets.clear()
        return sort_values(values)

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
        """Take what changed in the indexes into the sums, in steps (yielding between): their
        groups, then per index its changed leads at most `leads_per_step` at a time (StaleLeads).
        The indexes may change in between; a figures() call in between, or stopping early, is
        always safe: what was not taken stays marked, and figures() takes it."""
        self._catch_up(indexes)
        yield
        for index in indexes:
            yield from self._stale.catch_up_steps(index, as_of, leads_per_step)
            yield
        yield from self._stale.settle_steps()
        yield                   # the caller's build (figures()) comes next: a step of its own

    def _catch_up(self, indexes: Sequence[OpenIndex]) -> None:
        """Bring the sums to the indexes' groups as they are now: the groups marked in the sets
        this reader gave the indexes (OpenIndex.changed_groups), or every group held now or
        added before (one gone since included) after a change in the set of indexes or when an
        index's marks are not the set given (another reader took them: both then walk every
        group, as two StaleLeads of one index read it whole)."""
        indexes = list(indexes)
        given = {id(index) for index in indexes}
        for index in self._indexes:
            if id(index) not in given and index.changed_groups is self._marks.get(id(index)):
                index.changed_groups = None         # no reader any more: the index stops marking
        whole = [id(index) for index in indexes] != [id(index) for index in self._indexes]
        walk: set[tuple] = set()
        marks = {}
        for index in indexes:
            if not whole and index.changed_groups is not None and index.changed_groups is self._marks.get(id(index)):
                walk |= index.changed_groups
            else:
                whole = True
            marks[id(index)] = index.changed_groups = set()     # the marks from now on
        self._indexes, self._marks = indexes, marks
        if whole:
            walk = set(self._added)
            for index in indexes:
                walk |= index.groups.keys()
        zeros = [0] * (2 * self._n)
        added = self._added
        all_groups = [index.groups for index in indexes]
        for group in walk:
            now = None
            for groups in all_groups:
                if (pair := groups.get(group)) is not None:
                    now = pair[0] + pair[1] if now is None else list(map(add, now, pair[0] + pair[1]))
            old = added.get(group)
            if now is None:                         # in no index any more
                if old is not None:
                    del added[group]
                    self._add_delta(group, old, zeros)
            elif now != old:
                added[group] = now
                self._add_delta(group, zeros if old is None else old, now)

    def _add_delta(self, group: tuple, old: list[int], now: list[int]) -> None:
        """Add a group's (now - old) sums to the sums of its owner, team and source values.
        Only the entries that changed: a stage move changes two counts and at most two amounts, and
        adding a zero to a ~1,100-bit amount (exact.py) still makes a new ~150-byte integer."""
        delta = [(i, a - b) for i, (a, b) in enumerate(zip(now, old)) if a != b]
        n = self._n
        opened = sum(change for i, change in delta if i < n)        # 0 for a stage move
        targets = self._targets.get(group)
        if targets is None:
            targets = self._targets[group] = tuple(self._sum_of(d, value) for d, value in enumerate(group))
        for of_value in targets:
            of_value.totals = None
            sums = of_value.sums
            for i, change in delta:
                sums[i] += change
            if opened:
                was = of_value.open
                of_value.open = was + opened
                if not was or not of_value.open:    # the value has open leads now, or none any more
                    self._order[of_value.dim] = None

    def _sum_of(self, d: int, value) -> _Sum:
        by_value = self._by_value[d]
        of_value = by_value.get(value)
        if of_value is None:
            of_value = by_value[value] = _Sum(self._n, d)
        return of_value
