"""Prometheus metrics of `pulse worker`: GET /metrics (text exposition format 0.0.4).

Two kinds of numbers, read differently:

- **Pipeline metrics** (`pulse_open_*`, `pulse_stale_leads`, `pulse_stage_*`, `pulse_deals_*`, ...)
  are computed at scrape time from THIS worker's partitions (`LivePulse.merged_engine()`),
  with the same functions and the same T as GET /report. With one worker they equal the
  report's numbers; with several, counts and amounts add up across workers (`sum()` in
  PromQL), rates and means do not (combine the exposed numerators and denominators; see
  docs/operations.md). They are all **gauges**: the accumulators are signed (a late event
  re-derives its lead, e.g. a superseding close moves a won close to another day or
  outcome, a late stage change splits a→c into a→b, b→c), windows slide, and a rebalance
  moves partitions, and so their share, between workers. None of them is monotonic, so
  none is a counter or ends in `_total`.
- **Processing metrics** are this process's own, truly monotonic, counts: events
  consumed by topic and result, dead letters by reason, alerts emitted by type; plus a
  per-event processing-time histogram, consumer lag and readiness. They restart at zero
  with the process, which `rate()`/`increase()` handle.

Hot path: `ProcessingStats.observe` (one dict increment and one bisect into a list,
no lock: the agent and the scrape both run on the worker's event loop). Everything
else runs when Prometheus scrapes.

Label cardinality is bounded by the configuration: pipelines, stages, windows, outcomes,
levels, topics, partitions, reasons. Never lead ids, names or attributes. `team` and
`owner` labels (on the open-pipeline and stale-lead gauges only) are opt-in in the
pipeline configuration:

    metrics:
      labels: [team]          # any of: team, owner
"""
from __future__ import annotations

import importlib.metadata
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from pulse.config import Config, ConfigError
from pulse.schemas.types import REASONS
from pulse.streams.alerts import RESOLVED, SEVERITY, STALE
from pulse.streams.dwell import nearest_rank
from pulse.streams.engine import PulseEngine
from pulse.streams.exact import from_fixed, to_fixed, weighted
from pulse.streams.flow import OUTCOME_NAMES, stage_report
from pulse.streams.report import LVR_DAYS
from pulse.streams.staleness import stale_level
from pulse.streams.velocity import deal_metrics, lead_velocity_rate
from pulse.streams.windows import previous_window_days, window_days

__all__ = ["MetricsOptions", "metrics_options", "ProcessingStats", "PulseCollector", "FaustProbe",
           "make_registry", "render", "METRICS", "CONTENT_TYPE"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
US = 1_000_000

# What LivePulse.on_message returns, besides a dead-letter reason (pulse.schemas.types.REASONS).
RESULTS = ("applied", "redelivered", "duplicate", "after_as_of", "skipped", "dead_lettered")
OPTIONAL_LABELS = ("team", "owner")
# Per-event processing time: from a few microseconds (an in-order event) to a late event's re-fold.
LATENCY_BUCKETS_S = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1)

