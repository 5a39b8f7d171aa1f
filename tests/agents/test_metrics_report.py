"""GET /metrics without a broker: the collector over LivePulse equals the report, exposes every
declared metric and nothing else, never names a lead or an owner in a label, and builds the
document once per scrape.
"""
from __future__ import annotations

import zlib
from collections import Counter

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulse.agents.metrics import METRICS, make_registry, metrics_options, render
from pulse.config import load_config
from tests.support.kafka_feed import CFG, Worker, messy_lines, route
from tests.support.metrics import (
    PIPELINE_METRICS,
    assert_metrics_match_report,
    key,
    parse_exposition,
    promtool_check_metrics,
)


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------

def test_metrics_equal_the_report_of_the_same_state():
    w = Worker()
    for line in messy_lines():
        w.feed(*route(line, 4), line)
    w.live.tick()
    doc = w.report()
    samples = parse_exposition(w.exposition())
    assert_metrics_match_report(samples, doc)
    # The processing counters account for every message, once.
    consumed = {k: v for k, v in samples.items() if k[0] == "pulse_events_consumed_total"}
    assert sum(consumed.values()) == doc["data_quality"]["events_read"]
    results = Counter()
    for (_, labels), v in consumed.items():
        results[dict(labels)["result"]] += v
    assert results["dead_lettered"] == doc["data_quality"]["dead_lettered"]
    assert results["applied"] == doc["data_quality"]["applied"]
    reasons = Counter()
    for (name, labels), v in samples.items():
        if name == "pulse_events_dead_lettered_total":
            reasons[dict(labels)["reason"]] += v
    assert reasons == Counter(doc["data_quality"]["dead_letter_reasons"])
    alerts = sum(v for (n, _), v in samples.items() if n == "pulse_alerts_emitted_total")
    assert alerts == w.live.alerts_sent == len([s for s in w.sent if s[0] == "notifications"]) > 0
    assert samples[key("pulse_event_processing_seconds_count")] == doc["data_quality"]["events_read"]
    assert samples[key("pulse_state_ready")] == 1


def test_exposition_passes_promtool_lint():
    w = Worker()
    for line in messy_lines(60):
        w.feed(*route(line, 4), line)
    promtool_check_metrics(w.exposition())
    # ... with the process collectors too
    registry = make_registry(w.live, w.stats, CFG, clock="event", process_metrics=True)
    promtool_check_metrics(render(registry))


def test_processing_text_and_snapshot_gauges_make_the_whole_exposition():
    """GET /metrics serves the processing metrics rendered per scrape and the pipeline gauges
    built with the shared snapshot (agents/app.py): together, the same samples as one registry."""
    from pulse.agents.metrics import pipeline_exposition

    w = Worker()
    for line in messy_lines(80):
        w.feed(*route(line, 4), line)
    processing = make_registry(w.live, w.stats, CFG, clock="event", process_metrics=False, pipeline=False)
    pipeline = pipeline_exposition(*w.live.own_figures())
    assert not any(k[0] in PIPELINE_METRICS for k in parse_exposition(render(processing)))
    served = render(processing) + pipeline
    assert parse_exposition(served) == parse_exposition(w.exposition())
    promtool_check_metrics(served)


def test_exposition_rendered_in_a_forked_child_is_the_workers():
    """GET /metrics renders in a child forked from the worker (agents/snapshot.run_forked): the
    pipeline figures are the worker's as of the fork, and process_* describe the worker, not the child."""
    import asyncio

    from pulse.agents.snapshot import run_forked

    w = Worker()
    for line in messy_lines(60):
        w.feed(*route(line, 4), line)
    registry = make_registry(w.live, w.stats, CFG, clock="event", process_metrics=True)
    here = parse_exposition(render(registry))
    there = parse_exposition(bytes(asyncio.run(run_forked(lambda: render(registry)))))
    pipeline = {k: v for k, v in here.items() if k[0].startswith("pulse_") and k[0] != "pulse_state_flush_seconds"}
    assert pipeline and all(there[k] == v for k, v in pipeline.items())
    start = key("process_start_time_seconds")
    assert there[start] == here[start]                  # the worker's start, not the child's (later)


def test_every_declared_metric_is_exposed_and_nothing_else():
    w = Worker()
    for line in messy_lines(60):
        w.feed(*route(line, 4), line)
    families = {f.name: f.type for f in text_string_to_metric_families(w.exposition().decode())}
    declared = {name: kind for name, (kind, _help) in METRICS.items()}
    assert families == declared


def test_no_lead_ids_names_or_attributes_in_labels():
    w = Worker()
    lines = messy_lines(80)
    for line in lines:
        w.feed(*route(line, 4), line)
    leads = {orjson.loads(l)["lead_id"] for l in lines if l.startswith(b'{"') and b'"lead_id"' in l
             and isinstance(_safe(l).get("lead_id"), str)}
    owners = {o for o in (_safe(l).get("owner") for l in lines) if isinstance(o, str)}
    values = {v for (_, labels) in parse_exposition(w.exposition()) for _, v in labels}
    assert leads and owners
    assert not values & (leads | owners)


def _safe(line: bytes) -> dict:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _label_values(samples: dict, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for (n, labels) in samples if n == name}


def _sum(samples: dict, name: str, **match) -> float:
    return sum(v for (n, labels), v in samples.items()
               if n == name and all(dict(labels).get(k) == x for k, x in match.items()))


