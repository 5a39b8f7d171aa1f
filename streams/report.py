"""The report document (SPEC section 5), assembled from the engine's accumulators at T."""
from __future__ import annotations

from typing import Iterable

from pulse.config import Config
from pulse.schemas.parse import format_timestamp, parse_timestamp

from .deals import DIMENSIONS, sort_values
from .engine import PipelineState, PulseEngine
from .flow import stage_report
from .forecast import forecast, open_at_day_starts
from .open_pipeline import OpenPipeline
from .staleness import stale_level
from .velocity import deal_metrics, deal_rates, lead_velocity_rate
from .windows import DAY_US, previous_window_days, window_days

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


def build_document(engine: PulseEngine, as_of: int, only_pipeline: str | None = None) -> dict:
    pipelines = {
        name: pipeline_report(p, as_of, engine.config)
        for name, p in engine.pipelines.items()
        if only_pipeline is None or name == only_pipeline
    }
    return {"as_of": format_timestamp(as_of), "data_quality": engine.data_quality(), "pipelines": pipelines}


def pipeline_report(p: PipelineState, as_of: int, config: Config) -> dict:
    pc = p.config
    open_pipeline, stale, stale_by_stage, open_segments = scan_open_leads(p, as_of)
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
        "open": {**open_pipeline.report(pc, stale_by_stage), "segments": open_segments},
        "stale": stale,
        "windows": windows,
        "lead_velocity_rate": lead_velocity_rate(current, previous),
    }


def scan_open_leads(p: PipelineState, as_of: int) -> tuple[OpenPipeline, list[dict], list[int], dict]:
    """One pass over the open leads at T: the open pipeline (SPEC 4.4) and its segments
    (4.8), and the stale leads (4.5) sorted by age descending then lead_id, with their
    count per stage."""
    stages = p.config.stages
    n = len(stages)
    limits = [st.stale_after_us for st in stages]
    by_stage = [0] * n
    open_pipeline = OpenPipeline(n)
    # Leads grouped by (stage, owner, team, source) first: far fewer groups than leads, so
    # the per-dimension tallies below cost per group, not per lead.
    groups: dict[tuple, list] = {}          # key -> [open pipeline of the group's stage, stale count]
    found = []
    for lead in p.open_leads.values():
        stage = lead.stage
        key = (stage, lead.owner, lead.team, lead.source)
        g = groups.get(key)
        if g is None:
            g = groups[key] = [OpenPipeline(n), 0]
        g[0].add(stage, lead.amount)
        limit = limits[stage]
        if limit is not None:
            age = as_of - lead.stay_start
            if age > limit:
                g[1] += 1
                by_stage[stage] += 1
                found.append((-age, lead.lead_id, lead, limit))
    segments: tuple[dict, ...] = tuple({} for _ in DIMENSIONS)     # per dimension: value -> [pipeline, stale]
    for (stage, *values), (group, stale) in groups.items():
        open_pipeline.merge(group)
        for by_value, value in zip(segments, values):
            entry = by_value.get(value)
            if entry is None:
                entry = by_value[value] = [OpenPipeline(n), 0]
            entry[0].merge(group)
            entry[1] += stale
    found.sort(key=lambda f: (f[0], f[1]))
    entries = [
        {
            "lead_id": lead.lead_id,
            "stage": stages[lead.stage].name,
            "since": format_timestamp(lead.stay_start),
            "age_days": -neg_age / DAY_US,
            "stale_after_days": limit / DAY_US,
            "level": stale_level(-neg_age, limit),
            "owner": lead.owner,
            "team": lead.team,
            "amount": lead.amount,
        }
        for neg_age, _, lead, limit in found
    ]
    open_segments = {
        dim: [{"value": v, **by_value[v][0].totals(p.config), "stale": by_value[v][1]} for v in sort_values(by_value)]
        for dim, by_value in zip(DIMENSIONS, segments)
    }
    return open_pipeline, entries, by_stage, open_segments
