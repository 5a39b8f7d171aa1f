"""GET /metrics as the tests read it: a text exposition parsed into samples, what the
pipeline metrics must show for a SPEC 5 document (docs/operations.md's mapping, written
again), and promtool's lint."""
from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulse.agents.metrics import METRICS
from pulse.schemas.parse import parse_timestamp

DAY_S = 86400

def require_binary(name: str) -> str:
    """The path of a Prometheus tool. Missing: a loud failure in CI (.ci/run installs it), else a skip."""
    path = shutil.which(name)
    if path:
        return path
    message = (f"`{name}` is not installed (Debian package `prometheus`: apt-get install prometheus; "
               ".ci/run installs it)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def promtool_check_metrics(exposition: bytes) -> None:
    result = subprocess.run([require_binary("promtool"), "check", "metrics"], input=exposition,
                            capture_output=True, timeout=30)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def parse_exposition(text: bytes | str) -> dict[tuple[str, frozenset], float]:
    """Samples of a text exposition: (sample name, labels) -> value."""
    if isinstance(text, bytes):
        text = text.decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def key(name: str, **labels) -> tuple[str, frozenset]:
    return name, frozenset(labels.items())


# Pipeline metrics that a report document determines; seconds are compared approximately
# (the report has days), everything else exactly.
PIPELINE_METRICS = [n for n in METRICS if n not in {
    "pulse_events_consumed", "pulse_events_dead_lettered", "pulse_alerts_emitted", "pulse_event_processing_seconds",
    "pulse_consumer_lag_messages", "pulse_assigned_partitions", "pulse_state_ready", "pulse_rebalancing",
    "pulse_build_info", "pulse_leads_in_state", "pulse_input_buffered_messages", "pulse_input_unacked_messages",
    "pulse_state_flush_seconds", "pulse_stale_checks_held", "pulse_partitions_catching_up"}]


def expected_from_report(doc: dict) -> dict[tuple[str, frozenset], float]:
    """What GET /metrics must show for the pipeline metrics, derived from a SPEC 5 document."""
    out: dict[tuple[str, frozenset], float] = {}

    def put(name, value, **labels):
        if value is not None:                       # null in the report: no sample
            out[key(name, **labels)] = value

    for pipeline, p in doc["pipelines"].items():
        stale = Counter((e["stage"], e["level"]) for e in p["stale"])
        for stage, o in p["open"]["stages"].items():
            put("pulse_open_leads", o["count"], pipeline=pipeline, stage=stage)
            put("pulse_open_amount", o["amount"], pipeline=pipeline, stage=stage)
            put("pulse_open_weighted_amount", o["weighted_amount"], pipeline=pipeline, stage=stage)
            for level in (1, 2, 3):
                put("pulse_stale_leads", stale[(stage, level)], pipeline=pipeline, stage=stage, level=str(level))
        put("pulse_open_opportunities", p["open"]["opportunities"], pipeline=pipeline)
        for window, w in p["windows"].items():
            pw = dict(pipeline=pipeline, window=window)
            put("pulse_leads_created", w["leads_created"], **pw)
            put("pulse_qualified_leads", w["qualified_leads"], **pw)
            put("pulse_deals_closed", w["won"], **pw, outcome="won")
            put("pulse_deals_closed", w["lost"], **pw, outcome="lost")
            put("pulse_won_amount", w["won_amount"], **pw)
            put("pulse_win_ratio", w["win_rate"], **pw)
            put("pulse_close_ratio", w["close_rate"], **pw)
            put("pulse_average_deal_size", w["avg_deal_size"], **pw)
            cycle = w["sales_cycle_days"]
            put("pulse_sales_cycle_mean_seconds", cycle["mean"] and cycle["mean"] * DAY_S, **pw)
            put("pulse_sales_cycle_sum_seconds", (cycle["mean"] or 0) * cycle["count"] * DAY_S, **pw)
            put("pulse_sales_velocity_per_day", w["sales_velocity_per_day"], **pw)
            for stage, s in w["stages"].items():
                pws = dict(pw, stage=stage)
                put("pulse_stage_entered", s["entered"], **pws)
                for outcome in ("advanced", "regressed", "won", "lost"):
                    put("pulse_stage_exits", s[outcome], **pws, outcome=outcome)
                put("pulse_stage_conversion_ratio", s["conversion_rate"], **pws)
                put("pulse_stage_drop_off_ratio", s["drop_off_rate"], **pws)
                dwell = s["dwell_days"]
                put("pulse_stage_dwell_sum_seconds", (dwell["mean"] or 0) * s["exited"] * DAY_S, **pws)
                put("pulse_stage_dwell_mean_seconds", dwell["mean"] and dwell["mean"] * DAY_S, **pws)
                put("pulse_stage_dwell_p50_seconds", dwell["p50"] and dwell["p50"] * DAY_S, **pws)
                put("pulse_stage_dwell_p90_seconds", dwell["p90"] and dwell["p90"] * DAY_S, **pws)
            for pair, n in w["transitions"].items():
                a, b = pair.split("->")
                put("pulse_stage_transitions", n, **pw, from_stage=a, to_stage=b)
            start, attainment = w["forecast"]["open_at_start"], w["forecast"]["attainment"]
            put("pulse_forecast_open_at_start_leads", start["count"], **pw)
            put("pulse_forecast_open_at_start_amount", start["amount"], **pw)
            put("pulse_forecast_open_at_start_weighted_amount", start["weighted_amount"], **pw)
            put("pulse_forecast_attainment_ratio", attainment, **pw)
        for dim in ("team", "source"):
            label = expected_segment_labels(p, dim)
            sums: dict = {}
            for e in p["open"]["segments"][dim]:
                for field, metric in (("count", "open_leads"), ("amount", "open_amount"),
                                      ("weighted_amount", "open_weighted_amount"), ("stale", "stale_leads")):
                    sums.setdefault((f"pulse_{dim}_{metric}", (("pipeline", pipeline), (dim, label[e["value"]]))),
                                    []).append(e[field])
            for window, w in p["windows"].items():
                for e in w["segments"][dim]:
                    labels = (("pipeline", pipeline), ("window", window), (dim, label[e["value"]]))
                    cycle = e["sales_cycle_days"]
                    for metric, value, extra in (
                            ("leads_created", e["leads_created"], ()), ("won_amount", e["won_amount"], ()),
                            ("deals_closed", e["won"], (("outcome", "won"),)),
                            ("deals_closed", e["lost"], (("outcome", "lost"),)),
                            ("sales_cycle_sum_seconds", (cycle["mean"] or 0) * cycle["count"] * DAY_S, ())):
                        sums.setdefault((f"pulse_{dim}_{metric}", labels + extra), []).append(value)
            for (name, labels), values in sums.items():
                put(name, math.fsum(values), **dict(labels))
        lvr = p["lead_velocity_rate"]
        put("pulse_lead_velocity_qualified_leads", lvr["current"], pipeline=pipeline, period="current")
        put("pulse_lead_velocity_qualified_leads", lvr["previous"], pipeline=pipeline, period="previous")
        put("pulse_lead_velocity_ratio", lvr["rate"], pipeline=pipeline)
    dq = doc["data_quality"]
    for outcome in ("applied", "duplicates", "after_as_of", "dead_lettered"):
        put("pulse_data_quality_inputs", dq[outcome], outcome=outcome)
    for reason, n in dq["dead_letter_reasons"].items():
        put("pulse_data_quality_dead_letters", n, reason=reason)
    put("pulse_data_quality_implicit_creates", dq["implicit_creates"])
    put("pulse_as_of_timestamp_seconds", parse_timestamp(doc["as_of"]) / 1e6)
    return out


def expected_segment_labels(p: dict, dim: str, limit: int = 50) -> dict:
    """docs/operations.md's rule, written again: null -> none; beyond `limit` values, the
    first limit - 1 by (open count, leads created in the longest window, closes in it) keep
    their name, the rest are `other`."""
    open_count = {e["value"]: e["count"] for e in p["open"]["segments"][dim]}
    values = set(open_count) | {e["value"] for w in p["windows"].values() for e in w["segments"][dim]}
    name = {v: "none" if v in (None, "") else v for v in values}
    if len(values) <= limit:
        return name
    longest = p["windows"][max(p["windows"], key=lambda k: int(k.rstrip("d")))]
    created = {e["value"]: e["leads_created"] for e in longest["segments"][dim]}
    closed = {e["value"]: e["won"] + e["lost"] for e in longest["segments"][dim]}
    ranked = sorted(values, key=lambda v: (-open_count.get(v, 0), -created.get(v, 0), -closed.get(v, 0),
                                           v is not None, (v or "").encode()))
    return {v: name[v] if i < limit - 1 else "other" for i, v in enumerate(ranked)}


def assert_metrics_match_report(samples: dict, doc: dict) -> None:
    expected = expected_from_report(doc)
    got = {k: v for k, v in samples.items() if k[0] in PIPELINE_METRICS}
    assert set(got) == set(expected), (sorted(set(got) - set(expected))[:10], sorted(set(expected) - set(got))[:10])
    for k, want in expected.items():
        if k[0].endswith("_seconds"):
            assert got[k] == pytest.approx(want, rel=1e-12, abs=1e-6), k
        else:
            assert got[k] == want, k