# name -> (type, help). The names a dashboard or a rule may use (tests cross-check them).
METRICS: dict[str, tuple[str, str]] = {
    # -- pipeline: open pipeline and staleness at T (this worker's partitions) --
    "pulse_open_leads": ("gauge", "Open leads at T by current stage (SPEC 4.4 count)."),
    "pulse_open_amount": ("gauge", "Sum of the amounts of the open leads at T by current stage (SPEC 4.4 amount)."),
    "pulse_open_weighted_amount": ("gauge", "Sum of amount x stage probability of the open leads at T (SPEC 4.4)."),
    "pulse_open_opportunities": ("gauge", "Open leads at T in opportunity_stage or later (SPEC 4.7)."),
    "pulse_stale_leads": ("gauge", "Open leads at T that are stale, by current stage and level 1-3 (SPEC 4.5)."),
    # -- pipeline: per window (labels pipeline, window) --
    "pulse_leads_created": ("gauge", "Leads created in the window (SPEC 4.2 leads_created)."),
    "pulse_qualified_leads": ("gauge", "Leads whose first qualified stay started in the window (SPEC 4.2)."),
    "pulse_deals_closed": ("gauge", "Closes in the window by outcome (SPEC 4.2 won, lost)."),
    "pulse_won_amount": ("gauge", "Sum of the amounts of the won closes in the window (SPEC 4.2 won_amount)."),
    "pulse_sales_cycle_sum_seconds": ("gauge", "Sum over the won closes in the window of close time minus "
                                               "creation time (numerator of the sales cycle mean)."),
    "pulse_win_ratio": ("gauge", "won / (won + lost) in the window (SPEC 4.2 win_rate); absent when 0/0. "
                                 "Not summable across workers."),
    "pulse_close_ratio": ("gauge", "won / leads_created in the window (SPEC 4.2 close_rate); absent when "
                                   "no lead was created. Not summable across workers."),
    "pulse_average_deal_size": ("gauge", "won_amount / won in the window (SPEC 4.2 avg_deal_size); absent when "
                                         "won = 0. Not summable across workers."),
    "pulse_sales_cycle_mean_seconds": ("gauge", "Mean sales cycle of the won closes in the window (SPEC 4.2 "
                                                "sales_cycle_days.mean, in seconds). Not summable."),
    "pulse_sales_velocity_per_day": ("gauge", "open opportunities x win rate x average deal size / sales cycle "
                                              "days (SPEC 4.2, money per day). Not summable."),
    # -- pipeline: stage flow per window (labels pipeline, window, stage) --
    "pulse_stage_entered": ("gauge", "Stays in the stage that started in the window (SPEC 4.3 entered)."),
    "pulse_stage_exits": ("gauge", "Stays in the stage that ended in the window, by outcome (SPEC 4.3)."),
    "pulse_stage_conversion_ratio": ("gauge", "(advanced + won) / exited in the window (SPEC 4.3); absent when "
                                              "exited = 0. Not summable."),
    "pulse_stage_drop_off_ratio": ("gauge", "lost / exited in the window (SPEC 4.3); absent when exited = 0. "
                                            "Not summable."),
    "pulse_stage_dwell_sum_seconds": ("gauge", "Sum of the dwell times of the stays that ended in the window."),
    "pulse_stage_dwell_mean_seconds": ("gauge", "Mean dwell of the stays that ended in the window (SPEC 4.3). "
                                                "Not summable."),
    "pulse_stage_dwell_p50_seconds": ("gauge", "Median dwell (nearest rank, within SPEC 4.3's tolerance) of the "
                                               "stays that ended in the window. Not summable."),
    "pulse_stage_dwell_p90_seconds": ("gauge", "90th percentile dwell (nearest rank, within SPEC 4.3's tolerance) "
                                               "of the stays that ended in the window. Not summable."),
    "pulse_stage_transitions": ("gauge", "Stage changes from_stage -> to_stage in the window (SPEC 4.3)."),
    # -- pipeline: lead velocity rate (always 30 days) --
    "pulse_lead_velocity_qualified_leads": ("gauge", "Qualified leads in the current and the previous 30 days "
                                                     "(SPEC 4.6 current, previous)."),
    "pulse_lead_velocity_ratio": ("gauge", "(current - previous) / previous (SPEC 4.6 rate); absent when "
                                           "previous = 0. Not summable."),
    # -- durable input counts of this worker's partitions (SPEC 5 data_quality) --
    "pulse_data_quality_inputs": ("gauge", "Inputs of this worker's partitions since the topics began, by outcome "
                                           "(SPEC 5 data_quality; durable, moves with partitions)."),
    "pulse_data_quality_dead_letters": ("gauge", "Dead-lettered inputs of this worker's partitions by reason "
                                                 "(SPEC 5 dead_letter_reasons)."),
    "pulse_data_quality_implicit_creates": ("gauge", "Leads created implicitly (SPEC 3 rule 2)."),
    "pulse_leads_in_state": ("gauge", "Leads (open and closed) held in memory by this worker."),
    "pulse_as_of_timestamp_seconds": ("gauge", "T of the pipeline metrics, Unix time (wall clock, or in event-clock "
                                               "mode the latest occurred_at seen)."),
    # -- processing (this process) --
    "pulse_events_consumed": ("counter", "Input messages consumed by this process, by topic and result."),
    "pulse_events_dead_lettered": ("counter", "Input messages sent to the dead-letter topic by this process, "
                                              "by topic and reason."),
    "pulse_alerts_emitted": ("counter", "Alerts sent to the notifications topic by this process, by type and "
                                        "severity."),
    "pulse_event_processing_seconds": ("histogram", "Time to process one input message (parse, apply, alerts)."),
    "pulse_consumer_lag_messages": ("gauge", "Messages in an assigned input partition after the last one consumed "
                                             "(high-water mark minus position)."),
    "pulse_input_buffered_messages": ("gauge", "Input messages fetched and waiting to be merged in timestamp order "
                                               "across the input topics (agents/align.py)."),
    "pulse_input_unacked_messages": ("gauge", "Input messages processed whose state is not yet durable; acked to "
                                              "the consumer group once it is (agents/batching.py)."),
    "pulse_state_flush_seconds": ("gauge", "Duration of the last write of dirty state, dead letters and alerts, "
                                           "until the broker acknowledged them."),
    "pulse_stale_checks_held": ("gauge", "lead.stale checks due but held back because their partition is catching "
                                         "up on a backlog (wall clock; they run once it has applied it)."),
    "pulse_partitions_catching_up": ("gauge", "Assigned input partitions whose stale checks are held until they have "
                                              "applied their backlog (wall clock)."),
    "pulse_assigned_partitions": ("gauge", "Input partitions assigned to this worker."),
    "pulse_state_ready": ("gauge", "1 when this worker's state is recovered from the changelog, else 0."),
    "pulse_rebalancing": ("gauge", "1 while the consumer group is rebalancing, else 0."),
    "pulse_build_info": ("gauge", "Always 1; the label carries the Pipeline Pulse version."),
}


