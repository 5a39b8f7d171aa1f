"""Hand-computed scenarios for every rule of SPEC section 3 and every metric of 4 and 5.

Each test builds a few JSON lines, states the expected numbers computed by hand (in
comments and literals, never by calling code) and checks them against `report_fn`,
which runs over two independent implementations: the naive `tests/support/reference.py` and the
real engine `pulse.streams.report.build_report`.

Unless a test says otherwise: pipeline "default" with stages
    new (stale 1d, p 0.1) < qualified (stale 2d, p 0.5) < proposal (never stale, p 0.8)
    < negotiation (stale 12h, p 0.9);
qualified_stage = qualified, opportunity_stage = proposal; windows 1d, 7d, 30d;
as_of T = 2026-03-10T12:00:00Z, so the windows are
    1d:  [2026-03-10T00:00Z, T]     7d:  [2026-03-04T00:00Z, T]
    30d: [2026-02-09T00:00Z, T]     previous 30d: [2026-01-10T00:00Z, 2026-02-09T00:00Z)
"""
from __future__ import annotations

import json

from tests.support.reference import make_config, make_pipeline, parse_time
from tests.support.spec_support import (
    CONFIG,
    DEFAULT,
    H,
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
# Section 3: ordering, creation, stays, closes
# --------------------------------------------------------------------------------------

def test_tie_break_by_type_at_the_same_instant(report_fn):
    t = d(9, 6)
    # Arrival order is the reverse of the order they must be applied in.
    lines = [closed("a", t, "won", eid="1"), moved("a", t, "qualified", eid="2"),
             created("a", t, eid="3")]
    doc = report_fn(lines, CONFIG, T)
    # created (new) -> stage_changed (new ends advanced, qualified starts) -> closed won
    assert_sub(dq(doc), {"applied": 3, "implicit_creates": 0})
    assert_sub(stage(doc, "7d", "new"), {"entered": 1, "exited": 1, "advanced": 1,
                                         "dwell_days": {"mean": 0.0, "p50": 0.0, "p90": 0.0}})
    assert_sub(stage(doc, "7d", "qualified"), {"entered": 1, "exited": 1, "won": 1})
    assert_sub(win(doc, "7d"), {"won": 1, "leads_created": 1,
                                "transitions": {"new->qualified": 1},
                                "sales_cycle_days": {"mean": 0.0, "count": 1}})


def test_tie_break_by_event_id_byte_order(report_fn):
    t = d(9, 6)
    # "Z" (0x5A) < "a" (0x61): Z is applied first, so a's owner wins (latest).
    lines = [created("L", t, eid="a", owner="lower", amount=2),
             created("L", t, eid="Z", owner="upper", amount=1, team="t")]
    # two closes at the same instant: "c1" (lost) then "c2" (won) supersedes it
    lines += [closed("M", t, "won", eid="c2"), closed("M", t, "lost", eid="c1")]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(doc["pipelines"]["default"]["open"]["stages"]["new"],
               {"count": 1, "amount": 2.0})
    assert_sub(win(doc, "7d"), {"won": 1, "lost": 0, "leads_created": 2})
    # L created at 03-09T06:00 in `new` (stale 1d): age 1.25 d -> level 1
    assert_sub(doc["pipelines"]["default"]["stale"],
               [{"lead_id": "L", "stage": "new", "since": "2026-03-09T06:00:00Z",
                 "age_days": 1.25, "stale_after_days": 1.0, "level": 1,
                 "owner": "lower", "team": "t", "amount": 2.0}])


def test_late_event_is_placed_where_it_belongs(report_fn):
    lines = [created("a", d(1)), closed("a", d(5), "won", amount=10),
             moved("a", d(3), "qualified")]          # arrives last, happened in between
    doc = report_fn(lines, CONFIG, T)
    # new [03-01, 03-03] advanced (2 d), qualified [03-03, 03-05] won (2 d)
    assert_sub(stage(doc, "30d", "new"), {"entered": 1, "exited": 1, "advanced": 1,
                                          "dwell_days": {"mean": 2.0, "p50": 2.0, "p90": 2.0}})
    assert_sub(stage(doc, "30d", "qualified"),
               {"entered": 1, "exited": 1, "won": 1, "conversion_rate": 1.0,
                "dwell_days": {"mean": 2.0, "p50": 2.0, "p90": 2.0}})
    assert_sub(win(doc, "30d"), {"transitions": {"new->qualified": 1}, "won": 1,
                                 "won_amount": 10.0,
                                 "sales_cycle_days": {"mean": 4.0, "count": 1}})
    # 7d = [03-04, T]: only the close and the qualified stay's exit fall in it
    assert_sub(win(doc, "7d"), {"transitions": {}, "won": 1, "leads_created": 0})
    assert_sub(stage(doc, "7d", "qualified"), {"entered": 0, "exited": 1, "won": 1})
    assert_sub(stage(doc, "7d", "new"), ZERO_STAGE_FLOW)


def test_latest_field_value_is_by_event_time_not_arrival(report_fn):
    lines = [moved("a", d(6), "qualified", owner="late-in-time", team="t2"),
             created("a", d(5), owner="early-in-time", team="t1", amount=5),
             moved("a", d(7), "proposal", amount=6)]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(doc["pipelines"]["default"]["open"]["stages"]["proposal"],
               {"count": 1, "amount": 6.0})
    assert_sub(doc["pipelines"]["default"]["stale"], [])
    lines.append(moved("a", d(8), "negotiation"))      # 12 h limit: now stale, level 3
    doc = report_fn(lines, CONFIG, T)
    assert_sub(doc["pipelines"]["default"]["stale"],
               [{"lead_id": "a", "owner": "late-in-time", "team": "t2", "amount": 6.0,
                 "level": 3, "age_days": 2.5}])


def test_late_amount_before_the_close_changes_the_close_amount(report_fn):
    # The close's amount is "the lead's amount after applying the closing event" in the
    # event-time walk: an amount that happened before the close but arrives after it
    # counts; one that happened after the close does not.
    lines = [created("a", d(5)), closed("a", d(7), "won"),
             moved("a", d(6), "qualified", amount=50),                # late, before close
             created("a", d(8), amount=999)]                          # after the close
    doc = report_fn(lines, CONFIG, T)
    assert_sub(win(doc, "7d"), {"won": 1, "won_amount": 50.0, "avg_deal_size": 50.0})


def test_second_lead_created_only_updates_fields(report_fn):
    lines = [created("a", d(5), owner="ann", amount=10),
             created("a", d(6), stage="proposal", owner="bob", team="emea", amount=20)]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"applied": 2, "duplicates": 0, "implicit_creates": 0})
    assert_sub(win(doc, "7d"), {"leads_created": 1, "transitions": {}})
    assert_sub(stage(doc, "7d", "new"), {"entered": 1, "exited": 0})
    assert_sub(stage(doc, "7d", "proposal"), {"entered": 0})
    assert_sub(doc["pipelines"]["default"]["open"],
               {"count": 1, "amount": 20.0, "weighted_amount": 2.0, "opportunities": 0,
                "stages": {"new": {"count": 1, "amount": 20.0, "weighted_amount": 2.0,
                                   "stale": 1},
                           "proposal": {"count": 0}}})
    # still in `new` since 03-05T00:00: age 5.5 d > 3 x 1 d -> level 3
    assert_sub(doc["pipelines"]["default"]["stale"],
               [{"lead_id": "a", "stage": "new", "since": "2026-03-05T00:00:00Z",
                 "age_days": 5.5, "stale_after_days": 1.0, "level": 3, "owner": "bob",
                 "team": "emea", "amount": 20.0}])


