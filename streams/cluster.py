"""The report's figures over several engines that hold disjoint leads (a live worker's
partitions), kept up to date between reports instead of merged for each one.

`PulseEngine.merge` + `build_figures` give the figures of several engines by adding up
every day bucket of every engine and walking every group of open leads: ~0.2 s at
130,000 leads, too long for the event loop, hence a forked child per build before.
`ClusterFigures` keeps the cross-engine sums between calls (window_totals.py: day
buckets and windows; open_sums.py: the open leads) and takes from each engine
only what changed since its previous call, so a call costs in what changed (and in the
stale leads at T), not in the leads held.

The figures come out of the same code as every report's (`report.build_figures` over a
view that reads like a PulseEngine), so they are equal wherever the sums are: property
tests check them against the merged engines (tests/streams/test_cluster.py).
Pure: no clock, no I/O; the caller gives the engines and T, at one instant.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterator, Sequence

from pulse.schemas.config import Config, PipelineConfig
from pulse.schemas.types import REASONS

from .engine import PulseEngine
from .open_index import OpenFigures, OpenIndex
from .open_sums import OpenSums
from .report import LVR_DAYS, ReportFigures, build_figures
from .window_totals import DealTotals, FlowTotals
from .windows import previous_window_days, window_days

__all__ = ["ClusterFigures", "ClusterView"]


class _PipelineView:
    """What `report.pipeline_figures` reads of a PipelineState, over several engines' shares."""

    __slots__ = ("config", "flow", "deals", "implicit_creates", "open_totals", "indexes")

    def __init__(self, config: PipelineConfig):
        self.config = config
        self.flow = FlowTotals(len(config.stages))
        self.deals = DealTotals()
        self.open_totals = OpenSums(config)
        self.implicit_creates = 0
        self.indexes: list[OpenIndex] = []

    def open_figures(self, as_of: int) -> OpenFigures:
        return self.open_totals.figures(self.indexes, as_of)


class ClusterView:
    """Reads like the PulseEngine that merging the engines would give (`build_figures`,
    `default_as_of`), from the sums ClusterFigures keeps. Valid until the engines change."""

    def __init__(self, config: Config, pipelines: dict[str, _PipelineView]):
        self.config = config
        self.pipelines = pipelines
        self.events_read = self.applied = self.duplicates = self.after_as_of = 0
        self.dead_letter_reasons: Counter = Counter({r: 0 for r in REASONS})
        self.max_ts: int | None = None

    add_counters = PulseEngine.add_counters       # what merging the engines would add up
    data_quality = PulseEngine.data_quality


class ClusterFigures:
    """The report figures of several engines (disjoint leads, each with its open leads indexed
    per event: `PipelineState.open_index`), kept as sums between calls (module docstring)."""

    def __init__(self, config: Config):
        self.config = config
        self._pipelines = {name: _PipelineView(pc) for name, pc in config.pipelines.items()}

    def view(self, engines: Sequence[PulseEngine]) -> ClusterView:
        """Take what changed in `engines` since the previous call; a view of their sum now."""
        view = ClusterView(self.config, self._pipelines)
        for engine in engines:
            view.add_counters(engine)
        for name, p in self._pipelines.items():
            shares = [engine.pipelines[name] for engine in engines]
            p.flow.refresh([s.flow for s in shares])
            p.deals.refresh([s.deals for s in shares])
            p.implicit_creates = sum(s.implicit_creates for s in shares)
            p.indexes = [s.open_index for s in shares]
            if any(index is None for index in p.indexes):
                raise ValueError(f"pipeline {name!r}: an engine without an open-lead index (live engines keep one)")
        return view

    def catch_up_steps(self, engines: Sequence[PulseEngine], as_of: int, *, days_per_step: int = 4,
                       leads_per_step: int = 1_000) -> Iterator[None]:
        """Take what changed in `engines` into the sums in small steps, yielding between them, so
        that the next `figures()` has little left to take (it must run at one instant: the live
        worker's event loop runs between the steps instead). The engines may take events in
        between; they must not be replaced (the caller starts again instead). Stopping early, or
        a `figures()` call in between, is always safe: what a step did not take stays marked."""
        for name, p in self._pipelines.items():
            shares = [engine.pipelines[name] for engine in engines]
            yield from p.flow.refresh_steps([s.flow for s in shares], days_per_step)
            yield from p.deals.refresh_steps([s.deals for s in shares], days_per_step)
            yield from self._slide_steps(p, as_of)
            indexes = [s.open_index for s in shares]
            if any(index is None for index in indexes):
                return
            yield from p.open_totals.catch_up_steps(indexes, as_of, leads_per_step)

    def _slide_steps(self, p: _PipelineView, as_of: int) -> Iterator[None]:
        """Move the windows' running totals (window_totals.py) to T = as_of, one window a step:
        the build at one instant then moves them only by what T moved since. (Catching up a
        backlog, the event clock runs days per second: a build per 12 s moved each window ~12
        days, re-summing ~100 day buckets in the build's one step, ~15 ms at 120,000 leads.)
        Only a cache moves: the totals stay exact whatever T the build then asks."""
        for w in self.config.windows:
            days = window_days(as_of, w.days)
            p.flow.slide(days)
            yield
            p.deals.slide(days)
            yield
        p.deals.slide(window_days(as_of, LVR_DAYS))
        p.deals.slide(previous_window_days(as_of, LVR_DAYS))
        yield

    def figures(self, engines: Sequence[PulseEngine], as_of: int) -> ReportFigures:
        """== build_figures(the engines merged, as_of)."""
        return build_figures(self.view(engines), as_of)  # type: ignore[arg-type]