# --------------------------------------------------------------------------------------
# Configuration: the `metrics:` section of the pipeline configuration
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricsOptions:
    labels: tuple[str, ...] = ()      # extra labels of the open-pipeline and stale gauges: team, owner


def metrics_options(config: Config) -> MetricsOptions:
    """Validate the `metrics:` section (Config.extra); raises ConfigError(file, key, problem)."""
    section = config.extra.get("metrics")
    if section is None:
        return MetricsOptions()
    if not isinstance(section, dict):
        raise ConfigError(config.source, "metrics", "expected a mapping like {labels: [team]}")
    for key in section:
        if key != "labels":
            raise ConfigError(config.source, f"metrics.{key}", "unknown key (known: labels)")
    labels = section.get("labels")
    if labels is None:
        return MetricsOptions()
    if not isinstance(labels, list):
        raise ConfigError(config.source, "metrics.labels", f"expected a list of {' or '.join(OPTIONAL_LABELS)}")
    for i, label in enumerate(labels):
        if label not in OPTIONAL_LABELS:
            raise ConfigError(config.source, f"metrics.labels[{i}]",
                              f"{label!r} is not an allowed label (allowed: {', '.join(OPTIONAL_LABELS)}; "
                              "lead ids and attributes are never labels)")
        if label in labels[:i]:
            raise ConfigError(config.source, f"metrics.labels[{i}]", f"{label!r} is listed twice")
    return MetricsOptions(tuple(label for label in OPTIONAL_LABELS if label in labels))


# --------------------------------------------------------------------------------------
# The hot path
# --------------------------------------------------------------------------------------

class ProcessingStats:
    """Per-message counts by (topic, result) and a processing-time histogram; O(1), lock-free.
    Also the input path's buffers (agents/batching.py, agents/align.py), set by the worker."""

    __slots__ = ("consumed", "bounds_ns", "buckets", "sum_ns", "buffered", "unacked", "flush_seconds")

    def __init__(self, bounds_s: tuple[float, ...] = LATENCY_BUCKETS_S):
        self.consumed: dict[tuple[str, str], int] = {}
        self.bounds_ns = [round(b * 1e9) for b in bounds_s]
        self.buckets = [0] * (len(bounds_s) + 1)      # last: above the largest bound
        self.sum_ns = 0
        self.buffered = 0           # fetched, waiting in the TimeAligner
        self.unacked = 0            # processed, waiting for their state to be durable
        self.flush_seconds = 0.0    # how long the last DurableAcks.flush took

    def observe(self, topic: str, result: str, elapsed_ns: int) -> None:
        key = (topic, result)
        self.consumed[key] = self.consumed.get(key, 0) + 1
        self.buckets[bisect_left(self.bounds_ns, elapsed_ns)] += 1
        self.sum_ns += elapsed_ns


# --------------------------------------------------------------------------------------
# What the Faust app knows (consumer lag, rebalancing); absent in unit tests
# --------------------------------------------------------------------------------------

