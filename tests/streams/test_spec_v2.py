"""Hand-computed scenarios for every rule SPEC v2 adds: `lead.updated` (section 1, the
tie order and rules 7 and 8 of section 3), segments by owner, team and source (4.8),
forecast against actual (4.9) and their place in the report (5).

Like test_spec_rules.py, every test runs over both the naive reference and the engine
(`report_fn`), and every expected number is computed by hand in the comments.

Pipeline "default" (tests/support/spec_support.py):
    new (stale 1d, p 0.1) < qualified (stale 2d, p 0.5) < proposal (never stale, p 0.8)
    < negotiation (stale 12h, p 0.9);
qualified_stage = qualified, opportunity_stage = proposal; windows 1d, 7d, 30d;
as_of T = 2026-03-10T12:00:00Z, so the windows' `from` are
    1d: 2026-03-10T00:00Z     7d: 2026-03-04T00:00Z     30d: 2026-02-09T00:00Z
"""
from __future__ import annotations

import itertools
import json

import pytest

from pulse.streams.engine import PulseEngine
from tests.support.reference import make_config, make_pipeline, parse_time, reference_report
from tests.support.spec_support import (
    CONFIG,
    T,
    assert_keys,
    assert_reports_match,
    assert_sub,
    closed,
    created,
    d,
    dq,
    forecast,
    moved,
    seg,
    stage,
    updated,
    win,
)

WINDOW_SEGMENT_KEYS = ["value", "leads_created", "won", "lost", "won_amount", "win_rate",
                       "close_rate", "avg_deal_size", "sales_cycle_days"]
OPEN_SEGMENT_KEYS = ["value", "count", "amount", "weighted_amount", "stale"]


def open_(doc, pipeline="default"):
    return doc["pipelines"][pipeline]["open"]


def created_only(value, n=1):
    """A window segment entry with n creations and no close."""
    return {"value": value, "leads_created": n, "won": 0, "lost": 0, "won_amount": 0.0,
            "win_rate": None, "close_rate": 0.0, "avg_deal_size": None,
            "sales_cycle_days": {"mean": None, "count": 0}}


# --------------------------------------------------------------------------------------
# Rule 8: lead.updated before the lead exists, update-only leads
# --------------------------------------------------------------------------------------

def test_update_fields_are_held_until_an_explicit_creation(report_fn):
    lines = [
        created("a", d(6), stage="qualified"),
        # placed before the creation (earlier occurred_at), although it arrives later
        updated("a", d(5), owner="ann", team="emea", amount=100, source="web"),
        # b: held owner ann, then the creating event's own owner bob wins (later in order)
        updated("b", d(5), owner="ann", amount=5),
        created("b", d(6), owner="bob"),
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"applied": 4, "implicit_creates": 0, "dead_lettered": 0})
    # a: qualified, amount 100 -> weighted 50; b: new, amount 5 -> weighted 0.5
    assert_sub(open_(doc), {"count": 2, "amount": 105.0, "weighted_amount": 50.5})
    # created at 03-06 (not at the update's 03-05): 7d counts both, 1d none
    assert_sub(win(doc, "7d"), {"leads_created": 2})
    assert_sub(win(doc, "1d"), {"leads_created": 0})
    # the creation counts for the values just after the creating event
    assert_sub(seg(doc, "owner", "7d"), [created_only("ann"), created_only("bob")])
    assert_sub(seg(doc, "team", "7d"), [created_only("emea"), created_only(None)])
    assert_sub(seg(doc, "source", "7d"), [created_only("web"), created_only(None)])
    # open: a is stale (qualified 2d; age T - 03-06 = 4.5 d > 2, > 2*2, not > 3*2:
    # level 2); b too (new 1d; age 4.5 d > 3 * 1: level 3)
    assert_sub(seg(doc, "owner"), [
        {"value": "ann", "count": 1, "amount": 100.0, "weighted_amount": 50.0, "stale": 1},
        {"value": "bob", "count": 1, "amount": 5.0, "weighted_amount": 0.5, "stale": 1},
    ])
    assert_sub(seg(doc, "source"), [
        {"value": "web", "count": 1, "amount": 100.0, "weighted_amount": 50.0, "stale": 1},
        {"value": None, "count": 1, "amount": 5.0, "weighted_amount": 0.5, "stale": 1},
    ])
    # stale entries carry the held values; both ages 4.5 d, so by lead_id
    assert_sub(doc["pipelines"]["default"]["stale"], [
        {"lead_id": "a", "stage": "qualified", "since": d(6), "age_days": 4.5, "level": 2,
         "owner": "ann", "team": "emea", "amount": 100.0},
        {"lead_id": "b", "stage": "new", "since": d(6), "age_days": 4.5, "level": 3,
         "owner": "bob", "team": None, "amount": 5.0},
    ])


