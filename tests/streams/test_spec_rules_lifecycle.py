"""Hand-computed scenarios for every rule of SPEC section 3: ordering, creation, stays, closes,
supersedes and reopens.

Every test runs over both the naive reference and the engine (`report_fn`), and every expected
number is computed by hand; unless a test says otherwise it uses the pipeline "default" and
as_of T = 2026-03-10T12:00:00Z, described with the windows' bounds in tests/support/spec_support.py.
"""
from __future__ import annotations

from tests.support.spec_support import (
    CONFIG,
    H,
    T,
    ZERO_STAGE_FLOW,
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