def test_second_lead_created_does_not_reopen_a_closed_lead(report_fn):
    lines = [created("a", d(5), amount=10), closed("a", d(6), "won"),
             created("a", d(7), amount=99)]
    doc = report_fn(lines, CONFIG, T)
    # the close's amount was fixed at 10 when it was applied; the lead stays closed
    assert_sub(win(doc, "7d"), {"won": 1, "won_amount": 10.0, "avg_deal_size": 10.0,
                                "leads_created": 1})
    assert_sub(doc["pipelines"]["default"]["open"], {"count": 0, "amount": 0.0})


def test_implicit_create_by_stage_changed(report_fn):
    lines = [moved("a", d(9), "proposal"),
             created("a", d(9, 12), stage="new", owner="ann", amount=5)]   # later: fields
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"applied": 2, "implicit_creates": 1})
    assert_sub(win(doc, "7d"), {"leads_created": 1, "transitions": {},
                                "qualified_leads": 1})
    assert_sub(stage(doc, "7d", "proposal"), {"entered": 1, "exited": 0})
    assert_sub(stage(doc, "7d", "new"), {"entered": 0})
    assert_sub(doc["pipelines"]["default"]["open"],
               {"count": 1, "opportunities": 1, "amount": 5.0, "weighted_amount": 4.0,
                "stages": {"proposal": {"count": 1, "amount": 5.0, "stale": 0}}})


