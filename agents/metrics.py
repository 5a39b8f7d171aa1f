"""Prometheus metrics of `pulse worker`: GET /metrics (text exposition format 0.0.4).

Two kinds of numbers, read differently:

- **Pipeline metrics** (`pulse_open_*`, `pulse_stale_leads`, `pulse_stage_*`, `pulse_deals_*`,
  `pulse_team_*`, `pulse_source_*`, `pulse_forecast_*`, ...) are read off the report's
  figures of THIS worker's partitions, computed once per scrape by the same engine and at
  the same T as GET /report (`LivePulse.own_figures()`: `build_figures` over its partitions; the mapping is
  agents/pipeline_metrics.py). With one worker they equal the report's numbers; with
  several, counts and amounts add up across workers (`sum()` in PromQL), rates and means
  do not (combine the exposed numerators and denominators; see docs/operations.md). They
  are all **gauges**: the accumulators are signed (a late event re-derives its lead, e.g.
  a superseding close moves a won close to another day or outcome, a late stage change
  splits a→c into a→b, b→c), windows slide, and a rebalance moves partitions, and so
  their share, between workers. None of them is monotonic, so none is a counter or ends
  in `_total`.
- **Processing metrics** are this process's own, truly monotonic, counts: events
  consumed by topic and result, dead letters by reason, alerts emitted by type; plus a
  per-event processing-time histogram, consumer lag and readiness. They restart at zero
  with the process, which `rate()`/`increase()` handle.

Hot path: `ProcessingStats.observe` (one dict increment and one bisect into a list,
no lock: the agent and the scrape both run on the worker's event loop). Everything
else runs when Prometheus scrapes: one document per scrape, or, with
`metrics: {cache_seconds: N}`, at most one every N seconds (several Prometheus servers).
The figures cost per group of open leads, day bucket and stale lead, never per lead
(the open leads are kept indexed per event: streams/open_index.py).

Label cardinality is bounded: pipelines, stages, windows, outcomes, levels, topics,
partitions, reasons, and at most 50 values per pipeline of `team` and of `source`
(the rest summed as `other`). Never lead ids, names, attributes or owners: rep names
are PII (per-owner figures are the Redis scorecards, docs/redis.md). The `metrics:`
section of the pipeline configuration:

    metrics:
      cache_seconds: 5        # reuse the document for up to 5 s (default 0: one per scrape)
      scrape_front: false     # answer GET /metrics on the worker's event loop (default true:
                              # in a process of its own, agents/scrape_front.py)
"""
from __future__ import annotations

import importlib.metadata
import os
import time
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from pulse.schemas.config import Config, ConfigError
from pulse.schemas.types import REASONS
from pulse.streams.alerts import RESOLVED, SEVERITY, STALE
from pulse.streams.report import ReportFigures

from .align import messages_behind
from .pipeline_metrics import PIPELINE_METRICS, PROCESSING_METRICS, pipeline_exposition, pipeline_families

__all__ = ["MetricsOptions", "metrics_options", "ProcessingStats", "PulseCollector", "FaustProbe",
           "make_registry", "render", "pipeline_exposition", "METRICS", "CONTENT_TYPE"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

# What LivePulse.on_message returns, besides a dead-letter reason (pulse.schemas.types.REASONS).
RESULTS = ("applied", "redelivered", "duplicate", "after_as_of", "skipped", "dead_lettered")
# Per-event processing time: from a few microseconds (an in-order event) to a late event's re-fold.
LATENCY_BUCKETS_S = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1)

# name -> (type, help). The names a dashboard or a rule may use (tests cross-check them).
METRICS: dict[str, tuple[str, str]] = {**PIPELINE_METRICS, **PROCESSING_METRICS}


# --------------------------------------------------------------------------------------
# Configuration: the `metrics:` section of the pipeline configuration
# --------------------------------------------------------------------------------------

MAX_CACHE_SECONDS = 60
# The labels configurations could opt into before v2, and why they are gone.
REMOVED_LABELS = {
    "owner": "rep names are PII and never metric labels; per-owner figures are the Redis scorecards "
             "(docs/redis.md, `pulse stale --owner NAME`)",
    "team": "per-team figures are the pulse_team_* gauges (bounded to 50 teams per pipeline, "
            "docs/operations.md); remove metrics.labels",
}


@dataclass(frozen=True)
class MetricsOptions:
    cache_seconds: float = 0.0        # reuse the pipeline document for this long (0: build one per scrape)
    scrape_front: bool = True         # GET /metrics answered by a process of its own (agents/scrape_front.py)


