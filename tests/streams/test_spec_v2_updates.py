"""Hand-computed scenarios for SPEC v2's `lead.updated`: rule 8 (updates before the lead
exists, update-only leads), section 3's tie order and rule 7's close amount.

Every test runs over both the naive reference and the engine (`report_fn`), and every expected
number is computed by hand; unless a test says otherwise it uses the pipeline "default" and
as_of T = 2026-03-10T12:00:00Z, described with the windows' bounds in tests/support/spec_support.py.
"""
from __future__ import annotations

from tests.support.spec_support import (
    CONFIG,
    T,
    assert_sub,
    closed,
    created,
    created_only,
    d,
    dq,
    forecast,
    moved,
    open_,
    seg,
    stage,
    updated,
    win,
)


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