def test_late_lead_created_makes_the_create_explicit(report_fn):
    # The stage change arrives first but the lead.created happened earlier.
    lines = [moved("a", d(9, 10), "qualified"), created("a", d(9, 8))]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"applied": 2, "implicit_creates": 0})
    assert_sub(win(doc, "7d"), {"leads_created": 1, "transitions": {"new->qualified": 1}})
    assert_sub(stage(doc, "7d", "new"), {"entered": 1, "exited": 1, "advanced": 1,
                                         "dwell_days": {"mean": 2 * H}})


def test_implicit_create_by_deal_closed_is_a_zero_length_stay(report_fn):
    lines = [closed("a", d(9, 6), "won", amount=40)]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"applied": 1, "implicit_creates": 1})
    assert_sub(stage(doc, "7d", "new"),
               {"entered": 1, "exited": 1, "advanced": 0, "regressed": 0, "won": 1,
                "lost": 0, "conversion_rate": 1.0, "drop_off_rate": 0.0,
                "dwell_days": {"mean": 0.0, "p50": 0.0, "p90": 0.0}})
    assert_sub(win(doc, "7d"),
               {"leads_created": 1, "won": 1, "lost": 0, "won_amount": 40.0,
                "win_rate": 1.0, "close_rate": 1.0, "avg_deal_size": 40.0,
                "sales_cycle_days": {"mean": 0.0, "count": 1},
                "qualified_leads": 0,
                # cycle mean 0 -> null
                "sales_velocity_per_day": None, "transitions": {}})
    assert_sub(doc["pipelines"]["default"]["open"], {"count": 0})


def test_stage_changed_to_the_current_stage_only_updates_fields(report_fn):
    lines = [created("a", d(9)), moved("a", d(9, 6), "new", amount=7, owner="o")]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"applied": 2})
    assert_sub(win(doc, "7d"), {"transitions": {}})
    assert_sub(stage(doc, "7d", "new"), {"entered": 1, "exited": 0})
    # the stay still starts at 03-09T00:00: age 1.5 d > 1 d (not > 2 d) -> level 1
    assert_sub(doc["pipelines"]["default"]["stale"],
               [{"lead_id": "a", "stage": "new", "since": "2026-03-09T00:00:00Z",
                 "age_days": 1.5, "stale_after_days": 1.0, "level": 1, "owner": "o",
                 "team": None, "amount": 7.0}])


def test_regressions_and_advances(report_fn):
    lines = [created("a", d(5), stage="proposal"), moved("a", d(6), "qualified"),
             moved("a", d(7), "proposal"), moved("a", d(8), "negotiation")]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(stage(doc, "7d", "proposal"),
               {"entered": 2, "exited": 2, "advanced": 1, "regressed": 1,
                "conversion_rate": 0.5, "drop_off_rate": 0.0,
                "dwell_days": {"mean": 1.0, "p50": 1.0, "p90": 1.0}})
    assert_sub(stage(doc, "7d", "qualified"),
               {"entered": 1, "exited": 1, "advanced": 1, "regressed": 0,
                "conversion_rate": 1.0})
    assert_sub(stage(doc, "7d", "negotiation"), {"entered": 1, "exited": 0})
    assert_sub(win(doc, "7d"), {"transitions": {"proposal->qualified": 1,
                                                "qualified->proposal": 1,
                                                "proposal->negotiation": 1},
                                "qualified_leads": 1})


def test_close_on_an_open_lead_and_stage_flow_outcomes(report_fn):
    lines = [created("a", d(5)), moved("a", d(6), "qualified"), closed("a", d(8), "lost"),
             created("b", d(5), stage="qualified"), closed("b", d(6), "won", amount=8)]
    doc = report_fn(lines, CONFIG, T)
    # qualified exits: a lost (2 d), b won (1 d)
    assert_sub(stage(doc, "7d", "qualified"),
               {"entered": 2, "exited": 2, "advanced": 0, "regressed": 0, "won": 1,
                "lost": 1, "conversion_rate": 0.5, "drop_off_rate": 0.5,
                "dwell_days": {"mean": 1.5, "p50": 1.0, "p90": 2.0}})
    assert_sub(win(doc, "7d"), {"won": 1, "lost": 1, "win_rate": 0.5, "won_amount": 8.0,
                                "leads_created": 2, "close_rate": 0.5})


