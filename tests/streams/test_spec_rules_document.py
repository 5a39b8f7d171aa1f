"""Hand-computed scenarios for SPEC section 5 (the document's shape, as_of, data quality,
duplicates) and 4.1 (window boundaries); the rest of sections 3 and 4 is in the other
test_spec_rules_*.py modules.

Every test runs over both the naive reference and the engine (`report_fn`), and every expected
number is computed by hand; unless a test says otherwise it uses the pipeline "default" and
as_of T = 2026-03-10T12:00:00Z, described with the windows' bounds in tests/support/spec_support.py.
"""
from __future__ import annotations

import json

from tests.support.reference import make_config, make_pipeline, parse_time
from tests.support.spec_support import (
    CONFIG,
    DEFAULT,
    STAGES,
    T,
    ZERO_STAGE_FLOW,
    assert_keys,
    assert_sub,
    closed,
    created,
    d,
    dq,
    moved,
    stage,
    win,
)


# --------------------------------------------------------------------------------------
# Section 5: the document's shape
# --------------------------------------------------------------------------------------

def test_empty_input_has_every_key_with_zeros_and_nulls(report_fn):
    other = make_pipeline("other", [("only", None, 0.3)])
    config = make_config([DEFAULT, other], windows=[("7d", 7), ("48h", 2)])
    doc = report_fn([], config, T)

    assert_keys(doc, ["as_of", "data_quality", "pipelines"], "doc")
    assert_sub(doc["as_of"], T)
    assert_keys(dq(doc), ["events_read", "applied", "duplicates", "implicit_creates",
                          "dead_lettered", "after_as_of", "dead_letter_reasons"], "dq")
    assert_sub(dq(doc), {"events_read": 0, "applied": 0, "duplicates": 0,
                         "implicit_creates": 0, "dead_lettered": 0, "after_as_of": 0,
                         "dead_letter_reasons": {"invalid_json": 0, "invalid_event": 0,
                                                 "unknown_pipeline": 0, "unknown_stage": 0}})
    assert_keys(dq(doc)["dead_letter_reasons"],
                ["invalid_json", "invalid_event", "unknown_pipeline", "unknown_stage"], "reasons")
    assert_keys(doc["pipelines"], ["default", "other"], "pipelines")

    for name, stage_names in (("default", STAGES), ("other", ("only",))):
        p = doc["pipelines"][name]
        assert_keys(p, ["open", "stale", "windows", "lead_velocity_rate"], name)
        assert_keys(p["open"], ["count", "amount", "weighted_amount", "opportunities",
                                "stages", "segments"], f"{name}.open")
        assert p["open"]["segments"] == {"owner": [], "team": [], "source": []}
        assert_sub(p["open"], {"count": 0, "amount": 0.0, "weighted_amount": 0.0,
                               "opportunities": 0})
        assert_keys(p["open"]["stages"], stage_names, f"{name}.open.stages")
        for s in stage_names:
            assert_keys(p["open"]["stages"][s], ["count", "amount", "weighted_amount",
                                                 "stale"], f"{name}.open.{s}")
            assert_sub(p["open"]["stages"][s], {"count": 0, "amount": 0.0,
                                                "weighted_amount": 0.0, "stale": 0})
        assert p["stale"] == []
        assert_keys(p["windows"], ["7d", "48h"], f"{name}.windows")
        for key, frm in (("7d", "2026-03-04T00:00:00Z"), ("48h", "2026-03-09T00:00:00Z")):
            w = p["windows"][key]
            assert_keys(w, ["from", "to", "leads_created", "won", "lost", "won_amount",
                            "win_rate", "close_rate", "avg_deal_size", "sales_cycle_days",
                            "qualified_leads", "sales_velocity_per_day", "stages",
                            "transitions", "segments", "forecast"], f"{name}.{key}")
            assert w["segments"] == {"owner": [], "team": [], "source": []}
            assert_sub(w["forecast"], {"open_at_start": {"count": 0, "amount": 0.0, "weighted_amount": 0.0},
                                       "attainment": None})
            assert_keys(w["forecast"], ["open_at_start", "attainment"], "forecast")
            assert_keys(w["forecast"]["open_at_start"], ["count", "amount", "weighted_amount"], "open_at_start")
            assert_sub(w, {"from": frm, "to": T, "leads_created": 0, "won": 0, "lost": 0,
                           "won_amount": 0.0, "win_rate": None, "close_rate": None,
                           "avg_deal_size": None,
                           "sales_cycle_days": {"mean": None, "count": 0},
                           "qualified_leads": 0, "sales_velocity_per_day": None,
                           "transitions": {}})
            assert_keys(w["sales_cycle_days"], ["mean", "count"], "cycle")
            assert_keys(w["stages"], stage_names, f"{name}.{key}.stages")
            for s in stage_names:
                assert_keys(w["stages"][s], list(ZERO_STAGE_FLOW), f"{key}.{s}")
                assert_keys(w["stages"][s]["dwell_days"], ["mean", "p50", "p90"], "dwell")
                assert_sub(w["stages"][s], ZERO_STAGE_FLOW)
        assert_keys(p["lead_velocity_rate"], ["window", "current", "previous", "rate"], "lvr")
        assert_sub(p["lead_velocity_rate"],
                   {"window": "30d", "current": 0, "previous": 0, "rate": None})