def test_update_fields_are_held_until_an_implicit_creation(report_fn):
    lines = [
        updated("a", d(5), owner="ann", amount=40),
        moved("a", d(6), "proposal"),                   # implicit: a starts in proposal
        updated("b", d(5), owner="cy", amount=70, source="ads"),
        updated("b", d(5, 6), amount=75),               # latest held amount: 75
        closed("b", d(6), "won"),                       # implicit create + close, amount 75
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"applied": 5, "implicit_creates": 2})
    # a: proposal 40 -> weighted 32
    assert_sub(open_(doc), {"count": 1, "amount": 40.0, "weighted_amount": 32.0,
                            "opportunities": 1})
    assert_sub(win(doc, "7d"), {"leads_created": 2, "won": 1, "won_amount": 75.0})
    assert_sub(seg(doc, "owner", "7d"), [
        created_only("ann"),
        # b: created and closed at 03-06 -> cycle 0 days
        {"value": "cy", "leads_created": 1, "won": 1, "lost": 0, "won_amount": 75.0,
         "win_rate": 1.0, "close_rate": 1.0, "avg_deal_size": 75.0,
         "sales_cycle_days": {"mean": 0.0, "count": 1}},
    ])
    assert_sub(seg(doc, "source", "7d"), [
        {"value": "ads", "leads_created": 1, "won": 1, "won_amount": 75.0},
        created_only(None),
    ])


def test_a_lead_with_only_updates_does_not_exist(report_fn):
    lines = [
        updated("z", d(9), owner="ann", amount=10, eid="u1"),
        updated("z", d(9, 1), team="x", source="web", eid="u2"),
        updated("z", d(9, 1), team="x", source="web", eid="u2"),    # a re-delivery
    ]
    doc = report_fn(lines, CONFIG, T)
    # counts only in data_quality, as applied (and the copy as a duplicate)
    assert_sub(dq(doc), {"events_read": 3, "applied": 2, "duplicates": 1,
                         "implicit_creates": 0, "dead_lettered": 0})
    assert_sub(open_(doc), {"count": 0, "amount": 0.0, "weighted_amount": 0.0})
    assert doc["pipelines"]["default"]["stale"] == []
    assert open_(doc)["segments"] == {"owner": [], "team": [], "source": []}
    for key in ("1d", "7d", "30d"):
        assert_sub(win(doc, key), {"leads_created": 0, "won": 0, "lost": 0})
        assert win(doc, key)["segments"] == {"owner": [], "team": [], "source": []}
        assert_sub(forecast(doc, key)["open_at_start"], {"count": 0})


def test_update_on_a_closed_lead_neither_reopens_nor_creates(report_fn):
    lines = [
        created("a", d(8), amount=10),
        closed("a", d(9), "lost"),
        updated("a", d(9, 6), amount=99, owner="bob"),   # after the close: fields only
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"applied": 3})
    assert_sub(open_(doc), {"count": 0})
    assert_sub(win(doc, "7d"), {"leads_created": 1, "lost": 1, "won": 0})
    assert_sub(stage(doc, "7d", "new"), {"entered": 1, "exited": 1, "lost": 1})
    # the close (and the creation) stay with the owner just after their events: null
    assert_sub(seg(doc, "owner", "7d"), [
        {"value": None, "leads_created": 1, "won": 0, "lost": 1, "won_amount": 0.0,
         "win_rate": 0.0, "close_rate": 0.0, "avg_deal_size": None},
    ])


# --------------------------------------------------------------------------------------
# Section 3's tie order and rule 7's close amount
# --------------------------------------------------------------------------------------

