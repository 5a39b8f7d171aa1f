"""GET /metrics without a broker: the `metrics` configuration section, the processing histogram,
the PromQL aggregation of several workers' shares (docs/operations.md) that gives the
cluster's numbers, consumer lag and the input path gauges.
"""
from __future__ import annotations

import pytest

from pulse.agents.metrics import LATENCY_BUCKETS_S, MetricsOptions, ProcessingStats, make_registry, metrics_options, render
from pulse.config import load_config
from pulse.schemas.config import ConfigError
from pulse.streams.engine import PulseEngine
from tests.support.kafka_feed import CFG, Worker, messy_lines, route
from tests.support.metrics import DAY_S, key, parse_exposition


@pytest.mark.parametrize("section, key_, problem", [
    ("metrics: [team]", "metrics", "expected a mapping"),
    ("metrics: {labels: team}", "metrics.labels", "no longer supported"),
    ("metrics: {labels: [owner]}", "metrics.labels[0]", "rep names are PII"),
    ("metrics: {labels: [team]}", "metrics.labels[0]", "pulse_team_* gauges"),
    ("metrics: {labels: [lead_id]}", "metrics.labels[0]", "never labels"),
    ("metrics: {label: [team]}", "metrics.label", "unknown key"),
    ("metrics: {cache_seconds: -1}", "metrics.cache_seconds", "from 0 to 60"),
    ("metrics: {cache_seconds: 5m}", "metrics.cache_seconds", "from 0 to 60"),
    ("metrics: {scrape_front: 'no'}", "metrics.scrape_front", "true or false"),
    ("metrics: {scrape_front: 1}", "metrics.scrape_front", "true or false"),
])
def test_metrics_section_is_validated(tmp_path, section, key_, problem):
    path = tmp_path / "p.yaml"
    path.write_text("pipelines:\n  default:\n    stages: [{name: new}, {name: won}]\n" + section + "\n")
    config = load_config(str(path))
    with pytest.raises(ConfigError) as info:
        metrics_options(config)
    assert (info.value.file, info.value.key) == (str(path), key_)
    assert problem in info.value.problem
    with pytest.raises(ConfigError):           # the worker refuses to start with it
        make_registry(Worker().live, ProcessingStats(), config, clock="wall")