def test_superseded_close_moves_the_close_and_the_closing_stay(report_fn):
    lines = [
        created("a", d(1), amount=50),
        moved("a", d(2), "qualified"),
        closed("a", d(2, 12), "lost", reason="price"),     # 30d only
        closed("a", d(5), "won", amount=80),               # supersedes it; in 7d
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(win(doc, "30d"), {"won": 1, "lost": 0, "won_amount": 80.0,
                                 "win_rate": 1.0,
                                 "sales_cycle_days": {"mean": 4.0, "count": 1}})
    assert_sub(win(doc, "7d"), {"won": 1, "lost": 0, "won_amount": 80.0,
                                "avg_deal_size": 80.0, "leads_created": 0,
                                "close_rate": None})
    # the closing stay (qualified since 03-02) now ends 03-05, won: dwell 3 d
    qualified = {"entered": 0, "exited": 1, "won": 1, "lost": 0, "conversion_rate": 1.0,
                 "drop_off_rate": 0.0, "dwell_days": {"mean": 3.0, "p50": 3.0, "p90": 3.0}}
    assert_sub(stage(doc, "7d", "qualified"), qualified)
    assert_sub(stage(doc, "30d", "qualified"), dict(qualified, entered=1))
    assert_sub(dq(doc), {"applied": 4})

    # as of 03-04T00:00 the superseding close does not exist yet: the lost close stands
    doc = report_fn(lines, CONFIG, "2026-03-04T00:00:00Z")
    assert_sub(dq(doc), {"applied": 3, "after_as_of": 1})
    assert_sub(win(doc, "30d"), {"won": 0, "lost": 1, "win_rate": 0.0,
                                 "avg_deal_size": None, "won_amount": 0.0})
    assert_sub(stage(doc, "30d", "qualified"),
               {"exited": 1, "lost": 1, "won": 0, "drop_off_rate": 1.0,
                "dwell_days": {"mean": 0.5, "p50": 0.5, "p90": 0.5}})


def test_supersede_of_an_implicit_zero_length_stay(report_fn):
    lines = [closed("a", d(8), "lost"), closed("a", d(9), "won", amount=3)]
    doc = report_fn(lines, CONFIG, T)
    # implicit create at 03-08 in `new`; the closing stay now ends 03-09: dwell 1 d, won
    assert_sub(dq(doc), {"implicit_creates": 1, "applied": 2})
    assert_sub(stage(doc, "7d", "new"),
               {"entered": 1, "exited": 1, "won": 1, "lost": 0,
                "dwell_days": {"mean": 1.0, "p50": 1.0, "p90": 1.0}})
    assert_sub(win(doc, "7d"), {"won": 1, "lost": 0, "won_amount": 3.0,
                                "sales_cycle_days": {"mean": 1.0, "count": 1}})
    assert_sub(win(doc, "1d"), {"won": 0, "lost": 0, "leads_created": 0})


def test_reopen_keeps_the_earlier_close_and_is_not_a_transition(report_fn):
    lines = [
        created("a", d(5), amount=10),
        closed("a", d(6), "lost"),
        moved("a", d(7), "qualified"),               # reopens
        closed("a", d(8), "won", amount=30),         # a new close (the lead was open)
        closed("b", d(4), "lost"),                   # another lead: implicit + closed
        moved("b", d(9), "negotiation"),             # reopens it in its last stage
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"applied": 6, "implicit_creates": 1})
    assert_sub(win(doc, "7d"),
               {"leads_created": 2, "won": 1, "lost": 2, "won_amount": 30.0,
                "win_rate": 1 / 3, "close_rate": 0.5, "avg_deal_size": 30.0,
                # a: 03-08 - 03-05
                "sales_cycle_days": {"mean": 3.0, "count": 1},
                # a via the reopen (03-07), b via the reopen (03-09)
                "qualified_leads": 2,
                "transitions": {}})
    assert_sub(stage(doc, "7d", "qualified"),
               {"entered": 1, "exited": 1, "won": 1, "dwell_days": {"mean": 1.0}})
    assert_sub(stage(doc, "7d", "new"), {"entered": 2, "exited": 2, "lost": 2, "won": 0})
    assert_sub(stage(doc, "7d", "negotiation"), {"entered": 1, "exited": 0})
    # b is open again in negotiation (stale after 12 h) since 03-09T00:00: age 1.5 d
    # > 2 x 0.5 d, but = 3 x 0.5 d (not greater) -> level 2
    assert_sub(doc["pipelines"]["default"]["open"],
               {"count": 1, "opportunities": 1, "amount": 0.0,
                "stages": {"negotiation": {"count": 1, "stale": 1}}})
    assert_sub(doc["pipelines"]["default"]["stale"],
               [{"lead_id": "b", "stage": "negotiation", "since": "2026-03-09T00:00:00Z",
                 "age_days": 1.5, "stale_after_days": 0.5, "level": 2, "owner": None,
                 "team": None, "amount": None}])