def test_tie_order_created_updated_stage_changed_closed(report_fn):
    # All four at 03-09T06:00; the event_ids run against the type order, and the lines
    # arrive in reverse, so only the type order can give these numbers:
    #   created (new, amount 10) < updated (amount 20, owner ann)
    #   < stage_changed (new -> proposal) < closed (won, amount 20 fixed now)
    at = d(9, 6)
    lines = [
        closed("a", at, "won", eid="w"),
        moved("a", at, "proposal", eid="x"),
        updated("a", at, amount=20, owner="ann", eid="y"),
        created("a", at, amount=10, eid="z"),
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"applied": 4, "implicit_creates": 0})
    assert_sub(open_(doc), {"count": 0})                  # closed last: not reopened
    assert_sub(win(doc, "7d"), {"leads_created": 1, "won": 1, "won_amount": 20.0,
                                "transitions": {"new->proposal": 1}})
    assert_sub(stage(doc, "7d", "new"), {"entered": 1, "exited": 1, "advanced": 1})
    assert_sub(stage(doc, "7d", "proposal"), {"entered": 1, "exited": 1, "won": 1})
    # the creation was applied before the update: it counts for owner null; the close
    # after it: for ann.  Sorted: "ann", then null last.
    assert_sub(seg(doc, "owner", "7d"), [
        {"value": "ann", "leads_created": 0, "won": 1, "lost": 0, "won_amount": 20.0,
         "win_rate": 1.0, "close_rate": None, "avg_deal_size": 20.0,
         "sales_cycle_days": {"mean": 0.0, "count": 1}},
        created_only(None),
    ])


def test_update_before_a_close_changes_its_amount_even_when_it_arrives_later(report_fn):
    lines = [
        created("a", d(8), amount=10),
        closed("a", d(9), "won"),
        created("b", d(8), amount=10),
        closed("b", d(9), "won"),
        created("c", d(8), amount=10),
        closed("c", d(9), "won", eid="c-close"),
        # arriving after the closes:
        updated("a", d(8, 12), amount=30),                  # before a's close: 30
        updated("b", d(9, 1), amount=99, owner="bob"),      # after b's close: stays 10
        updated("c", d(9), amount=50, eid="c-upd"),         # same instant: updated <
                                                            # closed, so 50
    ]
    doc = report_fn(lines, CONFIG, T)
    # won_amount = 30 + 10 + 50 = 90; avg 30
    assert_sub(win(doc, "7d"), {"won": 3, "won_amount": 90.0, "avg_deal_size": 30.0})
    # b's close stays with owner null (bob came after it); bob has no creation or close
    assert_sub(seg(doc, "owner", "7d"), [
        {"value": None, "leads_created": 3, "won": 3, "won_amount": 90.0,
         "close_rate": 1.0, "avg_deal_size": 30.0},
    ])


def test_stage_fields_on_lead_updated_are_ignored_whatever_their_type(report_fn):
    lines = [
        created("a", d(8)),
        updated("a", d(9), stage="negotiation", to_stage="proposal", from_stage="new",
                amount=10),
        updated("a", d(9, 1), stage=7, to_stage={"x": 1}, from_stage=[1]),
        updated("a", d(9, 2), stage="no-such-stage", to_stage=None, from_stage=True),
        updated("u", d(9), to_stage="zz"),            # update-only lead, unknown stage
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"events_read": 5, "applied": 5, "dead_lettered": 0,
                         "dead_letter_reasons": {"invalid_json": 0, "invalid_event": 0,
                                                 "unknown_pipeline": 0,
                                                 "unknown_stage": 0}})
    # a is still in new (stay from 03-08), with amount 10: weighted 1
    assert_sub(open_(doc)["stages"]["new"], {"count": 1, "amount": 10.0,
                                            "weighted_amount": 1.0})
    assert_sub(open_(doc), {"count": 1, "opportunities": 0})
    assert_sub(win(doc, "7d"), {"transitions": {}, "qualified_leads": 0})
    assert_sub(stage(doc, "7d", "new"), {"entered": 1, "exited": 0})


# --------------------------------------------------------------------------------------
# 4.8 segments
# --------------------------------------------------------------------------------------

