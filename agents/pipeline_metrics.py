"""The pipeline metrics of GET /metrics, read off the report's figures (pure: no I/O, no engine).

The collector (agents/metrics.py) computes the figures once per scrape with the same
engine and the same T as GET /report (`LivePulse.own_figures()`: the SPEC 5
sections, and the stale counts by stage and level without the stale list), and this
module turns them into gauges: the report's formulas are not written a second time.

Segments (SPEC 4.8) are exported per `team` and per `source`, never per `owner`: rep
names are PII and stay out of metric labels (per-owner figures are the Redis
scorecards, docs/redis.md). Cardinality is bounded per pipeline and dimension
(`segment_labels`): at most SEGMENT_LIMIT label values, the `null` value exported as
`none`, and when there are more values than that, the first SEGMENT_LIMIT - 1 by rank
are kept and the rest summed under `other`.
"""
from __future__ import annotations

import importlib.resources
import math
from collections import Counter
from typing import TYPE_CHECKING, Iterable

import yaml

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

if TYPE_CHECKING:
    from pulse.streams.report import ReportFigures

__all__ = ["PIPELINE_METRICS", "PROCESSING_METRICS", "SEGMENT_DIMENSIONS", "SEGMENT_LIMIT", "NONE", "OTHER", "Families",
           "segment_labels", "pipeline_gauges", "pipeline_families", "pipeline_exposition"]

DAY_S = 86_400
SEGMENT_DIMENSIONS = ("team", "source")     # SPEC 4.8's dimensions that may be labels (not owner)
SEGMENT_LIMIT = 50                          # label values per pipeline and dimension, `other` included
NONE = "none"                               # the label value of SPEC's `null` (never given)
OTHER = "other"                             # the label value of the values beyond the limit, summed

# name -> (type, help), from the one catalog of the worker's metrics (metric_catalog.yaml).
_CATALOG = yaml.safe_load(importlib.resources.files(__package__).joinpath("metric_catalog.yaml").read_text("utf-8"))


def _segment_metrics(d: str) -> dict[str, tuple[str, str]]:
    limit = (f" By {d} (SPEC 4.8): null as \"{NONE}\"; beyond {SEGMENT_LIMIT - 1} values per pipeline "
             f"the rest summed as \"{OTHER}\" (docs/operations.md).")
    return {name.format(d=d): (kind, text.format(d=d, limit=limit)) for name, (kind, text) in _CATALOG["segments"].items()}


def _pipeline_metrics() -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for name, entry in _CATALOG["pipeline"].items():
        if name == "$segments":                     # the per-dimension families go here
            for d in SEGMENT_DIMENSIONS:
                out.update(_segment_metrics(d))
        else:
            out[name] = (entry[0], entry[1])
    return out


# Everything a SPEC 5 document determines; and this process's processing metrics (agents/metrics.py).
PIPELINE_METRICS: dict[str, tuple[str, str]] = _pipeline_metrics()
PROCESSING_METRICS: dict[str, tuple[str, str]] = {name: (kind, text) for name, (kind, text) in _CATALOG["processing"].items()}


class Families:
    """Metric families by name, created on first use with the type and help of `catalog`."""

    def __init__(self, catalog: dict[str, tuple[str, str]]) -> None:
        self.catalog = catalog
        self.by_name: dict[str, Metric] = {}

    def gauge(self, name: str, labels: Iterable[str], value: float | None, values: tuple = ()) -> None:
        if value is None:                       # SPEC `null`: no sample (PromQL: absent, not NaN)
            return
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = GaugeMetricFamily(name, self.catalog[name][1], labels=list(labels))
        family.add_metric(list(values), value)

    def declare(self, name: str, labels: Iterable[str]) -> None:
        """Emit the HELP/TYPE of a gauge even when it has no sample (e.g. no stale lead)."""
        if name not in self.by_name:
            self.by_name[name] = GaugeMetricFamily(name, self.catalog[name][1], labels=list(labels))


# --------------------------------------------------------------------------------------
# Bounded segment labels
# --------------------------------------------------------------------------------------

