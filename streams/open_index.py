"""The open leads at T (SPEC 4.4, 4.5, 4.8) without a walk over them.

`OpenIndex` holds, per pipeline, what the report needs of each open lead (its stage,
stay start, owner, team, source and amount), kept up to date as leads change:

- the open pipeline per (owner, team, source) group: count and exact amount per stage
  (exact.py), so totals, stages and segments cost per group, not per lead;
- per stage that can go stale, the open leads ordered by (stay start, lead_id). A lead
  is stale at T when T - stay_start > stale_after, i.e. stay_start < T - stale_after:
  the stale leads of a stage are a prefix (found by bisection; entries of ended stays
  in it are skipped, and swept out as they pile up), and the report's order (age
  descending, then lead_id) is the order of (stay_start, lead_id).

`open_figures` reads one or several indexes (a worker's partitions, shards) at T;
`OpenSums` (open_sums.py) gives the same figures for indexes read again and again (the
live snapshot), at a cost per change since its last read (`OpenIndex.changed` for the
leads, `OpenIndex.changed_groups` for the groups).
The live worker keeps an index per partition, updated by the engine per event
(`PipelineState.open_index`). `pulse report` builds none: open_figures reads its open
leads (and a peer's share, as rows) in one pass instead, once, at report time.
Pure: no clock, no I/O.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Iterable

from pulse.schemas.config import PipelineConfig
from pulse.schemas.timestamps import format_timestamp

from .deals import DIMENSIONS, sort_values
from .exact import FIXED_CACHE, to_fixed
from .open_pipeline import OpenPipeline
from .windows import DAY_US

if TYPE_CHECKING:
    from .lead import Lead

__all__ = ["OpenIndex", "OpenFigures", "open_figures"]

# What the index holds of an open lead; also the layout of a peer's share (partial.py).
STAGE, STAY_START, OWNER, TEAM, SOURCE, AMOUNT = range(6)
_fixed = FIXED_CACHE.get        # to_fixed's memo, looked up before the call (see exact.py)


class _Stays:
    """(stay_start, lead_id) of one stage's open leads, sorted; entries of stays that ended
    are left in place (dead) and swept out once they are as many as the live ones.

    The input comes in about time order, so a new stay is nearly always the latest: an
    append. An ended stay costs nothing at once (the index's `held` says which entries are
    live), and the sweep is amortised over the stays that ended since the last one.
    """

    __slots__ = ("keys", "dead", "ordered")
    SWEEP_MIN = 256         # dead entries below this are never swept (a sweep walks the stage's entries)

    def __init__(self, ordered: bool = True) -> None:
        self.keys: list[tuple[int, str]] = []
        self.dead = 0
        # False: an index built at once for one report (OpenIndex.of), never updated: its
        # keys are left unsorted, the report sorts the stale ones only.
        self.ordered = ordered

    def add(self, key: tuple[int, str]) -> None:
        keys = self.keys
        if not keys or key > keys[-1]:
            keys.append(key)
            return
        i = bisect_left(keys, key)                  # a late event: rare
        if i < len(keys) and keys[i] == key:        # the entry of an ended stay lives again
            self.dead -= 1
        else:
            keys.insert(i, key)


def _is_live(held: dict, stage: int, stay_start: int, lead_id: str) -> bool:
    row = held.get(lead_id)
    return row is not None and row[STAGE] == stage and row[STAY_START] == stay_start


class OpenIndex:
    """The open leads of one pipeline (or one partition's share of it), by group and by stay."""

    __slots__ = ("held", "groups", "stays", "_limits", "changed", "mark_before", "changed_groups")

    def __init__(self, pipeline: PipelineConfig):
        self._limits = [st.stale_after_us for st in pipeline.stages]
        self.held: dict[str, tuple] = {}                # lead_id -> (stage, stay_start, owner, team, source, amount)
        # (owner, team, source) -> (open leads per stage, their exact amount per stage)
        self.groups: dict[tuple, tuple[list[int], list[int]]] = {}
        # per stage with a stale limit: (stay_start, lead_id) of its open leads, in order
        self.stays: list[_Stays | None] = [None if limit is None else _Stays() for limit in self._limits]
        # the lead ids whose entry changed since the reader's last read (OpenSums, open_stale.py);
        # None while no reader asked (nothing kept: `pulse report`, a worker without dashboard)
        self.changed: set[str] | None = None
        # ... of those, only the leads whose stay start, before or after the change, is earlier
        # than this: set by the reader (StaleLeads) at each read to its T less the shortest stale
        # limit. A lead with neither was not stale at that read and, if it goes stale by the next,
        # is found among the stays that crossed their cut (open_stale.py). A live change starts a
        # stay now: nearly no change is marked (each mark cost a set add here and a re-read there).
        self.mark_before: int = 1 << 80
        # the group keys whose counts or amounts changed since OpenSums' last read (a group gone
        # included); None while no reader asked (it then walks every group)
        self.changed_groups: set[tuple] | None = None

    @classmethod
    def of(cls, pipeline: PipelineConfig, leads: Iterable[Lead]) -> OpenIndex:
        """An index of `leads` (all open), built at once (what the index kept per event must equal)."""
        index = cls(pipeline)
        held, groups, all_stays, n = index.held, index.groups, index.stays, len(index._limits)
        for lead in leads:                          # _count(row, +1), inlined: once per open lead
            lead_id, stage, start, amount = lead.lead_id, lead.stage, lead.stay_start, lead.amount
            key = (lead.owner, lead.team, lead.source)
            held[lead_id] = (stage, start, *key, amount)
            group = groups.get(key)
            if group is None:
                group = groups[key] = ([0] * n, [0] * n)
            group[0][stage] += 1
            if amount:
                group[1][stage] += _fixed(amount) or to_fixed(amount)
            stays = all_stays[stage]
            if stays is not None:
                stays.keys.append((start, lead_id))
        for stays in index.stays:
            if stays is not None:
                stays.ordered = False
        return index

    def update(self, lead: Lead) -> None:
        """Take the lead's current state (call after each change of it; cheap when nothing the index holds changed)."""
        lead_id = lead.lead_id
        held = self.held
        old = held.get(lead_id)
        if lead.is_open:
            new = (lead.stage, lead.stay_start, lead.owner, lead.team, lead.source, lead.amount)
            if old == new:
                return
            held[lead_id] = new
        elif old is None:
            return
        else:
            new = None
            del held[lead_id]
        changed = self.changed
        if changed is not None:
            before = self.mark_before
            if (old is not None and old[STAY_START] < before) or (new is not None and new[STAY_START] < before):
                changed.add(lead_id)
        if old is None or new is None or old[OWNER:AMOUNT] != new[OWNER:AMOUNT]:
            if old is not None:
                self._count(old, -1)
            if new is not None:
                self._count(new, +1)
        else:                                       # the same group (the common case: a stage change)
            key = old[OWNER:AMOUNT]
            counts, amounts = self.groups[key]
            if self.changed_groups is not None:
                self.changed_groups.add(key)
            counts[old[STAGE]] -= 1
            counts[new[STAGE]] += 1
            if old[AMOUNT]:
                amounts[old[STAGE]] -= _fixed(old[AMOUNT]) or to_fixed(old[AMOUNT])
            if new[AMOUNT]:
                amounts[new[STAGE]] += _fixed(new[AMOUNT]) or to_fixed(new[AMOUNT])
        if old is not None and new is not None and old[STAGE] == new[STAGE] and old[STAY_START] == new[STAY_START]:
            return                                  # the same stay: its entry stays as it is
        if old is not None:
            stays = self.stays[old[STAGE]]
            if stays is not None:
                stays.dead += 1
                if stays.dead > stays.SWEEP_MIN and 2 * stays.dead > len(stays.keys):
                    stage = old[STAGE]
                    stays.keys = [k for k in stays.keys                 # _is_live, inlined
                                  if (row := held.get(k[1])) is not None and row[STAGE] == stage
                                  and row[STAY_START] == k[0]]
                    stays.dead = 0
                    if self.changed is not None and len(self.changed) > len(held):
                        self.changed = None     # a reader gone or rare: it reads the index whole again
        if new is not None:
            stays = self.stays[new[STAGE]]
            if stays is not None:
                stays.add((new[STAY_START], lead_id))

    def _count(self, row: tuple, sign: int) -> None:
        key = row[OWNER:AMOUNT]
        if self.changed_groups is not None:
            self.changed_groups.add(key)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = ([0] * len(self._limits), [0] * len(self._limits))
        group[0][row[STAGE]] += sign
        amount = row[AMOUNT]
        if amount:
            fixed = _fixed(amount) or to_fixed(amount)      # no multiplication of a ~1,100-bit int by sign
            if sign > 0:
                group[1][row[STAGE]] += fixed
            else:
                group[1][row[STAGE]] -= fixed
        if not any(group[0]):
            del self.groups[key]

    def live_stays(self, stage: int) -> list[tuple[int, str]]:
        """The live entries of a stage's stays, in order (tests, and the sweep's definition)."""
        stays = self.stays[stage]
        if stays is None:
            return []
        live = [k for k in stays.keys if _is_live(self.held, stage, *k)]
        return live if stays.ordered else sorted(live)

    def rows(self) -> Iterable[tuple]:
        """(lead_id, stage, stay_start, owner, team, source, amount) per open lead."""
        return ((lead_id, *row) for lead_id, row in self.held.items())


@dataclass(frozen=True)
class OpenFigures:
    """The open leads' figures at T: what the report's `open` and `stale` sections and the
    pipeline metrics read."""

    pipeline: OpenPipeline
    stale_by_stage: list[int]
    stale_by_level: dict[tuple[int, int], int]      # (stage index, level 1-3) -> stale leads
    segments: dict                                  # SPEC 4.8 open segments, as the report shows them
    _stale: list[tuple]                             # (stay_start, lead_id, row) in the report's order
    _as_of: int
    _config: PipelineConfig

    def stale_by_stage_level(self) -> dict[tuple[str, int], int]:
        """(stage name, level) -> stale leads, every stage that can go stale and level 1-3."""
        stages = self._config.stages
        return {(stages[stage].name, level): n for (stage, level), n in self.stale_by_level.items()}

    def stale_entries(self, start: int = 0, stop: int | None = None) -> list[dict]:
        """SPEC 5's `stale` list (age descending, then lead_id), or its entries [start:stop]."""
        as_of, stages = self._as_of, self._config.stages
        # per stage: its name, stale_after_days and the cuts of levels 2 and 3 (stay_start < T - k × limit)
        consts = [None if st.stale_after_us is None else
                  (st.name, st.stale_after_us / DAY_US, as_of - 2 * st.stale_after_us, as_of - 3 * st.stale_after_us)
                  for st in stages]
        since = _SINCE_TEXT.get
        if len(_SINCE_TEXT) > _SINCE_TEXT_MAX:
            _SINCE_TEXT.clear()
        entries = []
        for stay_start, lead_id, row in self._stale[start:stop]:
            name, stale_after_days, cut2, cut3 = consts[row[STAGE]]
            entries.append({
                "lead_id": lead_id,
                "stage": name,
                "since": since(stay_start) or _since_text(stay_start),
                "age_days": (as_of - stay_start) / DAY_US,
                "stale_after_days": stale_after_days,
                "level": 3 if stay_start < cut3 else 2 if stay_start < cut2 else 1,     # stale_level, inlined
                "owner": row[OWNER],
                "team": row[TEAM],
                "amount": row[AMOUNT],
            })
        return entries


# format_timestamp per stay start: a stale lead is listed in report after report
_SINCE_TEXT: dict[int, str] = {}
_SINCE_TEXT_MAX = 1 << 17


def _since_text(stay_start: int) -> str:
    text = _SINCE_TEXT[stay_start] = format_timestamp(stay_start)
    return text


def open_figures(indexes: Iterable[OpenIndex], pipeline: PipelineConfig, as_of: int,
                 rows: Iterable[Iterable[tuple]] = ()) -> OpenFigures:
    """The figures of the open leads held by `indexes` and `rows` (disjoint sets of leads) at T = as_of.

    `rows`: runs of (lead_id, stage, stay_start, owner, team, source, amount), one per open
    lead that no index holds (`pulse report`'s own leads, a peer's share): read in one pass,
    cheaper than indexing them for one report. Costs per group and per stale lead (and
    ended stays not yet swept) of the indexes, never per open lead they hold."""
    n = len(pipeline.stages)
    limits = [st.stale_after_us for st in pipeline.stages]
    groups = [index.groups for index in indexes]
    stale: list[tuple] = []
    for index in indexes:
        _stale_of_index(index, limits, as_of, stale)
    seen = bool(groups)
    for run in rows:
        scanned = _scan(run, limits, as_of, stale)
        if scanned:
            groups.append(scanned)
            seen = True
    # per dimension: value -> the (counts, amounts) of its groups, added up once per value (in C)
    segments: tuple[dict, ...] = tuple({} for _ in DIMENSIONS)
    every = []
    for group in groups:
        for values, pair in group.items():
            every.append(pair)
            for by_value, value in zip(segments, values):
                of_value = by_value.get(value)
                if of_value is None:
                    by_value[value] = [pair]
                else:
                    of_value.append(pair)
    stale.sort(key=_STAY_ORDER)                 # (stay_start, lead_id): age descending, then lead_id
    by_stage = [0] * n
    # (stage, level) for every stage that can go stale, once any open lead was looked at
    by_level = {(stage, level): 0 for stage, limit in enumerate(limits) if limit is not None
                for level in (1, 2, 3)} if seen else {}
    cut2 = [0 if limit is None else as_of - 2 * limit for limit in limits]
    cut3 = [0 if limit is None else as_of - 3 * limit for limit in limits]
    for stay_start, _, row in stale:            # the stale count of each lead's stage and level
        stage = row[STAGE]
        by_stage[stage] += 1
        # stale_level, inlined: stale means stay_start < T - limit; level k: stay_start < T - k × limit
        by_level[(stage, 3 if stay_start < cut3[stage] else 2 if stay_start < cut2[stage] else 1)] += 1
    stale_rows = [row for _, _, row in stale]   # per dimension: value -> stale leads (counted in C)
    stale_of = [Counter(map(itemgetter(field), stale_rows)) for field in (OWNER, TEAM, SOURCE)]
    total = _added(every, n)
    open_segments = {
        dim: [{"value": v, **_added(by_value[v], n).totals(pipeline), "stale": stale_counts.get(v, 0)}
              for v in sort_values(by_value)]
        for dim, by_value, stale_counts in zip(DIMENSIONS, segments, stale_of)
    }
    return OpenFigures(total, by_stage, by_level, open_segments, stale, as_of, pipeline)


def _added(pairs: list[tuple[list[int], list[int]]], n: int) -> OpenPipeline:
    """The OpenPipeline of groups given as (open leads per stage, exact amount per stage)."""
    total = OpenPipeline(n)
    if pairs:
        total.count = [sum(column) for column in zip(*[counts for counts, _ in pairs])]
        total.amount = [sum(column) for column in zip(*[amounts for _, amounts in pairs])]
    return total


def _stale_of_index(index: OpenIndex, limits: list, as_of: int, stale: list[tuple]) -> None:
    """Add the index's stale leads to `stale`, as (stay_start, lead_id, row)."""
    held = index.held
    for stage, stays in enumerate(index.stays):
        if stays is None:
            continue
        cut = as_of - limits[stage]
        keys = stays.keys
        stale_keys = keys[:bisect_left(keys, (cut,))] if stays.ordered else [k for k in keys if k[0] < cut]
        for stay_start, lead_id in stale_keys:                              # stale: stay_start < T - limit
            row = held.get(lead_id)
            if row is None or row[STAGE] != stage or row[STAY_START] != stay_start:
                continue                                                    # a stay that ended
            stale.append((stay_start, lead_id, row))


def _scan(rows: Iterable[tuple], limits: list, as_of: int, stale: list[tuple]) -> dict:
    """The groups of open leads given as rows (OpenIndex.groups' layout); adds their stale ones to `stale`."""
    n = len(limits)
    cuts = [_NEVER_STALE if limit is None else as_of - limit for limit in limits]
    groups: dict[tuple, tuple[list[int], list[int]]] = {}
    get = groups.get
    for lead_id, stage, start, owner, team, source, amount in rows:
        key = (owner, team, source)
        group = get(key)
        if group is None:
            group = groups[key] = ([0] * n, [0] * n)
        group[0][stage] += 1
        if amount:
            group[1][stage] += _fixed(amount) or to_fixed(amount)
        if start < cuts[stage]:                 # stale: stay_start < T - limit
            stale.append((start, lead_id, (stage, start, owner, team, source, amount)))
    return groups


_NEVER_STALE = -(1 << 80)       # the cut of a stage without a stale limit: before any stay_start


_STAY_ORDER = itemgetter(0, 1)