def test_as_of_with_offset_and_fraction_is_reported_in_utc(report_fn):
    doc = report_fn([created("a", d(10, 9))], CONFIG, "2026-03-10T14:30:00.25+02:00")
    # 14:30:00.25+02:00 = 12:30:00.25Z
    assert parse_time(doc["as_of"]) == parse_time("2026-03-10T12:30:00.250000Z")
    assert doc["as_of"].endswith("Z")
    assert_sub(win(doc, "1d"), {"from": "2026-03-10T00:00:00Z",
                                "to": "2026-03-10T12:30:00.250000Z", "leads_created": 1})


def test_as_of_defaults_to_latest_valid_occurred_at(report_fn):
    lines = [
        created("a", d(9, 8)),
        created("b", d(10, 8)),                                  # latest valid
        moved("a", d(20), "no-such-stage"),                      # dead-lettered: ignored
        created("c", d(21), pipeline="nope"),                    # dead-lettered: ignored
    ]
    doc = report_fn(lines, CONFIG, None)
    assert_sub(doc["as_of"], "2026-03-10T08:00:00Z")
    assert_sub(dq(doc), {"events_read": 4, "applied": 2, "dead_lettered": 2,
                         "after_as_of": 0})


def test_as_of_default_counts_a_duplicate_copy(report_fn):
    # READING: "the latest occurred_at of a valid event" includes a later copy that
    # turns out to be a duplicate (it passes section 1's checks; the event clock of 7.1
    # is "the largest occurred_at of a valid event seen").  T = 03-10T08:00, the first
    # copy (03-09T08:00) is applied, the second is a duplicate.
    lines = [created("a", d(9, 8), eid="x"), created("a", d(10, 8), eid="x")]
    doc = report_fn(lines, CONFIG, None)
    assert_sub(doc["as_of"], "2026-03-10T08:00:00Z")
    assert_sub(dq(doc), {"events_read": 2, "applied": 1, "duplicates": 1, "after_as_of": 0})
    # the lead was created by the first copy: 03-09T08:00, outside the 1d window
    assert_sub(win(doc, "1d"), {"leads_created": 0})
    assert_sub(win(doc, "7d"), {"leads_created": 1})


def test_windows_keyed_as_written_whole_days(report_fn):
    config = make_config([DEFAULT], windows=[("48h", 2), ("P1W", 7), ("1d", 1)])
    lines = [created("a", d(9, 0)), created("b", d(8, 23, 59, 59)), created("c", d(3, 12))]
    doc = report_fn(lines, config, T)
    assert_keys(doc["pipelines"]["default"]["windows"], ["48h", "P1W", "1d"], "windows")
    # 48h = 2 whole days: [03-09T00:00, T] -> a;  P1W: [03-04T00:00, T] -> a, b
    assert_sub(win(doc, "48h"), {"from": "2026-03-09T00:00:00Z", "to": T, "leads_created": 1})
    assert_sub(win(doc, "P1W"), {"from": "2026-03-04T00:00:00Z", "leads_created": 2})
    assert_sub(win(doc, "1d"), {"from": "2026-03-10T00:00:00Z", "leads_created": 0})


# --------------------------------------------------------------------------------------
# 4.1 window boundaries
# --------------------------------------------------------------------------------------

