"""The report document (SPEC section 5), assembled from the engine's accumulators at T.

`build_figures` computes the figures once (`ReportFigures`, typed): the report renders
them as the document; /metrics reads them without materialising the stale list.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from pulse.schemas.config import Config
from pulse.schemas.timestamps import format_timestamp, parse_timestamp

from .deals import DIMENSIONS, sort_values
from .engine import PipelineState, PulseEngine
from .flow import stage_report
from .forecast import forecast, open_at_day_starts
from .open_index import OpenFigures
from .velocity import deal_metrics, deal_rates, lead_velocity_rate
from .windows import previous_window_days, window_days

LVR_DAYS = 30  # SPEC 4.6: always 30 days, whatever `windows` holds


def build_report(lines: Iterable[bytes | str], config: Config, as_of: str | None = None, *,
                 now_us: int | None = None) -> dict:
    """`pulse report` as a function: JSON Lines inputs in, the SPEC 5 document out.

    T is `as_of`, else the latest occurred_at of a valid event, else `now_us` (SPEC 7);
    ValueError when none of them is given."""
    as_of_us = None
    if as_of is not None:
        as_of_us = parse_timestamp(as_of)
        if as_of_us is None:
            raise ValueError(f"as_of is not an RFC 3339 timestamp with offset: {as_of!r}")
    engine = PulseEngine(config, as_of=as_of_us)
    for line in lines:
        if line.strip():
            engine.ingest(line)
    as_of_us = engine.default_as_of(now_us)
    if as_of_us is None:
        raise ValueError("no as_of, no valid event and no now_us: the report time T is undefined")
    return build_document(engine, as_of_us)


@dataclass(frozen=True)
class PipelineFigures:
    section: dict           # the pipeline's SPEC 5 section, its `stale` list left empty
    open: OpenFigures       # the open leads' figures, the stale list among them

    def document(self) -> dict:
        return {**self.section, "stale": self.open.stale_entries()}     # same key order


@dataclass(frozen=True)
class ReportFigures:
    """Every figure of the report at T, computed once (in time per group, day and stale lead)."""
    as_of: int
    data_quality: dict
    pipelines: dict[str, PipelineFigures]

    def document(self, only_pipeline: str | None = None) -> dict:
        return {"as_of": format_timestamp(self.as_of), "data_quality": self.data_quality,
                "pipelines": {name: p.document() for name, p in self.pipelines.items()
                              if only_pipeline is None or name == only_pipeline}}


def build_figures(engine: PulseEngine, as_of: int, only_pipeline: str | None = None) -> ReportFigures:
    pipelines = {
        name: pipeline_figures(p, as_of, engine.config)
        for name, p in engine.pipelines.items()
        if only_pipeline is None or name == only_pipeline
    }
    return ReportFigures(as_of, engine.data_quality(), pipelines)


def build_document(engine: PulseEngine, as_of: int, only_pipeline: str | None = None) -> dict:
    """The SPEC 5 document of `engine` at T = `as_of` (all pipelines, or only `only_pipeline`)."""
    return build_figures(engine, as_of, only_pipeline).document()


def pipeline_figures(p: PipelineState, as_of: int, config: Config) -> PipelineFigures:
    pc = p.config
    figures = p.open_figures(as_of)
    open_pipeline = figures.pipeline
    opportunities = open_pipeline.opportunities(pc.opportunity_index)
    spans = [(w, window_days(as_of, w.days)) for w in config.windows]
    opening = open_at_day_starts(p.flow, [days.first for _, days in spans], pc)
    windows = {}
    for w, days in spans:
        stage_windows, transitions = p.flow.window(days)
        deals = deal_metrics(p.deals.window(days), opportunities)
        windows[w.key] = {
            "from": format_timestamp(days.start_us),
            "to": format_timestamp(as_of),
            **deals,
            "stages": {st.name: stage_report(stage_windows[st.index]) for st in pc.stages},
            "transitions": {
                f"{pc.stages[a].name}->{pc.stages[b].name}": n for (a, b), n in sorted(transitions.items())
            },
            "segments": {
                dim: [{"value": v, **deal_rates(by_value[v])} for v in sort_values(by_value)]
                for dim, by_value in zip(DIMENSIONS, p.deals.segments(days))
            },
            "forecast": forecast(opening[days.first], deals["won_amount"]),
        }
    current = p.deals.window(window_days(as_of, LVR_DAYS)).qualified
    previous = p.deals.window(previous_window_days(as_of, LVR_DAYS)).qualified
    return PipelineFigures({
        "open": {**open_pipeline.report(pc, figures.stale_by_stage), "segments": figures.segments},
        "stale": [],
        "windows": windows,
        "lead_velocity_rate": lead_velocity_rate(current, previous),
    }, figures)
