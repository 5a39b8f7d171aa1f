"""The report document (SPEC section 5), assembled from the engine's accumulators at T."""
from __future__ import annotations

from typing import Iterable

from pulse.config import Config
from pulse.schemas.parse import format_timestamp, parse_timestamp

from .deals import DIMENSIONS, sort_values
from .engine import PipelineState, PulseEngine
from .flow import stage_report
from .forecast import forecast, open_at_day_starts
from .open_index import open_figures
from .velocity import deal_metrics, deal_rates, lead_velocity_rate
from .windows import previous_window_days, window_days

LVR_DAYS = 30  # SPEC 4.6: always 30 days, whatever `windows` holds


def build_report(lines: Iterable[bytes | str], config: Config, as_of: str | None = None) -> dict:
    """`pulse report` as a function: JSON Lines inputs in, the SPEC 5 document out."""
    as_of_us = None
    if as_of is not None:
        as_of_us = parse_timestamp(as_of)
        if as_of_us is None:
            raise ValueError(f"as_of is not an RFC 3339 timestamp with offset: {as_of!r}")
    engine = PulseEngine(config, as_of=as_of_us)
    for line in lines:
        if line.strip():
            engine.ingest(line)
    return engine.report()


def build_document(engine: PulseEngine, as_of: int, only_pipeline: str | None = None,
                   stale_rows: bool = True) -> dict:
    pipelines = {
        name: pipeline_report(p, as_of, engine.config, stale_rows)
        for name, p in engine.pipelines.items()
        if only_pipeline is None or name == only_pipeline
    }
    return {"as_of": format_timestamp(as_of), "data_quality": engine.data_quality(), "pipelines": pipelines}


def pipeline_report(p: PipelineState, as_of: int, config: Config, stale_rows: bool = True) -> dict:
    """One pipeline's section at T. `stale_rows=False`: an empty `stale` list (/metrics reads
    the stale counts by level from `open_figures` instead of materialising every row)."""
    pc = p.config
    figures = open_figures(p.open_indexes(), pc, as_of)
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
    return {
        "open": {**open_pipeline.report(pc, figures.stale_by_stage), "segments": figures.segments},
        "stale": figures.stale_entries() if stale_rows else [],
        "windows": windows,
        "lead_velocity_rate": lead_velocity_rate(current, previous),
    }