def test_reopen_then_close_then_supersede_only_replaces_the_latest_close(report_fn):
    lines = [created("a", d(5)), closed("a", d(6), "won", amount=5),
             moved("a", d(7), "new"), closed("a", d(8), "lost"),
             closed("a", d(9), "won", amount=7)]
    doc = report_fn(lines, CONFIG, T)
    # closes that count: 03-06 won 5, 03-09 won 7 (03-08 lost superseded)
    assert_sub(win(doc, "7d"), {"won": 2, "lost": 0, "won_amount": 12.0,
                                "avg_deal_size": 6.0,
                                "sales_cycle_days": {"mean": 2.5, "count": 2}})
    # new stays: [03-05, 03-06] won (1 d); [03-07, 03-09] won (2 d)
    assert_sub(stage(doc, "7d", "new"),
               {"entered": 2, "exited": 2, "won": 2, "lost": 0,
                "dwell_days": {"mean": 1.5, "p50": 1.0, "p90": 2.0}})


# --------------------------------------------------------------------------------------
# 4.2 deals, rates, velocity
# --------------------------------------------------------------------------------------

def test_close_rate_can_exceed_one(report_fn):
    lines = [created("a", d(1)), created("b", d(2)), created("c", d(5)),
             closed("a", d(6), "won", amount=1), closed("b", d(7), "won", amount=3)]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(win(doc, "7d"), {"leads_created": 1, "won": 2, "close_rate": 2.0,
                                "won_amount": 4.0, "avg_deal_size": 2.0,
                                # a: 5 d, b: 5 d
                                "sales_cycle_days": {"mean": 5.0, "count": 2}})
    assert_sub(win(doc, "30d"), {"leads_created": 3, "close_rate": 2 / 3})


def test_rates_null_rules(report_fn):
    lines = [created("a", d(1)), closed("a", d(6), "lost")]
    doc = report_fn(lines, CONFIG, T)
    # 7d: no lead created, one lost close
    assert_sub(win(doc, "7d"), {"leads_created": 0, "won": 0, "lost": 1, "win_rate": 0.0,
                                "close_rate": None, "avg_deal_size": None,
                                "won_amount": 0.0,
                                "sales_cycle_days": {"mean": None, "count": 0},
                                "sales_velocity_per_day": None})
    # 1d: nothing at all
    assert_sub(win(doc, "1d"), {"win_rate": None, "close_rate": None})


def test_amounts_missing_count_as_zero_in_closes_and_sums(report_fn):
    lines = [created("a", d(5)), closed("a", d(6), "won"),         # never given: 0
             created("b", d(5), amount=None), moved("b", d(6), "proposal"),   # null = absent
             created("c", d(5), amount=0), moved("c", d(6), "proposal", amount=None)]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(win(doc, "7d"), {"won": 1, "won_amount": 0.0, "avg_deal_size": 0.0,
                                "win_rate": 1.0})
    # velocity = 2 opportunities x 1.0 x 0.0 / 1 day = 0 (a factor of 0 is not null)
    assert_sub(win(doc, "7d"), {"sales_velocity_per_day": 0.0})
    assert_sub(doc["pipelines"]["default"]["open"],
               {"count": 2, "amount": 0.0, "weighted_amount": 0.0, "opportunities": 2,
                "stages": {"proposal": {"count": 2, "amount": 0.0}}})


