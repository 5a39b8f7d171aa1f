"""Hand-computed scenarios for SPEC v2's segments by owner, team and source (4.8).

Every test runs over both the naive reference and the engine (`report_fn`), and every expected
number is computed by hand; unless a test says otherwise it uses the pipeline "default" and
as_of T = 2026-03-10T12:00:00Z, described with the windows' bounds in tests/support/spec_support.py.
"""
from __future__ import annotations

import json

from tests.support.spec_support import (
    CONFIG,
    T,
    assert_keys,
    assert_sub,
    closed,
    created,
    created_only,
    d,
    moved,
    open_,
    seg,
    updated,
    win,
)


WINDOW_SEGMENT_KEYS = ["value", "leads_created", "won", "lost", "won_amount", "win_rate",
                       "close_rate", "avg_deal_size", "sales_cycle_days"]
OPEN_SEGMENT_KEYS = ["value", "count", "amount", "weighted_amount", "stale"]


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