class FaustProbe:
    """Reads consumer positions and group state from a running Faust app.

    Lag = the consumer's high-water mark (from its last fetch) minus the position after
    the last message this worker consumed (LivePulse's recorded offsets). The embedded
    Tansu broker reports a partition's end as the base offset of its last batch (see
    changelog.py), so there the lag reads low by up to one batch; it is clamped at 0.
    On Apache Kafka it is exact to the last fetch.
    """

    def __init__(self, app: Any, input_topics: Iterable[str]):
        self.app = app
        self.input_topics = frozenset(input_topics)

    def lag(self, offsets_of: Callable[[int], dict[str, int] | None]) -> list[tuple[str, int, int]]:
        try:
            consumer = self.app.consumer
            assignment = consumer.assignment()
        except Exception:                       # not started yet, or stopping
            return []
        found = []
        for tp in assignment:
            if tp.topic not in self.input_topics:
                continue
            try:
                highwater = consumer.highwater(tp)
            except Exception:                   # revoked between the two calls
                continue
            if highwater is None:               # no fetch answered yet
                continue
            offsets = offsets_of(tp.partition) or {}
            last = offsets.get(tp.topic)
            position = last + 1 if last is not None else 0
            found.append((tp.topic, tp.partition, max(0, highwater - position)))
        return found

    def assigned(self) -> int | None:
        try:
            return sum(1 for tp in self.app.consumer.assignment() if tp.topic in self.input_topics) // max(
                1, len(self.input_topics))
        except Exception:
            return None

    def rebalancing(self) -> bool:
        return bool(getattr(self.app, "rebalancing", False))


# --------------------------------------------------------------------------------------
# The collector: read LivePulse at scrape time
# --------------------------------------------------------------------------------------

def _version() -> str:
    try:
        return importlib.metadata.version("pipeline-pulse")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class _Families:
    """Metric families by name, created on first use with METRICS' type and help."""

    def __init__(self) -> None:
        self.by_name: dict[str, Metric] = {}

    def gauge(self, name: str, labels: Iterable[str], value: float | None, values: tuple = ()) -> None:
        if value is None:                       # SPEC `null`: no sample (PromQL: absent, not NaN)
            return
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = GaugeMetricFamily(name, METRICS[name][1], labels=list(labels))
        family.add_metric(list(values), value)

    def declare(self, name: str, labels: Iterable[str]) -> None:
        """Emit the HELP/TYPE of a gauge even when it has no sample (e.g. no stale lead)."""
        if name not in self.by_name:
            self.by_name[name] = GaugeMetricFamily(name, METRICS[name][1], labels=list(labels))