def segment_labels(pipeline: dict, dimension: str, limit: int = SEGMENT_LIMIT) -> dict[str | None, str]:
    """SPEC value -> label value, for every value of `dimension` in one pipeline's document.

    `null` (and "", which Prometheus cannot tell from a missing label) is `none`. With at
    most `limit` values, each is its own label value. With more, the values are ranked by
    open leads at T, then leads created in the longest window, then closes (won + lost) in
    it, all descending, then by value (UTF-8 bytes; `null` first of equals): the first
    `limit - 1` keep their label value, the rest map to `other`. The same mapping serves
    every gauge of the pipeline and dimension, so `other` is the same set everywhere.
    """
    open_count: Counter = Counter()
    for e in pipeline["open"]["segments"][dimension]:
        open_count[e["value"]] = e["count"]
    values = set(open_count)
    windows = list(pipeline["windows"].values())
    created: Counter = Counter()
    closed: Counter = Counter()
    longest = min(windows, key=lambda w: w["from"], default=None)    # earliest `from`: the longest window
    for w in windows:
        for e in w["segments"][dimension]:
            values.add(e["value"])
            if w is longest:
                created[e["value"]] = e["leads_created"]
                closed[e["value"]] = e["won"] + e["lost"]

    def label(value: str | None) -> str:
        return NONE if value is None or value == "" else value

    if len(values) <= limit:
        return {v: label(v) for v in values}
    ranked = sorted(values, key=lambda v: (-open_count[v], -created[v], -closed[v], v is not None,
                                           (v or "").encode()))
    kept = set(ranked[:limit - 1])
    return {v: label(v) if v in kept else OTHER for v in values}


# --------------------------------------------------------------------------------------
# Document -> gauges
# --------------------------------------------------------------------------------------

def _seconds(days: float | None) -> float | None:
    return None if days is None else days * DAY_S


def pipeline_gauges(f: Families, figures: ReportFigures, leads_in_state: dict[str, int], as_of_s: float) -> None:
    """Every pipeline metric of the report's figures at T (all pipelines) into `f`."""
    f.declare("pulse_open_leads", ("pipeline", "stage"))
    f.declare("pulse_stale_leads", ("pipeline", "stage", "level"))
    for name, figures_of in figures.pipelines.items():
        p = figures_of.section
        _open(f, name, p, figures_of.open.stale_by_stage_level())
        f.gauge("pulse_leads_in_state", ("pipeline",), leads_in_state.get(name, 0), (name,))
        for window, w in p["windows"].items():
            _window(f, name, window, w)
        lvr = p["lead_velocity_rate"]
        for period in ("current", "previous"):
            f.gauge("pulse_lead_velocity_qualified_leads", ("pipeline", "period"), lvr[period], (name, period))
        f.gauge("pulse_lead_velocity_ratio", ("pipeline",), lvr["rate"], (name,))
        for dimension in SEGMENT_DIMENSIONS:
            _segments(f, name, p, dimension)
    dq = figures.data_quality
    for outcome in ("applied", "duplicates", "after_as_of", "dead_lettered"):
        f.gauge("pulse_data_quality_inputs", ("outcome",), dq[outcome], (outcome,))
    for reason, n in dq["dead_letter_reasons"].items():
        f.gauge("pulse_data_quality_dead_letters", ("reason",), n, (reason,))
    f.gauge("pulse_data_quality_implicit_creates", (), dq["implicit_creates"])
    f.gauge("pulse_as_of_timestamp_seconds", (), as_of_s)


def _open(f: Families, name: str, p: dict, stale: dict[tuple[str, int], int]) -> None:
    for stage, o in p["open"]["stages"].items():
        labels = (name, stage)
        f.gauge("pulse_open_leads", ("pipeline", "stage"), o["count"], labels)
        f.gauge("pulse_open_amount", ("pipeline", "stage"), o["amount"], labels)
        f.gauge("pulse_open_weighted_amount", ("pipeline", "stage"), o["weighted_amount"], labels)
        for level in (1, 2, 3):
            f.gauge("pulse_stale_leads", ("pipeline", "stage", "level"), stale.get((stage, level), 0),
                    (name, stage, str(level)))
    f.gauge("pulse_open_opportunities", ("pipeline",), p["open"]["opportunities"], (name,))