def test_window_boundaries_start_inclusive_and_T_inclusive(report_fn):
    lines = [
        created("a", "2026-03-03T23:59:59.999999Z"),   # just before 7d's start
        created("b", "2026-03-04T00:00:00Z"),          # first instant of 7d
        created("c", "2026-03-09T23:59:59.999999Z"),   # just before 1d's start
        created("d", "2026-03-10T00:00:00Z"),          # first instant of 1d
        created("e", "2026-03-10T12:00:00Z"),          # exactly T
        created("f", "2026-03-10T12:00:00.000001Z"),   # after T: does not exist yet
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(win(doc, "1d"), {"from": "2026-03-10T00:00:00Z", "to": T, "leads_created": 2})
    assert_sub(win(doc, "7d"), {"from": "2026-03-04T00:00:00Z", "to": T, "leads_created": 4})
    assert_sub(win(doc, "30d"), {"from": "2026-02-09T00:00:00Z", "to": T, "leads_created": 5})
    assert_sub(dq(doc), {"events_read": 6, "applied": 5, "after_as_of": 1})
    assert_sub(doc["pipelines"]["default"]["open"], {"count": 5})
    # entered counts the same instants
    assert_sub(stage(doc, "1d", "new"), {"entered": 2})
    assert_sub(stage(doc, "7d", "new"), {"entered": 4})


def test_previous_window_is_start_inclusive_end_exclusive(report_fn):
    # Leads created straight into `qualified` count as qualified at creation.
    lines = [
        created("q1", "2026-02-09T00:00:00Z", stage="qualified"),          # current (start)
        created("q2", "2026-03-01T10:00:00Z", stage="qualified"),          # current
        created("q3", T, stage="proposal"),                                # current (T)
        created("p1", "2026-02-08T23:59:59.999999Z", stage="qualified"),   # previous (end excl.)
        created("p2", "2026-01-10T00:00:00Z", stage="negotiation"),        # previous (start)
        created("x1", "2026-01-09T23:59:59Z", stage="qualified"),          # neither
        created("x2", "2026-03-01T10:00:00Z"),                             # never qualified
    ]
    doc = report_fn(lines, CONFIG, T)
    # rate = (3 - 2) / 2
    assert_sub(doc["pipelines"]["default"]["lead_velocity_rate"],
               {"window": "30d", "current": 3, "previous": 2, "rate": 0.5})
    assert_sub(win(doc, "30d"), {"qualified_leads": 3})
    assert_sub(win(doc, "7d"), {"qualified_leads": 1})
    assert_sub(win(doc, "1d"), {"qualified_leads": 1})


def test_lead_velocity_rate_is_30_days_whatever_the_windows(report_fn):
    config = make_config([DEFAULT], windows=[("1d", 1)])
    lines = [
        created("c1", "2026-02-20T00:00:00Z", stage="qualified"),   # current 30d
        created("p1", "2026-01-20T00:00:00Z", stage="qualified"),   # previous
        created("p2", "2026-02-01T00:00:00Z", stage="proposal"),    # previous
    ]
    doc = report_fn(lines, config, T)
    # (1 - 2) / 2 = -0.5
    assert_sub(doc["pipelines"]["default"]["lead_velocity_rate"],
               {"window": "30d", "current": 1, "previous": 2, "rate": -0.5})
    assert_keys(doc["pipelines"]["default"]["windows"], ["1d"], "windows")


def test_lead_velocity_rate_null_when_previous_is_zero(report_fn):
    lines = [created("c1", "2026-03-01T00:00:00Z", stage="qualified")]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(doc["pipelines"]["default"]["lead_velocity_rate"],
               {"window": "30d", "current": 1, "previous": 0, "rate": None})


# --------------------------------------------------------------------------------------
# Section 1 / 5: duplicates, as_of, data quality
# --------------------------------------------------------------------------------------

def test_duplicates_are_scoped_by_pipeline_and_lead(report_fn):
    two = make_config([DEFAULT, make_pipeline("other", [("x", None, 0), ("y", None, 0)])],
                      windows=[("7d", 7)])
    lines = [
        created("a", d(9), eid="e1"),
        created("a", d(9), eid="e1"),                         # exact copy: duplicate
        created("b", d(9), eid="e1"),                         # other lead: applied
        created("a", d(9), eid="e1", pipeline="other"),       # other pipeline: applied
        created("a", d(9), eid="e1", pipeline="default"),     # = the first (explicit default)
        moved("a", d(9, 1), "qualified", eid="e1"),           # same key, other content
    ]
    doc = report_fn(lines, two, T)
    assert_sub(dq(doc), {"events_read": 6, "applied": 3, "duplicates": 3,
                         "after_as_of": 0, "dead_lettered": 0})
    assert_sub(win(doc, "7d"), {"leads_created": 2, "transitions": {}})
    assert_sub(win(doc, "7d", "other"), {"leads_created": 1})


def test_duplicate_whose_first_copy_is_after_as_of(report_fn):
    lines = [created("a", d(11), eid="x", owner="late"),    # first read, but after T
             created("a", d(9), eid="x", owner="early")]    # same key, within T
    doc = report_fn(lines, CONFIG, T)
    # the first copy does not exist yet, so it is not the original of anything
    assert_sub(dq(doc), {"events_read": 2, "after_as_of": 1, "applied": 1, "duplicates": 0})
    assert_sub(win(doc, "7d"), {"leads_created": 1})
    assert_sub(doc["pipelines"]["default"]["open"]["stages"]["new"], {"count": 1})

    # as of the default (03-11T00:00, the latest valid occurred_at) the first copy wins
    doc = report_fn(lines, CONFIG, None)
    assert_sub(doc["as_of"], "2026-03-11T00:00:00Z")
    assert_sub(dq(doc), {"events_read": 2, "after_as_of": 0, "applied": 1, "duplicates": 1})
    assert_sub(win(doc, "1d"), {"leads_created": 1})
    assert_sub(win(doc, "7d"), {"leads_created": 1})


def test_data_quality_counting_order(report_fn):
    lines = [
        moved("a", d(20), "no-such-stage"),          # dead-lettered (even though after T)
        created("a", d(20), eid="late"),             # after_as_of
        created("a", d(20), eid="late"),             # after_as_of (not a duplicate)
        created("a", d(9), eid="k"),                 # applied
        created("a", d(9), eid="k"),                 # duplicate
        closed("a", d(9, 1), "won", eid="c"),        # applied
        "",                                          # not an input
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"events_read": 6, "dead_lettered": 1, "after_as_of": 2,
                         "duplicates": 1, "applied": 2, "implicit_creates": 0,
                         "dead_letter_reasons": {"invalid_json": 0, "invalid_event": 0,
                                                 "unknown_pipeline": 0, "unknown_stage": 1}})