class PulseCollector:
    """A prometheus_client custom collector over a LivePulse (see the module docstring)."""

    def __init__(self, live: Any, stats: ProcessingStats, options: MetricsOptions, *, clock: str,
                 probe: FaustProbe | None = None):
        self.live = live
        self.stats = stats
        self.options = options
        self.clock = clock
        self.probe = probe
        self.version = _version()

    def describe(self) -> list:
        return []       # no collect() at registration time

    def as_of(self, engine: PulseEngine) -> int:
        """T, as GET /report picks it."""
        if self.clock == "wall":
            return self.live.clock_us()
        return engine.max_ts or self.live.clock_us()

    def collect(self) -> Iterator[Metric]:
        f = _Families()
        engine = self.live.merged_engine()
        as_of = self.as_of(engine)
        self._pipelines(f, engine, as_of)
        self._data_quality(f, engine, as_of)
        yield from f.by_name.values()
        yield from self._processing()

    # -- pipeline metrics ---------------------------------------------------------------

    def _pipelines(self, f: _Families, engine: PulseEngine, as_of: int) -> None:
        extra = self.options.labels
        open_labels = ("pipeline", "stage", *extra)
        for name in ("pulse_open_leads", "pulse_open_amount", "pulse_open_weighted_amount"):
            f.declare(name, open_labels)
        f.declare("pulse_stale_leads", ("pipeline", "stage", "level", *extra))
        for name, p in engine.pipelines.items():
            pc = p.config
            stages = pc.stages
            limits = [None if st.stale_after_s is None else st.stale_after_s * US for st in stages]
            # One pass over the open leads, grouped by stage (and the opted-in labels).
            groups: dict[tuple, list] = {}      # (stage, *extra values) -> [count, exact amount, [stale by level]]
            for st in stages:
                groups[(st.index, *("" for _ in extra))] = [0, 0, [0, 0, 0]]
            by_stage = [0] * len(stages)
            for lead in p.open_leads.values():
                key = (lead.stage, *(getattr(lead, label) or "" for label in extra))
                g = groups.get(key)
                if g is None:
                    g = groups[key] = [0, 0, [0, 0, 0]]
                g[0] += 1
                if lead.amount:
                    g[1] += to_fixed(lead.amount)
                by_stage[lead.stage] += 1
                level = stale_level(as_of - lead.stay_start, limits[lead.stage])
                if level:
                    g[2][level - 1] += 1
            for (stage, *values), (count, amount, stale) in groups.items():
                st = stages[stage]
                labels = (name, st.name, *values)
                f.gauge("pulse_open_leads", open_labels, count, labels)
                f.gauge("pulse_open_amount", open_labels, from_fixed(amount), labels)
                f.gauge("pulse_open_weighted_amount", open_labels, weighted(st.probability, amount), labels)
                for level in (1, 2, 3):
                    f.gauge("pulse_stale_leads", ("pipeline", "stage", "level", *extra), stale[level - 1],
                            (name, st.name, str(level), *values))
            opportunities = sum(by_stage[pc.opportunity_index:])
            f.gauge("pulse_open_opportunities", ("pipeline",), opportunities, (name,))
            f.gauge("pulse_leads_in_state", ("pipeline",), len(p.leads), (name,))

            for w in engine.config.windows:
                days = window_days(as_of, w.days)
                dw = p.deals.window(days)
                d = deal_metrics(dw, opportunities)
                pw = ("pipeline", "window")
                lv = (name, w.key)
                f.gauge("pulse_leads_created", pw, d["leads_created"], lv)
                f.gauge("pulse_qualified_leads", pw, d["qualified_leads"], lv)
                for outcome in ("won", "lost"):
                    f.gauge("pulse_deals_closed", (*pw, "outcome"), d[outcome], (*lv, outcome))
                f.gauge("pulse_won_amount", pw, d["won_amount"], lv)
                f.gauge("pulse_sales_cycle_sum_seconds", pw, dw.cycle_us / US, lv)
                f.gauge("pulse_win_ratio", pw, d["win_rate"], lv)
                f.gauge("pulse_close_ratio", pw, d["close_rate"], lv)
                f.gauge("pulse_average_deal_size", pw, d["avg_deal_size"], lv)
                f.gauge("pulse_sales_cycle_mean_seconds", pw,
                        dw.cycle_us / (dw.won * US) if dw.won else None, lv)
                f.gauge("pulse_sales_velocity_per_day", pw, d["sales_velocity_per_day"], lv)

                stage_windows, transitions = p.flow.window(days)
                pws = (*pw, "stage")
                for st in stages:
                    sw = stage_windows[st.index]
                    r = stage_report(sw)
                    lvs = (*lv, st.name)
                    f.gauge("pulse_stage_entered", pws, r["entered"], lvs)
                    for outcome in OUTCOME_NAMES:
                        f.gauge("pulse_stage_exits", (*pws, "outcome"), r[outcome], (*lvs, outcome))
                    f.gauge("pulse_stage_conversion_ratio", pws, r["conversion_rate"], lvs)
                    f.gauge("pulse_stage_drop_off_ratio", pws, r["drop_off_rate"], lvs)
                    f.gauge("pulse_stage_dwell_sum_seconds", pws, sw.dwell_sum_us / US, lvs)
                    exited = r["exited"]
                    f.gauge("pulse_stage_dwell_mean_seconds", pws,
                            sw.dwell_sum_us / (exited * US) if exited else None, lvs)
                    for rank in (50, 90):
                        f.gauge(f"pulse_stage_dwell_p{rank}_seconds", pws,
                                nearest_rank(sw.dwell_hist, exited, rank) / US if exited else None, lvs)
                f.declare("pulse_stage_transitions", (*pw, "from_stage", "to_stage"))
                for (a, b), n in sorted(transitions.items()):
                    f.gauge("pulse_stage_transitions", (*pw, "from_stage", "to_stage"), n,
                            (*lv, stages[a].name, stages[b].name))

            current = p.deals.window(window_days(as_of, LVR_DAYS)).qualified
            previous = p.deals.window(previous_window_days(as_of, LVR_DAYS)).qualified
            lvr = lead_velocity_rate(current, previous)
            for period in ("current", "previous"):
                f.gauge("pulse_lead_velocity_qualified_leads", ("pipeline", "period"), lvr[period], (name, period))
            f.gauge("pulse_lead_velocity_ratio", ("pipeline",), lvr["rate"], (name,))

    def _data_quality(self, f: _Families, engine: PulseEngine, as_of: int) -> None:
        dq = engine.data_quality()
        for outcome in ("applied", "duplicates", "after_as_of", "dead_lettered"):
            f.gauge("pulse_data_quality_inputs", ("outcome",), dq[outcome], (outcome,))
        for reason, n in dq["dead_letter_reasons"].items():
            f.gauge("pulse_data_quality_dead_letters", ("reason",), n, (reason,))
        f.gauge("pulse_data_quality_implicit_creates", (), dq["implicit_creates"])
        f.gauge("pulse_as_of_timestamp_seconds", (), as_of / US)

    # -- processing metrics -----------------------------------------------------------------

    def _processing(self) -> Iterator[Metric]:
        live, stats = self.live, self.stats
        consumed = CounterMetricFamily("pulse_events_consumed", METRICS["pulse_events_consumed"][1],
                                       labels=["topic", "result"])
        dead = CounterMetricFamily("pulse_events_dead_lettered", METRICS["pulse_events_dead_lettered"][1],
                                   labels=["topic", "reason"])
        by_result: dict[tuple[str, str], int] = {}
        by_reason: dict[tuple[str, str], int] = {}
        for topic in live.type_of_topic:        # known series start at 0, so rate() sees the first event
            for result in RESULTS:
                by_result[(topic, result)] = 0
            for reason in REASONS:
                by_reason[(topic, reason)] = 0
        for (topic, result), n in list(stats.consumed.items()):
            if result in REASONS:
                by_reason[(topic, result)] = by_reason.get((topic, result), 0) + n
                result = "dead_lettered"
            by_result[(topic, result)] = by_result.get((topic, result), 0) + n
        for labels, n in by_result.items():
            consumed.add_metric(list(labels), n)
        for labels, n in by_reason.items():
            dead.add_metric(list(labels), n)
        yield consumed
        yield dead

        alerts = CounterMetricFamily("pulse_alerts_emitted", METRICS["pulse_alerts_emitted"][1],
                                     labels=["type", "severity"])
        emitted = {(t, s): 0 for t in (STALE, RESOLVED) for s in SEVERITY.values()}
        emitted.update(getattr(live, "alerts_emitted", {}))
        for labels, n in emitted.items():
            alerts.add_metric(list(labels), n)
        yield alerts

        buckets, cumulative = [], 0
        for bound, n in zip([*stats.bounds_ns, None], stats.buckets):
            cumulative += n
            buckets.append(("+Inf" if bound is None else repr(bound / 1e9), cumulative))
        yield HistogramMetricFamily("pulse_event_processing_seconds", METRICS["pulse_event_processing_seconds"][1],
                                    buckets=buckets, sum_value=stats.sum_ns / 1e9)

        def one(name: str, value: float, labels: tuple = (), label_names: tuple = ()) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, METRICS[name][1], labels=list(label_names))
            g.add_metric(list(labels), value)
            return g

        lag = GaugeMetricFamily("pulse_consumer_lag_messages", METRICS["pulse_consumer_lag_messages"][1],
                                labels=["topic", "partition"])
        if self.probe is not None:
            for topic, partition, n in sorted(self.probe.lag(self._offsets_of)):
                lag.add_metric([topic, str(partition)], n)
        yield lag
        yield one("pulse_input_buffered_messages", stats.buffered)
        yield one("pulse_input_unacked_messages", stats.unacked)
        yield one("pulse_state_flush_seconds", stats.flush_seconds)
        yield one("pulse_stale_checks_held", getattr(live, "checks_held", 0))
        yield one("pulse_partitions_catching_up", getattr(live, "partitions_held", 0))
        assigned = self.probe.assigned() if self.probe is not None else None
        yield one("pulse_assigned_partitions", len(live.partitions) if assigned is None else assigned)
        yield one("pulse_state_ready", 1 if live.ready else 0)
        yield one("pulse_rebalancing", 1 if self.probe is not None and self.probe.rebalancing() else 0)
        yield one("pulse_build_info", 1, (self.version,), ("version",))

    def _offsets_of(self, partition: int) -> dict[str, int] | None:
        state = self.live.partitions.get(partition)
        return state.offsets if state is not None else None


# --------------------------------------------------------------------------------------
# Wiring
# --------------------------------------------------------------------------------------

def make_registry(live: Any, stats: ProcessingStats, config: Config, *, clock: str,
                  probe: FaustProbe | None = None, process_metrics: bool = True) -> CollectorRegistry:
    """A registry with the Pulse collector (and the process_/python_ collectors).

    Raises ConfigError when the `metrics:` section of the configuration is invalid.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PulseCollector(live, stats, metrics_options(config), clock=clock, probe=probe))
    if process_metrics:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition. Call it on the event loop that feeds LivePulse (no locking)."""
    return generate_latest(registry)