def test_sales_velocity(report_fn):
    lines = [
        created("w1", d(2), amount=100), closed("w1", d(4), "won"),      # cycle 2 d
        created("w2", d(1), amount=300), closed("w2", d(5), "won"),      # cycle 4 d
        created("l1", d(1)), closed("l1", d(5), "lost"),
        created("o1", d(5), stage="proposal", amount=1000),              # opportunities
        created("o2", d(5), stage="negotiation"),
        created("n1", d(5), stage="qualified", amount=50),               # not an opportunity
    ]
    doc = report_fn(lines, CONFIG, T)
    # 7d: won 2, lost 1 -> win_rate 2/3; avg 200; mean cycle 3 d; 2 opportunities
    # velocity = 2 x 2/3 x 200 / 3 = 800 / 9
    assert_sub(win(doc, "7d"), {"won": 2, "lost": 1, "win_rate": 2 / 3,
                                "avg_deal_size": 200.0, "won_amount": 400.0,
                                "sales_cycle_days": {"mean": 3.0, "count": 2},
                                "sales_velocity_per_day": 800 / 9,
                                "leads_created": 3, "close_rate": 2 / 3})
    assert_sub(doc["pipelines"]["default"]["open"], {"opportunities": 2, "count": 3})
    # 1d: no closes -> null
    assert_sub(win(doc, "1d"), {"sales_velocity_per_day": None})


def test_sales_velocity_zero_opportunities_gives_zero(report_fn):
    lines = [created("w1", d(2), amount=100), closed("w1", d(4), "won"),
             created("q", d(5), stage="qualified", amount=9)]   # open, not an opportunity
    doc = report_fn(lines, CONFIG, T)
    assert_sub(doc["pipelines"]["default"]["open"], {"opportunities": 0, "count": 1})
    assert_sub(win(doc, "7d"), {"win_rate": 1.0, "avg_deal_size": 100.0,
                                "sales_cycle_days": {"mean": 2.0, "count": 1},
                                "sales_velocity_per_day": 0.0})


def test_sales_velocity_zero_opportunities_but_a_null_factor(report_fn):
    # READING: "null when any factor is null ... (0 open opportunities gives 0)": the
    # null rule wins; the parenthesis only says a zero factor is not a null one.
    lines = [created("l", d(2)), closed("l", d(4), "lost")]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(doc["pipelines"]["default"]["open"], {"opportunities": 0})
    assert_sub(win(doc, "7d"), {"win_rate": 0.0, "avg_deal_size": None,
                                "sales_velocity_per_day": None})