def test_a_worker_asked_for_owner_labels_stops_at_start_saying_why(tmp_path, capsys):
    from pulse.cli import main
    path = tmp_path / "p.yaml"
    path.write_text("pipelines:\n  default:\n    stages: [{name: new}, {name: won}]\nmetrics: {labels: [owner]}\n")
    assert main(["worker", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "metrics.labels[0]" in err and "PII" in err


def test_metrics_section_defaults(tmp_path):
    assert metrics_options(CFG).cache_seconds == 0
    assert metrics_options(CFG).scrape_front is True
    path = tmp_path / "p.yaml"
    path.write_text("pipelines:\n  default:\n    stages: [{name: new}]\n"
                    "metrics: {labels: [], cache_seconds: 2.5, scrape_front: false}\n")
    assert metrics_options(load_config(str(path))) == MetricsOptions(cache_seconds=2.5, scrape_front=False)


def test_processing_histogram_is_cumulative():
    stats = ProcessingStats()
    for ns in (1_000, 7_000, 30_000, 30_000, 2_000_000_000):
        stats.observe("t", "applied", ns)
    w = Worker()
    w.stats = stats
    registry = make_registry(w.live, stats, CFG, clock="wall", process_metrics=False)
    samples = parse_exposition(render(registry))
    buckets = {float(dict(labels)["le"]): v for (n, labels), v in samples.items()
               if n == "pulse_event_processing_seconds_bucket"}
    assert buckets[5e-6] == 1 and buckets[1e-5] == 2 and buckets[5e-5] == 4 and buckets[float("inf")] == 5
    assert sorted(buckets) == sorted([*LATENCY_BUCKETS_S, float("inf")])
    assert samples[key("pulse_event_processing_seconds_sum")] == pytest.approx(2.000068)
    assert samples[key("pulse_events_consumed_total", topic="t", result="applied")] == 5
    # What a call costs (the worker's per-message hot path): bench/bench_stats_observe.py.


def test_two_workers_shares_aggregate_to_the_cluster_numbers_as_documented():
    """docs/operations.md's PromQL table, evaluated by hand: sum counts and amounts over the
    workers; rates from summed numerators and denominators. Wall clock: one T for all."""
    lines = messy_lines(200, seed=11)
    offline = PulseEngine(CFG)
    offline.ingest_many(lines)
    now = offline.max_ts + 3_600_000_000            # an hour after the last event
    whole, first, second = (Worker(clock="wall", now_us=lambda: now) for _ in range(3))
    for line in lines:
        topic, partition = route(line, 4)
        whole.feed(topic, partition, line)
        (first if partition < 2 else second).feed(topic, partition, line)
    doc = whole.report()
    shares = [parse_exposition(w.exposition()) for w in (first, second)]

    def total(name, **labels):
        """sum(name{labels}) over every series and worker."""
        return sum(v for s in shares for (n, ls), v in s.items()
                   if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))

    pipe = doc["pipelines"]["default"]
    w30 = pipe["windows"]["30d"]
    assert total("pulse_open_leads") == pipe["open"]["count"]
    assert total("pulse_open_amount") == pytest.approx(pipe["open"]["amount"], rel=1e-12)
    assert total("pulse_open_weighted_amount") == pytest.approx(pipe["open"]["weighted_amount"], rel=1e-12)
    assert total("pulse_stale_leads") == len(pipe["stale"])
    assert total("pulse_deals_closed", window="30d", outcome="won") == w30["won"]
    won, lost = w30["won"], w30["lost"]
    assert total("pulse_deals_closed", window="30d", outcome="won") / total("pulse_deals_closed", window="30d") \
        == w30["win_rate"]
    assert won / total("pulse_leads_created", window="30d") == w30["close_rate"]
    assert total("pulse_won_amount", window="30d") / won == pytest.approx(w30["avg_deal_size"], rel=1e-12)
    cycle_days = total("pulse_sales_cycle_sum_seconds", window="30d") / won / DAY_S
    assert cycle_days == pytest.approx(w30["sales_cycle_days"]["mean"], rel=1e-12)
    velocity = (total("pulse_open_opportunities") * (won / (won + lost))
                * (total("pulse_won_amount", window="30d") / won) / cycle_days)
    assert velocity == pytest.approx(w30["sales_velocity_per_day"], rel=1e-9)
    for stage, s in w30["stages"].items():
        exited = total("pulse_stage_exits", window="30d", stage=stage)
        assert exited == s["exited"]
        if exited:
            converted = (total("pulse_stage_exits", window="30d", stage=stage, outcome="advanced")
                         + total("pulse_stage_exits", window="30d", stage=stage, outcome="won"))
            assert converted / exited == s["conversion_rate"]
            assert total("pulse_stage_exits", window="30d", stage=stage, outcome="lost") / exited == s["drop_off_rate"]
            mean = total("pulse_stage_dwell_sum_seconds", window="30d", stage=stage) / exited / DAY_S
            assert mean == pytest.approx(s["dwell_days"]["mean"], rel=1e-9)
    lvr = pipe["lead_velocity_rate"]
    cur = total("pulse_lead_velocity_qualified_leads", period="current")
    prev = total("pulse_lead_velocity_qualified_leads", period="previous")
    assert (cur, prev) == (lvr["current"], lvr["previous"])
    assert (cur - prev) / prev == lvr["rate"]
    # per team and source, and the forecast: summed over workers, the cluster's figures
    for dim in ("team", "source"):
        for e in pipe["open"]["segments"][dim]:
            assert total(f"pulse_{dim}_open_leads", **{dim: e["value"] or "none"}) == e["count"]
        for e in w30["segments"][dim]:
            assert total(f"pulse_{dim}_deals_closed", window="30d", outcome="won", **{dim: e["value"] or "none"}) \
                == e["won"]
    start = w30["forecast"]["open_at_start"]
    assert total("pulse_forecast_open_at_start_leads", window="30d") == start["count"]
    assert total("pulse_forecast_open_at_start_weighted_amount", window="30d") == pytest.approx(
        start["weighted_amount"], rel=1e-12)
    if w30["forecast"]["attainment"] is not None:
        assert total("pulse_won_amount", window="30d") / total(
            "pulse_forecast_open_at_start_weighted_amount", window="30d") == pytest.approx(
            w30["forecast"]["attainment"], rel=1e-12)
    # ... and the per-worker ratios are not the cluster's (that is why they are "not summable").
    ratios = [s.get(key("pulse_win_ratio", pipeline="default", window="30d")) for s in shares]
    assert sum(ratios) != w30["win_rate"]


def test_consumer_lag_is_highwater_minus_position_per_assigned_input_partition():
    from collections import namedtuple
    from types import SimpleNamespace

    from pulse.agents.metrics import FaustProbe

    TP = namedtuple("TP", "topic partition")
    assignment = {TP(topic="crm.lead-created", partition=0), TP(topic="crm.lead-created", partition=1),
                  TP(topic="crm.deal-closed", partition=0), TP(topic="pipeline-pulse-leads-changelog", partition=0)}
    highwaters = {("crm.lead-created", 0): 100, ("crm.lead-created", 1): 5, ("crm.deal-closed", 0): None,
                  ("pipeline-pulse-leads-changelog", 0): 7}

    class Consumer:
        def assignment(self):
            return assignment

        def highwater(self, tp):
            return highwaters[(tp.topic, tp.partition)]

    probe = FaustProbe(SimpleNamespace(consumer=Consumer(), rebalancing=True), ["crm.lead-created", "crm.deal-closed"])
    offsets = {0: {"crm.lead-created": 89}, 1: {"crm.lead-created": 9}}     # partition 1: the broker reports low
    assert sorted(probe.lag(offsets.get)) == [("crm.lead-created", 0, 10), ("crm.lead-created", 1, 0)]
    assert probe.rebalancing() is True
    assert FaustProbe(SimpleNamespace(consumer=None), ["t"]).lag(offsets.get) == []    # not started: no samples


def test_input_path_gauges_show_the_worker_s_figures_at_each_scrape():
    """The five gauges of the input path are read from the worker's stats and LivePulse at
    every scrape (never a value captured when the registry was made), each from its own field."""
    w = Worker()
    gauges = {"pulse_input_buffered_messages": ("stats", "buffered"),
              "pulse_input_unacked_messages": ("stats", "unacked"),
              "pulse_state_flush_seconds": ("stats", "flush_seconds"),
              "pulse_stale_checks_held": ("live", "checks_held"),
              "pulse_partitions_catching_up": ("live", "partitions_held")}
    first = parse_exposition(w.exposition())
    assert {name: first[key(name)] for name in gauges} == dict.fromkeys(gauges, 0)     # a fresh worker
    for scrape in (1, 2):
        figures = {name: scrape * 1000 + i for i, name in enumerate(gauges)}      # distinct, and new each time
        for name, (holder, field) in gauges.items():
            setattr(getattr(w, holder), field, figures[name])
        samples = parse_exposition(w.exposition())
        assert {name: samples[key(name)] for name in gauges} == figures