def test_reassignment_between_creation_and_close(report_fn):
    lines = [
        created("a", d(5), owner="ann", team="t1", amount=100, stage="proposal"),
        updated("a", d(6), owner="bob"),
        closed("a", d(7), "won"),
        created("b", d(5), owner="ann", amount=50, stage="qualified"),
        updated("b", d(8), owner="bob"),
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(win(doc, "7d"), {"leads_created": 2, "won": 1, "won_amount": 100.0})
    # the creations stay with ann, a's close counts for bob (cycle 03-05 -> 03-07: 2 d)
    assert_sub(seg(doc, "owner", "7d"), [
        created_only("ann", 2),
        {"value": "bob", "leads_created": 0, "won": 1, "lost": 0, "won_amount": 100.0,
         "win_rate": 1.0, "close_rate": None, "avg_deal_size": 100.0,
         "sales_cycle_days": {"mean": 2.0, "count": 1}},
    ])
    # the team did not change: t1 has a's creation and close; b has no team
    assert_sub(seg(doc, "team", "7d"), [
        {"value": "t1", "leads_created": 1, "won": 1, "won_amount": 100.0,
         "close_rate": 1.0, "win_rate": 1.0},
        created_only(None),
    ])
    # the open pipeline moved with b to bob: qualified 50 -> weighted 25; stale
    # (qualified 2d, age T - 03-05 = 5.5 d > 4, not > 6: level 2)
    assert_sub(seg(doc, "owner"), [
        {"value": "bob", "count": 1, "amount": 50.0, "weighted_amount": 25.0, "stale": 1},
    ])
    assert_keys(seg(doc, "owner")[0], OPEN_SEGMENT_KEYS, "open.segments.owner[0]")
    assert_keys(seg(doc, "owner", "7d")[0], WINDOW_SEGMENT_KEYS, "7d.segments.owner[0]")
    assert_sub(doc["pipelines"]["default"]["stale"], [{"lead_id": "b", "level": 2,
                                                       "owner": "bob"}])
    # nothing happened in the 1d window
    assert win(doc, "1d")["segments"] == {"owner": [], "team": [], "source": []}


def test_superseding_close_counts_for_the_owner_after_the_superseding_event(report_fn):
    lines = [
        created("a", d(5), owner="ann", amount=10),
        closed("a", d(6), "lost"),
        updated("a", d(7), owner="bob", amount=20),
        closed("a", d(8), "won"),                   # supersedes: won, 20, bob
        created("b", d(5), owner="ann"),
        closed("b", d(6), "won", amount=5),
        closed("b", d(8), "won", owner="cy"),       # supersedes: won, 5, cy (own field)
    ]
    doc = report_fn(lines, CONFIG, T)
    # the superseded closes count nowhere: won 2 (20 + 5), lost 0
    assert_sub(win(doc, "7d"), {"leads_created": 2, "won": 2, "lost": 0,
                                "won_amount": 25.0})
    assert_sub(seg(doc, "owner", "7d"), [
        created_only("ann", 2),
        # a: created 03-05, closed 03-08: 3 d
        {"value": "bob", "leads_created": 0, "won": 1, "lost": 0, "won_amount": 20.0,
         "win_rate": 1.0, "close_rate": None, "avg_deal_size": 20.0,
         "sales_cycle_days": {"mean": 3.0, "count": 1}},
        {"value": "cy", "leads_created": 0, "won": 1, "lost": 0, "won_amount": 5.0,
         "win_rate": 1.0, "close_rate": None, "avg_deal_size": 5.0,
         "sales_cycle_days": {"mean": 3.0, "count": 1}},
    ])


def test_segment_values_sorted_by_utf8_bytes_null_last(report_fn):
    # code point order = UTF-8 byte order; neither case-folding ("alice" < "Zed") nor
    # UTF-16 order (U+1F600 as surrogates before U+FF5E) gives this order
    owners = ["\U0001F600", "bob", None, "\u00e9mile", "Zed", "\uff5e", "alice", "\u00c1bc"]
    lines = [created(f"L{i}", d(9), **({} if o is None else {"owner": o}))
             for i, o in enumerate(owners)]
    doc = report_fn(lines, CONFIG, T)
    expected_order = ["Zed", "alice", "bob", "\u00c1bc", "\u00e9mile", "\uff5e",
                      "\U0001F600", None]
    assert [e["value"] for e in seg(doc, "owner")] == expected_order
    assert [e["value"] for e in seg(doc, "owner", "7d")] == expected_order
    # each lead in new since 03-09: age 1.5 d > 1 d: stale (level 1)
    assert all(e["count"] == 1 and e["stale"] == 1 for e in seg(doc, "owner"))
    # no team, no source given: one null entry with all 8 leads
    assert_sub(seg(doc, "team"), [{"value": None, "count": 8, "amount": 0.0,
                                   "weighted_amount": 0.0, "stale": 8}])
    assert_sub(seg(doc, "source", "7d"), [created_only(None, 8)])
    # the document survives a JSON round trip with these values
    assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc


def test_segment_sums_add_up_to_the_window_totals(report_fn):
    lines = [
        created("a", d(5), owner="ann", team="t1", source="web", amount=100),
        closed("a", d(6), "won"),                               # ann/t1/web: won 100
        created("b", d(5), owner="bob", team="t1", amount=40),
        updated("b", d(6), owner="ann", source="ads"),
        closed("b", d(7), "lost"),                              # ann/t1/ads: lost
        created("c", d(6), owner="cy", source="web", amount=7, stage="proposal"),
        closed("c", d(7), "won", team="t2"),                    # cy/t2/web: won 7
        moved("e", d(9), "proposal", owner="bob", amount=60),   # implicit, open
        updated("e", d(9, 6), team="t2"),
    ]
    doc = report_fn(lines, CONFIG, T)
    # 7d totals: created a, b, c, e = 4; won a, c = 2 (107); lost b = 1
    w = win(doc, "7d")
    assert_sub(w, {"leads_created": 4, "won": 2, "lost": 1, "won_amount": 107.0})
    # by hand, per owner: ann: created a, won a (100), lost b; bob: created b, e;
    # cy: created c, won c (7)
    assert_sub(seg(doc, "owner", "7d"), [
        {"value": "ann", "leads_created": 1, "won": 1, "lost": 1, "won_amount": 100.0,
         "win_rate": 0.5, "close_rate": 1.0},
        {"value": "bob", "leads_created": 2, "won": 0, "lost": 0},
        {"value": "cy", "leads_created": 1, "won": 1, "lost": 0, "won_amount": 7.0},
    ])
    # per team: t1: created a, b; won a, lost b.  t2: c's close (team given on the
    # closing event) only; e got t2 after its creation.  null: created c, e
    assert_sub(seg(doc, "team", "7d"), [
        {"value": "t1", "leads_created": 2, "won": 1, "lost": 1, "won_amount": 100.0},
        {"value": "t2", "leads_created": 0, "won": 1, "lost": 0, "won_amount": 7.0},
        {"value": None, "leads_created": 2, "won": 0, "lost": 0},
    ])
    # per source: web: created a, c, won a, c; ads: lost b; null: created b, e
    assert_sub(seg(doc, "source", "7d"), [
        {"value": "ads", "leads_created": 0, "won": 0, "lost": 1},
        {"value": "web", "leads_created": 2, "won": 2, "lost": 0, "won_amount": 107.0},
        {"value": None, "leads_created": 2, "won": 0, "lost": 0},
    ])
    for dim in ("owner", "team", "source"):
        entries = seg(doc, dim, "7d")
        for k in ("leads_created", "won", "lost"):
            assert sum(e[k] for e in entries) == w[k], (dim, k)
        assert abs(sum(e["won_amount"] for e in entries) - w["won_amount"]) < 1e-9
        # open: only e (proposal 60 -> weighted 48), owner bob, team t2, source null
        o = seg(doc, dim)
        assert sum(e["count"] for e in o) == open_(doc)["count"] == 1
        assert abs(sum(e["weighted_amount"] for e in o) - 48.0) < 1e-9
    assert_sub(seg(doc, "team"), [{"value": "t2", "count": 1, "amount": 60.0,
                                   "weighted_amount": 48.0, "stale": 0}])


# --------------------------------------------------------------------------------------
# 4.9 forecast
# --------------------------------------------------------------------------------------

def test_event_exactly_at_a_window_from(report_fn):
    lines = [
        created("a", "2026-03-04T00:00:00Z", stage="proposal", amount=100),
        created("b", "2026-03-03T23:59:59.999999Z", stage="proposal", amount=50),
        closed("b", "2026-03-04T00:00:00Z", "won"),
    ]
    doc = report_fn(lines, CONFIG, T)
    # 7d from 03-04T00:00: a (created at from) counts in the window, not at its start;
    # b was open just before (proposal 50 -> 40) and its close at `from` is in the window
    assert_sub(win(doc, "7d"), {"leads_created": 1, "won": 1, "won_amount": 50.0})
    assert_sub(forecast(doc, "7d"), {
        "open_at_start": {"count": 1, "amount": 50.0, "weighted_amount": 40.0},
        "attainment": 1.25})                                  # 50 / 40
    # 1d from 03-10: a open (100 -> 80), b closed; nothing won: attainment 0
    assert_sub(forecast(doc, "1d"), {
        "open_at_start": {"count": 1, "amount": 100.0, "weighted_amount": 80.0},
        "attainment": 0.0})
    # 30d from 02-09: nothing before it -> weighted 0 -> attainment null (won 50)
    assert_sub(win(doc, "30d"), {"won_amount": 50.0})
    assert_sub(forecast(doc, "30d"), {
        "open_at_start": {"count": 0, "amount": 0.0, "weighted_amount": 0.0},
        "attainment": None})


def test_attainment_null_when_the_weighted_amount_at_start_is_zero(report_fn):
    lines = [
        created("a", d(1)),                                   # open at 03-04, no amount
        created("b", d(5), amount=10),
        closed("b", d(6), "won"),
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(win(doc, "7d"), {"won_amount": 10.0})
    assert_sub(forecast(doc, "7d"), {
        "open_at_start": {"count": 1, "amount": 0.0, "weighted_amount": 0.0},
        "attainment": None})
    # a stage of probability 0 with an amount: weighted 0 as well
    zero = make_pipeline("default", [("cold", None, 0.0), ("hot", None, 1.0)])
    config = make_config([zero], windows=[("7d", 7)])
    lines = [created("a", d(1), amount=500), created("b", d(5), amount=10),
             closed("b", d(6), "won")]
    doc = report_fn(lines, config, T)
    assert_sub(forecast(doc, "7d"), {
        "open_at_start": {"count": 1, "amount": 500.0, "weighted_amount": 0.0},
        "attainment": None})


def test_open_at_start_uses_the_stage_probabilities_at_that_time(report_fn):
    lines = [
        created("a", d(1), amount=100),                        # new: 100 x 0.1 = 10
        created("b", d(1), stage="qualified", amount=200),     # 200 x 0.5 = 100
        created("c", d(1), amount=10),
        moved("c", d(2), "negotiation"),                       # at 03-04: 10 x 0.9 = 9
        moved("c", d(5), "proposal"),                          # (later: 10 x 0.8 = 8)
        created("dd", d(1), stage="proposal", amount=1000),
        closed("dd", d(3), "won"),                             # closed before 03-04
        created("e", d(1), stage="proposal"),                  # open, amount 0
        created("f", d(5), amount=238),
        closed("f", d(6), "won"),                              # won in 7d: 238
    ]
    doc = report_fn(lines, CONFIG, T)
    # 7d: a, b, c, e open at 03-04: amount 100 + 200 + 10 + 0 = 310; weighted
    # 10 + 100 + 9 + 0 = 119; attainment 238 / 119 = 2.0
    assert_sub(win(doc, "7d"), {"won_amount": 238.0})
    assert_sub(forecast(doc, "7d"), {
        "open_at_start": {"count": 4, "amount": 310.0, "weighted_amount": 119.0},
        "attainment": 2.0})
    # 1d (03-10): the same four, c now in proposal: 10 + 100 + 8 + 0 = 118; no win
    assert_sub(forecast(doc, "1d"), {
        "open_at_start": {"count": 4, "amount": 310.0, "weighted_amount": 118.0},
        "attainment": 0.0})
    # 30d (02-09): nothing yet
    assert_sub(forecast(doc, "30d"), {
        "open_at_start": {"count": 0, "amount": 0.0, "weighted_amount": 0.0},
        "attainment": None})


def test_amount_edits_while_open(report_fn):
    lines = [
        created("a", d(1), stage="proposal", amount=100),
        updated("a", d(2), amount=300),
        moved("a", d(3), "proposal", amount=200),      # same stage: fields only
        updated("a", d(5), amount=50),
        created("b", d(5), amount=80),
        closed("b", d(6), "won"),
    ]
    doc = report_fn(lines, CONFIG, T)
    # at 03-04, a's amount is the one of 03-03: 200 (proposal: 160); won 80 -> 0.5
    assert_sub(forecast(doc, "7d"), {
        "open_at_start": {"count": 1, "amount": 200.0, "weighted_amount": 160.0},
        "attainment": 0.5})
    # at 03-10: 50 (40)
    assert_sub(forecast(doc, "1d"), {
        "open_at_start": {"count": 1, "amount": 50.0, "weighted_amount": 40.0},
        "attainment": 0.0})
    assert_sub(open_(doc), {"count": 1, "amount": 50.0, "weighted_amount": 40.0})
    assert_sub(stage(doc, "30d", "proposal"), {"entered": 1, "exited": 0})


def test_reopen_and_close_around_a_window_start(report_fn):
    lines = [
        created("a", d(1), stage="proposal", amount=100),
        closed("a", d(2), "lost"),
        moved("a", d(3), "negotiation"),               # reopen before 03-04
        closed("a", d(5), "won"),                      # in 7d: won 100
        created("b", d(1), stage="proposal", amount=40),
        closed("b", "2026-03-03T23:59:59Z", "won"),    # closed just before 03-04
        moved("b", "2026-03-04T00:00:00Z", "proposal"),  # reopened at `from` exactly
    ]
    doc = report_fn(lines, CONFIG, T)
    # at 03-04: a open in negotiation (100 x 0.9 = 90), b closed
    # 7d: won a (100); b's close is before from -> attainment 100 / 90
    assert_sub(win(doc, "7d"), {"won": 1, "lost": 0, "won_amount": 100.0})
    assert_sub(forecast(doc, "7d"), {
        "open_at_start": {"count": 1, "amount": 100.0, "weighted_amount": 90.0},
        "attainment": 100.0 / 90.0})
    # now: b open in proposal (40 -> 32), a closed
    assert_sub(open_(doc), {"count": 1, "amount": 40.0, "weighted_amount": 32.0})
    # 1d (03-10): b open (32), nothing won -> 0.0
    assert_sub(forecast(doc, "1d"), {
        "open_at_start": {"count": 1, "amount": 40.0, "weighted_amount": 32.0},
        "attainment": 0.0})
    # 30d: all three closes count (the reopen keeps the earlier close): won a 100,
    # won b 40, lost a; nothing open at 02-09
    assert_sub(win(doc, "30d"), {"won": 2, "lost": 1, "won_amount": 140.0})
    assert_sub(forecast(doc, "30d"), {"attainment": None})


def test_a_late_event_re_derives_open_at_start(report_fn):
    early = [
        created("a", d(1), amount=100),                # new: 10
        created("b", d(1), amount=10),                 # new: 1
    ]
    doc = report_fn(early, CONFIG, T)
    assert_sub(forecast(doc, "7d")["open_at_start"],
               {"count": 2, "amount": 110.0, "weighted_amount": 11.0})
    late = [
        moved("a", d(2), "negotiation"),               # a at 03-04: negotiation
        updated("a", d(3), amount=500),                # ... with 500: 450
        closed("b", d(2), "lost"),                     # b closed before 03-04
    ]
    doc = report_fn(early + late, CONFIG, T)
    assert_sub(forecast(doc, "7d"), {
        "open_at_start": {"count": 1, "amount": 500.0, "weighted_amount": 450.0},
        "attainment": 0.0})
    # the late lost close is in 7d? no: 03-02 < 03-04; in 30d yes
    assert_sub(win(doc, "7d"), {"lost": 0})
    assert_sub(win(doc, "30d"), {"lost": 1})


def test_a_late_event_re_derives_open_at_start_in_the_live_engine():
    """The same late events, fed one by one to the live engine after the early ones."""
    eng = PulseEngine(CONFIG, as_of=None)
    t_us = parse_time(T)
    for ln in (created("a", d(1), amount=100), created("b", d(1), amount=10)):
        eng.ingest(ln.encode("utf-8"))
    # at 03-04: a (new, 100 -> 10) and b (new, 10 -> 1) open
    assert_sub(forecast(eng.report(t_us), "7d")["open_at_start"],
               {"count": 2, "amount": 110.0, "weighted_amount": 11.0})
    for ln in (moved("a", d(2), "negotiation"), updated("a", d(3), amount=500),
               closed("b", d(2), "lost")):
        eng.ingest(ln.encode("utf-8"))
    # at 03-04: a in negotiation with 500 (450), b closed
    assert_sub(forecast(eng.report(t_us), "7d"), {
        "open_at_start": {"count": 1, "amount": 500.0, "weighted_amount": 450.0},
        "attainment": 0.0})
    # a late update before the window start, then a late win inside it
    for ln in (updated("a", d(3, 12), amount=1000), created("c", d(5), amount=900),
               closed("c", d(6), "won")):
        eng.ingest(ln.encode("utf-8"))
    # at 03-04: a 1000 x 0.9 = 900; won 900 in 7d -> attainment 1.0
    assert_sub(forecast(eng.report(t_us), "7d"), {
        "open_at_start": {"count": 1, "amount": 1000.0, "weighted_amount": 900.0},
        "attainment": 1.0})


def test_open_at_start_takes_the_applied_events_before_from(report_fn):
    # READING (tests/support/reference.py, 4.9): open_at_start folds the events this report
    # applied (duplicates decided as of T: the first copy read wins) that occurred
    # before `from`; it does not re-decide duplicates among the events before `from`.
    # The two differ only for an event_id reused with different content (a producer
    # bug, SPEC 1).  The first copy read (03-05) is applied, the second (03-01) is a
    # duplicate: a does not exist at 03-04.
    lines = [
        created("a", d(5), eid="x", stage="proposal", amount=10),
        created("a", d(1), eid="x", stage="proposal", amount=99),
    ]
    doc = report_fn(lines, CONFIG, T)
    assert_sub(dq(doc), {"applied": 1, "duplicates": 1})
    assert_sub(win(doc, "7d"), {"leads_created": 1})
    assert_sub(forecast(doc, "7d")["open_at_start"],
               {"count": 0, "amount": 0.0, "weighted_amount": 0.0})


# Small tricky histories (held fields, supersedes, reopens, ties, a window start): the
# live engine, fed one event at a time in *every* arrival order, must report what the
# reference computes (SPEC 3: the result does not depend on arrival order).
ARRIVAL_ORDER_CASES = {
    "held-fields-then-implicit-then-late-explicit": [
        updated("a", d(3), owner="ann", amount=40, source="web"),
        moved("a", d(5), "proposal"),
        created("a", d(4), owner="bob"),
        updated("a", d(6), owner="cy"),
        closed("a", d(7), "won"),
    ],
    "superseding-close-after-a-reassignment": [
        created("a", d(3), owner="ann", amount=10),
        closed("a", d(4), "lost"),
        updated("a", d(5), owner="bob", amount=20),
        closed("a", d(6), "won"),
        updated("a", d(6), amount=30, team="t"),
    ],
    "reopen-and-close-at-a-window-start": [
        created("a", d(1), stage="proposal", amount=100),
        closed("a", d(2), "lost"),
        moved("a", d(3), "negotiation"),
        closed("a", "2026-03-04T00:00:00Z", "won"),
        updated("a", "2026-03-03T23:59:59.999999Z", amount=7),
    ],
    "five-types-at-one-instant": [
        created("a", d(9, 6), eid="z", amount=1),
        updated("a", d(9, 6), eid="y", amount=2, owner="o"),
        moved("a", d(9, 6), "qualified", eid="x"),
        closed("a", d(9, 6), "won", eid="w"),
        updated("a", d(9, 6), eid="v", owner="p"),
    ],
    "held-fields-into-an-implicit-close": [
        updated("a", d(2), amount=5, owner="x"),
        closed("a", d(3), "won"),
        closed("a", d(5), "lost", owner="y"),
        updated("a", d(4), amount=9),
        moved("a", d(6), "new"),
    ],
}


@pytest.mark.parametrize("name", list(ARRIVAL_ORDER_CASES))
def test_live_engine_in_every_arrival_order(name):
    lines = ARRIVAL_ORDER_CASES[name]
    expected = reference_report(lines, CONFIG, T)
    t_us = parse_time(T)
    for order in itertools.permutations(lines):
        eng = PulseEngine(CONFIG, as_of=None)
        for ln in order:
            eng.ingest(ln.encode("utf-8"))
        assert_reports_match(eng.report(t_us), expected, path=f"doc[{name}]")