def _window(f: Families, name: str, window: str, w: dict) -> None:
    pw = ("pipeline", "window")
    lv = (name, window)
    f.gauge("pulse_leads_created", pw, w["leads_created"], lv)
    f.gauge("pulse_qualified_leads", pw, w["qualified_leads"], lv)
    for outcome in ("won", "lost"):
        f.gauge("pulse_deals_closed", (*pw, "outcome"), w[outcome], (*lv, outcome))
    f.gauge("pulse_won_amount", pw, w["won_amount"], lv)
    cycle = w["sales_cycle_days"]
    f.gauge("pulse_sales_cycle_sum_seconds", pw, (cycle["mean"] or 0.0) * cycle["count"] * DAY_S, lv)
    f.gauge("pulse_win_ratio", pw, w["win_rate"], lv)
    f.gauge("pulse_close_ratio", pw, w["close_rate"], lv)
    f.gauge("pulse_average_deal_size", pw, w["avg_deal_size"], lv)
    f.gauge("pulse_sales_cycle_mean_seconds", pw, _seconds(cycle["mean"]), lv)
    f.gauge("pulse_sales_velocity_per_day", pw, w["sales_velocity_per_day"], lv)

    pws = (*pw, "stage")
    for stage, s in w["stages"].items():
        lvs = (*lv, stage)
        f.gauge("pulse_stage_entered", pws, s["entered"], lvs)
        for outcome in ("advanced", "regressed", "won", "lost"):
            f.gauge("pulse_stage_exits", (*pws, "outcome"), s[outcome], (*lvs, outcome))
        f.gauge("pulse_stage_conversion_ratio", pws, s["conversion_rate"], lvs)
        f.gauge("pulse_stage_drop_off_ratio", pws, s["drop_off_rate"], lvs)
        dwell = s["dwell_days"]
        f.gauge("pulse_stage_dwell_sum_seconds", pws, (dwell["mean"] or 0.0) * s["exited"] * DAY_S, lvs)
        f.gauge("pulse_stage_dwell_mean_seconds", pws, _seconds(dwell["mean"]), lvs)
        f.gauge("pulse_stage_dwell_p50_seconds", pws, _seconds(dwell["p50"]), lvs)
        f.gauge("pulse_stage_dwell_p90_seconds", pws, _seconds(dwell["p90"]), lvs)
    f.declare("pulse_stage_transitions", (*pw, "from_stage", "to_stage"))
    for pair, n in w["transitions"].items():
        a, b = pair.split("->", 1)
        f.gauge("pulse_stage_transitions", (*pw, "from_stage", "to_stage"), n, (*lv, a, b))

    forecast = w["forecast"]
    start = forecast["open_at_start"]
    f.gauge("pulse_forecast_open_at_start_leads", pw, start["count"], lv)
    f.gauge("pulse_forecast_open_at_start_amount", pw, start["amount"], lv)
    f.gauge("pulse_forecast_open_at_start_weighted_amount", pw, start["weighted_amount"], lv)
    f.gauge("pulse_forecast_attainment_ratio", pw, forecast["attainment"], lv)


_OPEN_FIELDS = (("open_leads", "count"), ("open_amount", "amount"), ("open_weighted_amount", "weighted_amount"),
                ("stale_leads", "stale"))


def _segments(f: Families, name: str, p: dict, d: str) -> None:
    """One dimension's gauges; entries sharing a label value (`other`, or a real value that
    reads like a reserved one) are summed (math.fsum: amounts stay within one rounding)."""
    label_of = segment_labels(p, d)
    labels = ("pipeline", d)
    for suffix, _ in _OPEN_FIELDS:
        f.declare(f"pulse_{d}_{suffix}", labels)
    summed: dict[str, list[list[float]]] = {}
    for e in p["open"]["segments"][d]:
        sums = summed.setdefault(label_of[e["value"]], [[] for _ in _OPEN_FIELDS])
        for i, (_, field) in enumerate(_OPEN_FIELDS):
            sums[i].append(e[field])
    for value, sums in summed.items():
        for (suffix, field), xs in zip(_OPEN_FIELDS, sums):
            total = sum(xs) if field in ("count", "stale") else math.fsum(xs)
            f.gauge(f"pulse_{d}_{suffix}", labels, total, (name, value))

    pw = ("pipeline", "window", d)
    for suffix in ("leads_created", "won_amount", "sales_cycle_sum_seconds"):
        f.declare(f"pulse_{d}_{suffix}", pw)
    f.declare(f"pulse_{d}_deals_closed", (*pw, "outcome"))
    for window, w in p["windows"].items():
        by_label: dict[str, list] = {}
        for e in w["segments"][d]:
            s = by_label.setdefault(label_of[e["value"]], [0, 0, 0, [], []])
            s[0] += e["leads_created"]
            s[1] += e["won"]
            s[2] += e["lost"]
            s[3].append(e["won_amount"])
            cycle = e["sales_cycle_days"]
            s[4].append((cycle["mean"] or 0.0) * cycle["count"] * DAY_S)
        for value, (created, won, lost, won_amount, cycle_s) in by_label.items():
            lv = (name, window, value)
            f.gauge(f"pulse_{d}_leads_created", pw, created, lv)
            f.gauge(f"pulse_{d}_deals_closed", (*pw, "outcome"), won, (*lv, "won"))
            f.gauge(f"pulse_{d}_deals_closed", (*pw, "outcome"), lost, (*lv, "lost"))
            f.gauge(f"pulse_{d}_won_amount", pw, math.fsum(won_amount), lv)
            f.gauge(f"pulse_{d}_sales_cycle_sum_seconds", pw, math.fsum(cycle_s), lv)


def pipeline_families(figures: ReportFigures, leads_in_state: dict[str, int], as_of_us: int) -> list[Metric]:
    f = Families(PIPELINE_METRICS)
    pipeline_gauges(f, figures, leads_in_state, as_of_us / 1e6)
    return list(f.by_name.values())


class _Families:
    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def pipeline_exposition(figures: ReportFigures, leads_in_state: dict[str, int], as_of_us: int) -> bytes:
    """The pipeline gauges as text exposition, to serve with the processing metrics' text."""
    return generate_latest(_Families(pipeline_families(figures, leads_in_state, as_of_us)))