def metrics_options(config: Config) -> MetricsOptions:
    """Validate the `metrics:` section (Config.extra); raises ConfigError(file, key, problem)."""
    section = config.extra.get("metrics")
    if section is None:
        return MetricsOptions()
    if not isinstance(section, dict):
        raise ConfigError(config.source, "metrics", "expected a mapping like {cache_seconds: 5}")
    for key in section:
        if key not in ("cache_seconds", "scrape_front", "labels"):
            raise ConfigError(config.source, f"metrics.{key}", "unknown key (known: cache_seconds, scrape_front)")
    labels = section.get("labels")
    if labels is not None:
        if not isinstance(labels, list):
            raise ConfigError(config.source, "metrics.labels", "no longer supported: remove it (per-team figures "
                                                               "are the pulse_team_* gauges)")
        for i, label in enumerate(labels):
            reason = REMOVED_LABELS.get(label) if isinstance(label, str) else None
            raise ConfigError(config.source, f"metrics.labels[{i}]",
                              f"{label!r} is no longer a label: {reason}" if reason else
                              f"{label!r} is not a label (metrics.labels is no longer supported; lead ids, "
                              "owners and attributes are never labels)")
    cache = section.get("cache_seconds", 0)
    if isinstance(cache, bool) or not isinstance(cache, (int, float)) or not 0 <= cache <= MAX_CACHE_SECONDS:
        raise ConfigError(config.source, "metrics.cache_seconds",
                          f"expected a number of seconds from 0 to {MAX_CACHE_SECONDS}, got {cache!r}")
    front = section.get("scrape_front", True)
    if not isinstance(front, bool):
        raise ConfigError(config.source, "metrics.scrape_front", f"expected true or false, got {front!r}")
    return MetricsOptions(cache_seconds=float(cache), scrape_front=front)


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
            last = (offsets_of(tp.partition) or {}).get(tp.topic)
            found.append((tp.topic, tp.partition, messages_behind(highwater, last)))
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
# The pipeline metrics: read off the report's figures of this worker's partitions
# --------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------
# The collector: read LivePulse at scrape time
# --------------------------------------------------------------------------------------

def _version() -> str:
    try:
        return importlib.metadata.version("pipeline-pulse")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class PulseCollector:
    """A prometheus_client custom collector over a LivePulse (see the module docstring)."""

    def __init__(self, live: Any, stats: ProcessingStats, options: MetricsOptions, *, clock: str,
                 probe: FaustProbe | None = None, pipeline: bool = True):
        """`pipeline=False`: the processing metrics only (the worker renders the pipeline gauges
        with its shared snapshot: `pipeline_exposition`)."""
        self.pipeline = pipeline
        self.live = live
        self.stats = stats
        self.options = options
        self.clock = clock
        self.probe = probe
        self.version = _version()
        self.monotonic = time.monotonic
        self._cached: tuple | None = None       # (partitions held, built at, document)

    def describe(self) -> list:
        return []       # no collect() at registration time


    def document(self) -> tuple[ReportFigures, dict[str, int], int]:
        """This worker's report figures at T (the SPEC 5 sections, the stale counts without the
        stale list), its leads held per pipeline, and T; computed once per scrape, or reused
        for up to `cache_seconds` (and never across a change of the partitions held, e.g. a
        rebalance). Costs per group, day and stale lead, not per lead (streams/open_index.py)."""
        now = self.monotonic()
        held = tuple((p, id(state)) for p, state in sorted(self.live.partitions.items()))
        cached = self._cached
        if cached is not None and cached[0] == held and now - cached[1] < self.options.cache_seconds:
            return cached[2]
        built = self.live.own_figures()
        self._cached = (held, now, built) if self.options.cache_seconds > 0 else None
        return built

    def collect(self) -> Iterator[Metric]:
        if self.pipeline:
            yield from pipeline_families(*self.document())
        yield from self._processing()

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
            for topic, partition, n in sorted(self.probe.lag(live.offsets_of)):
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


# --------------------------------------------------------------------------------------
# Wiring
# --------------------------------------------------------------------------------------

def make_registry(live: Any, stats: ProcessingStats, config: Config, *, clock: str,
                  probe: FaustProbe | None = None, process_metrics: bool = True,
                  pipeline: bool = True) -> CollectorRegistry:
    """A registry with the Pulse collector (and the process_/python_ collectors); `pipeline=False`:
    without the pipeline gauges (see PulseCollector).

    Raises ConfigError when the `metrics:` section of the configuration is invalid.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PulseCollector(live, stats, metrics_options(config), clock=clock, probe=probe,
                                     pipeline=pipeline))
    if process_metrics:
        # The worker's own pid, not os.getpid() at collection: GET /metrics renders in a forked
        # child (agents/app.py), whose /proc entry is not the worker's.
        worker_pid = os.getpid()
        ProcessCollector(pid=lambda: worker_pid, registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition. Call it on the event loop that feeds LivePulse (no locking), or in a
    child forked from it (agents/snapshot.run_forked: the figures as of the fork)."""
    return generate_latest(registry)