def test_segment_gauges_by_team_and_source_add_up_to_the_pipeline_and_never_name_an_owner():
    w = Worker()
    lines = messy_lines(150)
    lines.append(orjson.dumps({"type": "lead.created", "event_id": "no-team", "lead_id": "NT-1",
                               "occurred_at": "2026-01-03T00:00:00Z", "amount": 5}))     # team and source null
    for line in lines:
        w.feed(*route(line, 4), line)
    doc = w.report()
    samples = parse_exposition(w.exposition())
    assert_metrics_match_report(samples, doc)
    p = doc["pipelines"]["default"]
    for dim in ("team", "source"):
        assert "none" in _label_values(samples, f"pulse_{dim}_open_leads", dim)
        assert len(_label_values(samples, f"pulse_{dim}_open_leads", dim)) > 2
        assert _sum(samples, f"pulse_{dim}_open_leads") == p["open"]["count"]
        assert _sum(samples, f"pulse_{dim}_open_amount") == pytest.approx(p["open"]["amount"], rel=1e-12)
        assert _sum(samples, f"pulse_{dim}_open_weighted_amount") == pytest.approx(p["open"]["weighted_amount"],
                                                                                   rel=1e-12)
        assert _sum(samples, f"pulse_{dim}_stale_leads") == len(p["stale"])
        for window, pw in p["windows"].items():
            assert _sum(samples, f"pulse_{dim}_leads_created", window=window) == pw["leads_created"]
            assert _sum(samples, f"pulse_{dim}_deals_closed", window=window, outcome="won") == pw["won"]
            assert _sum(samples, f"pulse_{dim}_deals_closed", window=window, outcome="lost") == pw["lost"]
            assert _sum(samples, f"pulse_{dim}_won_amount", window=window) == pytest.approx(pw["won_amount"],
                                                                                          rel=1e-12)
    assert any(pw["forecast"]["attainment"] is not None for pw in p["windows"].values())
    assert not any("owner" in dict(labels) for (_, labels) in samples)


def test_more_than_50_teams_keep_the_49_largest_and_sum_the_rest_as_other():
    """70 teams (and leads with none): each team family has at most 50 label values, the
    kept ones are the documented rule's, and the sums are unchanged."""
    lines = []
    for line in messy_lines(400, seed=3):
        doc = _safe(line)
        lead = doc.get("lead_id")
        if isinstance(lead, str) and isinstance(doc.get("type"), str):     # every event: the latest team wins
            n = zlib.crc32(lead.encode()) % 75
            doc["team"] = None if n >= 70 else f"team-{n:02d}"
            line = orjson.dumps(doc)
        lines.append(line)
    w = Worker()
    for line in lines:
        w.feed(*route(line, 4), line)
    doc = w.report()
    p = doc["pipelines"]["default"]
    assert len({e["value"] for e in p["open"]["segments"]["team"]}) > 50
    samples = parse_exposition(w.exposition())
    assert_metrics_match_report(samples, doc)          # expected_segment_labels: the rule, written again
    for name in METRICS:
        if name.startswith("pulse_team_"):
            for window in (None, *p["windows"]):
                values = {dict(ls)["team"] for (n, ls) in samples
                          if n == name and dict(ls).get("window") == window}
                assert len(values) <= 50, (name, window)
    teams = _label_values(samples, "pulse_team_open_leads", "team")
    assert "other" in teams and len(teams) == 50
    largest = max(p["open"]["segments"]["team"], key=lambda e: e["count"])
    assert (largest["value"] or "none") in teams
    assert _sum(samples, "pulse_team_open_leads") == p["open"]["count"]
    assert _sum(samples, "pulse_team_leads_created", window="90d") == p["windows"]["90d"]["leads_created"]
    promtool_check_metrics(w.exposition())


def test_the_document_is_built_once_per_scrape_or_reused_for_cache_seconds(tmp_path):
    from pulse.agents.metrics import PulseCollector
    path = tmp_path / "p.yaml"
    path.write_text("pipelines:\n  default:\n    stages: [{name: new, stale_after: 1d}, {name: qualified}]\n"
                    "metrics: {cache_seconds: 5}\n")
    config = load_config(str(path))
    w = Worker(config)
    built = []
    own = w.live.own_figures
    w.live.own_figures = lambda: built.append(1) or own()
    collector = PulseCollector(w.live, w.stats, metrics_options(config), clock="event")
    clock = [100.0]
    collector.monotonic = lambda: clock[0]

    def applied() -> float:
        families = {m.name: m for m in collector.collect()}
        return next(s.value for s in families["pulse_data_quality_inputs"].samples
                    if s.labels["outcome"] == "applied")

    def created(i: int) -> bytes:
        return orjson.dumps({"type": "lead.created", "event_id": f"e{i}", "lead_id": f"L-{i}",
                             "occurred_at": "2026-01-03T00:00:00Z"})

    for i in range(10):
        w.feed(*route(created(i), 4), created(i))
    assert applied() == 10 and len(built) == 1
    for i in range(10, 15):
        w.feed(*route(created(i), 4), created(i))
    clock[0] += 4.9                                  # within cache_seconds: the same document
    assert applied() == 10 and len(built) == 1
    clock[0] += 0.2                                  # older than 5 s: built again, with the new events
    assert applied() == 15 and len(built) == 2
    w.live.drop([next(iter(w.live.partitions))])    # a rebalance: never a document of partitions gone
    assert applied() < 15 and len(built) == 3
    # without the option: one document per scrape
    plain = PulseCollector(w.live, w.stats, metrics_options(CFG), clock="event")
    list(plain.collect())
    list(plain.collect())
    assert len(built) == 5