def test_qualified_leads_counts_the_first_qualifying_stay_only(report_fn):
    lines = [
        # A: qualified on 02-20 (30d only); regresses and re-qualifies in 7d -> 30d only
        created("A", d(20, month=2), stage="qualified"), moved("A", d(5), "new"),
        moved("A", d(6), "qualified"),
        # B: skips `qualified`, straight to proposal (later stage) on 03-05 -> 7d
        created("B", d(20, month=2)), moved("B", d(5), "proposal"),
        # C: closed from `new`, reopened into qualified on 03-09 -> 7d (via the reopen)
        created("C", d(1)), closed("C", d(2), "lost"), moved("C", d(9), "qualified"),
        # D: never qualifies
        created("D", d(5)), moved("D", d(6), "new"),
        # E: qualified at 03-10T01:00 -> 1d, 7d, 30d
        created("E", d(10)), moved("E", d(10, 1), "negotiation"),
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(win(doc, "1d"), {"qualified_leads": 1})
    assert_sub(win(doc, "7d"), {"qualified_leads": 3})
    assert_sub(win(doc, "30d"), {"qualified_leads": 4})
    assert_sub(doc["pipelines"]["default"]["lead_velocity_rate"],
               {"current": 4, "previous": 0, "rate": None})


def test_qualified_stage_equal_to_first_stage_counts_creation(report_fn):
    only = make_pipeline("default", [("solo", None, 0.5)])      # qualified = opportunity = solo
    config = make_config([only], windows=[("7d", 7)])
    lines = [created("a", d(9), amount=4), closed("b", d(9), "won")]   # b: implicit, 0-length
    doc = report_fn(lines, config, T)
    assert_sub(win(doc, "7d"), {"qualified_leads": 2, "leads_created": 2})
    assert_sub(doc["pipelines"]["default"]["open"],
               {"count": 1, "opportunities": 1, "amount": 4.0, "weighted_amount": 2.0})


# --------------------------------------------------------------------------------------
# 4.3 stage flow: windows, dwell, percentiles
# --------------------------------------------------------------------------------------

def test_stage_flow_counts_by_start_and_end_in_window(report_fn):
    lines = [created("a", d(1)), moved("a", d(5), "qualified"),     # new: entered 03-01, exited 03-05
             created("b", d(6)),                                     # new: entered, open
             created("c", d(2)), moved("c", d(3), "proposal")]       # exit 03-03: not in 7d
    doc = report_fn(lines, CONFIG, T)
    assert_sub(stage(doc, "7d", "new"), {"entered": 1, "exited": 1, "advanced": 1,
                                         "dwell_days": {"mean": 4.0}})
    assert_sub(stage(doc, "30d", "new"), {"entered": 3, "exited": 2, "advanced": 2,
                                          "dwell_days": {"mean": 2.5, "p50": 1.0,
                                                         "p90": 4.0}})
    assert_sub(win(doc, "7d"), {"transitions": {"new->qualified": 1}})
    assert_sub(win(doc, "30d"), {"transitions": {"new->qualified": 1, "new->proposal": 1}})


def test_dwell_percentiles_nearest_rank(report_fn):
    # ten leads leave `new` after 1, 2, ..., 10 days (all exits on 03-10T00:00)
    lines = []
    for k in range(1, 11):
        start = d(10 - k) if k < 10 else d(28, month=2)       # 03-10 minus k days
        lines += [created(f"L{k:02d}", start), moved(f"L{k:02d}", d(10), "qualified")]
    doc = report_fn(lines, CONFIG, T)
    # n = 10: p50 rank 5 -> 5 d, p90 rank 9 -> 9 d, mean 5.5 d
    assert_sub(stage(doc, "1d", "new"),
               {"exited": 10, "advanced": 10,
                "dwell_days": {"mean": 5.5, "p50": 5.0, "p90": 9.0}})


def test_dwell_percentiles_nearest_rank_small_n(report_fn):
    lines = [created("a", d(1)), moved("a", d(2), "qualified"),       # 1 d
             created("b", d(1)), moved("b", d(3), "qualified"),       # 2 d
             created("c", d(1)), moved("c", d(10), "qualified")]              # 9 d
    doc = report_fn(lines, CONFIG, T)
    # dwells 1, 2, 9 d: n = 3, p50 rank ceil(1.5) = 2 -> 2 d; p90 rank ceil(2.7) = 3 -> 9 d
    assert_sub(stage(doc, "30d", "new"),
               {"exited": 3, "dwell_days": {"mean": 4.0, "p50": 2.0, "p90": 9.0}})


# --------------------------------------------------------------------------------------
# 4.4 / 4.5 / 4.7 open pipeline and stale leads
# --------------------------------------------------------------------------------------

def test_open_pipeline_sums_and_opportunities(report_fn):
    lines = [created("a", d(9, 20), amount=100),                       # new
             created("b", d(9, 20), stage="qualified", amount=200),
             created("c", d(9, 20), stage="proposal", amount=300),
             created("e", d(9, 20), stage="proposal", amount=5.5),
             created("f", d(10, 6), stage="negotiation"),              # no amount
             created("g", d(9, 20), amount=1000), closed("g", d(9, 21), "won")]
    doc = report_fn(lines, CONFIG, T)
    # weighted: 100 x 0.1 + 200 x 0.5 + (300 + 5.5) x 0.8 + 0 x 0.9 = 354.4
    assert_sub(doc["pipelines"]["default"]["open"],
               {"count": 5, "amount": 605.5, "weighted_amount": 354.4, "opportunities": 3,
                "stages": {
                    "new": {"count": 1, "amount": 100.0, "weighted_amount": 10.0, "stale": 0},
                    "qualified": {"count": 1, "amount": 200.0, "weighted_amount": 100.0,
                                  "stale": 0},
                    "proposal": {"count": 2, "amount": 305.5, "weighted_amount": 244.4,
                                 "stale": 0},
                    "negotiation": {"count": 1, "amount": 0.0, "weighted_amount": 0.0,
                                    "stale": 0}}})
    assert doc["pipelines"]["default"]["stale"] == []


def test_stale_is_strictly_greater_with_levels(report_fn):
    lines = [
        created("s0", "2026-03-09T12:00:00Z"),          # age 1 d exactly: not stale
        created("s1", "2026-03-09T11:59:59.999999Z"),   # 1 d + 1 us: level 1
        created("s2", "2026-03-08T12:00:00Z"),          # 2 d exactly: level 1
        created("s3", "2026-03-08T11:59:59Z"),          # 2 d + 1 s: level 2
        created("s4", "2026-03-07T12:00:00Z"),          # 3 d exactly: level 2
        created("s5", "2026-03-07T11:59:59Z"),          # 3 d + 1 s: level 3
        created("s6", "2026-02-28T12:00:00Z"),          # 10 d: level 3
    ]
    doc = report_fn(lines, CONFIG, T)
    sec = 1 / 86400
    exp = [("s6", "2026-02-28T12:00:00Z", 10.0, 3),
           ("s5", "2026-03-07T11:59:59Z", 3 + sec, 3),
           ("s4", "2026-03-07T12:00:00Z", 3.0, 2),
           ("s3", "2026-03-08T11:59:59Z", 2 + sec, 2),
           ("s2", "2026-03-08T12:00:00Z", 2.0, 1),
           ("s1", "2026-03-09T11:59:59.999999Z", 1 + 1e-6 / 86400, 1)]
    assert_sub(doc["pipelines"]["default"]["stale"],
               [{"lead_id": lid, "stage": "new", "since": since, "age_days": age,
                 "stale_after_days": 1.0, "level": lvl, "owner": None, "team": None,
                 "amount": None} for lid, since, age, lvl in exp])
    for entry in doc["pipelines"]["default"]["stale"]:
        assert_keys(entry, ["lead_id", "stage", "since", "age_days", "stale_after_days",
                            "level", "owner", "team", "amount"], "stale entry")
    assert_sub(doc["pipelines"]["default"]["open"]["stages"]["new"], {"count": 7, "stale": 6})


def test_stale_uses_the_current_stay_of_each_stage(report_fn):
    lines = [created("a", d(1)), moved("a", d(10, 11), "qualified"),   # fresh in qualified
             created("p", d(1, month=1), stage="proposal"),            # never stale
             created("n", d(9, 23), stage="negotiation")]              # 13 h > 12 h: level 1
    doc = report_fn(lines, CONFIG, T)
    assert_sub(doc["pipelines"]["default"]["stale"],
               [{"lead_id": "n", "stage": "negotiation", "since": "2026-03-09T23:00:00Z",
                 "age_days": 13 / 24, "stale_after_days": 0.5, "level": 1}])
    assert_sub(doc["pipelines"]["default"]["open"]["stages"],
               {"proposal": {"count": 1, "stale": 0}, "qualified": {"count": 1, "stale": 0},
                "negotiation": {"count": 1, "stale": 1}})


def test_stale_after_zero_seconds(report_fn):
    hot = make_pipeline("default", [("hot", 0, 1.0), ("cold", None, 0.0)])
    config = make_config([hot], windows=[("1d", 1)])
    lines = [created("at-T", T, amount=1), created("before", "2026-03-10T11:59:59.999999Z")]
    doc = report_fn(lines, config, T)
    # age 0 is not > 0; 1 us > 3 x 0 -> level 3
    assert_sub(doc["pipelines"]["default"]["stale"],
               [{"lead_id": "before", "stage": "hot", "since": "2026-03-10T11:59:59.999999Z",
                 "age_days": 1e-6 / 86400, "stale_after_days": 0.0, "level": 3,
                 "owner": None, "team": None, "amount": None}])
    assert_sub(doc["pipelines"]["default"]["open"]["stages"]["hot"],
               {"count": 2, "stale": 1, "amount": 1.0, "weighted_amount": 1.0})


def test_stale_sorted_by_age_then_lead_id_bytes(report_fn):
    t = d(5)
    ids = ["b", "é", "a", "B", "a1"]      # byte order: B < a < a1 < b < é
    lines = [created(i, t) for i in ids] + [created("zz-oldest", d(4))]
    doc = report_fn(lines, CONFIG, T)
    got = [e["lead_id"] for e in doc["pipelines"]["default"]["stale"]]
    assert got == ["zz-oldest", "B", "a", "a1", "b", "é"]


def test_stale_entry_amount_null_versus_zero(report_fn):
    lines = [created("none", d(5), owner="o"), created("zero", d(5), amount=0, team="t"),
             moved("zero", d(5, 1), "new", amount=None)]      # null = absent: stays 0
    doc = report_fn(lines, CONFIG, T)
    stale = {e["lead_id"]: e for e in doc["pipelines"]["default"]["stale"]}
    assert stale["none"]["amount"] is None and stale["none"]["owner"] == "o"
    assert stale["none"]["team"] is None
    assert stale["zero"]["amount"] == 0 and stale["zero"]["amount"] is not None
    assert stale["zero"]["team"] == "t" and stale["zero"]["owner"] is None
    assert_sub(doc["pipelines"]["default"]["open"], {"count": 2, "amount": 0.0})


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