def test_implicit_create_as_of_before_the_lead_created(report_fn):
    lines = [created("a", d(11)), moved("a", d(9), "qualified")]
    # as of T the lead.created (03-11) does not exist: the stage change creates implicitly
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"applied": 1, "after_as_of": 1, "implicit_creates": 1})
    assert_sub(win(doc, "7d"), {"leads_created": 1, "qualified_leads": 1})
    assert_sub(stage(doc, "7d", "qualified"), {"entered": 1})


def test_dead_letter_reasons_and_no_effect(report_fn):
    lines = [
        "not json",
        "[1, 2]",                                                  # not an object
        "\ufeff" + created("x", d(9)),                             # byte-order mark
        json.dumps({"type": "lead.exploded", "event_id": "1", "lead_id": "a",
                    "occurred_at": d(9)}),                         # unknown type
        created("a", "2026-03-09T10:00:00"),                       # no offset
        closed("a", d(9), "maybe"),                                # bad outcome
        created("a", d(9), amount=-1),                             # negative amount
        created("a", d(9), amount=True),                           # boolean amount
        created("a", d(9), pipeline="nope"),                       # unknown pipeline
        created("a", d(9), stage="nope"),                          # unknown stage
        moved("a", d(9), "Qualified"),                             # case-sensitive stage
        created("ok", d(9)),
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"events_read": 12, "dead_lettered": 11, "applied": 1,
                         "dead_letter_reasons": {"invalid_json": 3, "invalid_event": 5,
                                                 "unknown_pipeline": 1,
                                                 "unknown_stage": 2}})
    assert_keys(dq(doc)["dead_letter_reasons"],
                ["invalid_json", "invalid_event", "unknown_pipeline", "unknown_stage"], "r")
    assert_sub(win(doc, "7d"), {"leads_created": 1})
    assert_sub(doc["pipelines"]["default"]["open"], {"count": 1})


def test_events_read_ignores_blank_lines(report_fn):
    lines = ["", "   ", "\t", b"", b"  \t ", "\r", created("a", d(9)), b"{", "  x  "]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"events_read": 3, "applied": 1, "dead_lettered": 2,
                         "dead_letter_reasons": {"invalid_json": 2}})


def test_bytes_and_str_lines_are_equivalent(report_fn):
    lines = [created("a", d(9), amount=3), moved("a", d(9, 5), "proposal")]
    as_str = report_fn(lines, CONFIG, T)
    as_bytes = report_fn([s.encode() for s in lines], CONFIG, T)
    assert as_str == as_bytes


def test_leads_in_two_pipelines_are_distinct(report_fn):
    other = make_pipeline("other", [("o1", 3600, 0.25), ("o2", None, 1.0)])
    config = make_config([DEFAULT, other], windows=[("7d", 7)])
    lines = [created("a", d(9), amount=10),                               # default
             created("a", d(9), pipeline="other", amount=20),            # other: o1
             moved("a", d(9, 1), "o2", pipeline="other"),
             closed("a", d(9, 2), "won")]                                  # default
    doc = report_fn(lines, config, T)
    assert_sub(win(doc, "7d"), {"leads_created": 1, "won": 1, "won_amount": 10.0})
    assert_sub(win(doc, "7d", "other"), {"leads_created": 1, "won": 0,
                                         "transitions": {"o1->o2": 1},
                                         "qualified_leads": 1})
    assert_sub(doc["pipelines"]["other"]["open"],
               {"count": 1, "amount": 20.0, "weighted_amount": 20.0, "opportunities": 1})
    assert_sub(doc["pipelines"]["default"]["open"], {"count": 0})
