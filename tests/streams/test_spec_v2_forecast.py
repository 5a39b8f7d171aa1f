"""Hand-computed scenarios for SPEC v2's forecast against actual (4.9), and the live engine
fed every arrival order of small tricky histories (SPEC 3).

Every test runs over both the naive reference and the engine (`report_fn`), and every expected
number is computed by hand; unless a test says otherwise it uses the pipeline "default" and
as_of T = 2026-03-10T12:00:00Z, described with the windows' bounds in tests/support/spec_support.py.
"""
from __future__ import annotations

import itertools

import pytest

from pulse.streams.engine import PulseEngine
from pulse.streams.report import build_document
from tests.support.reference import make_config, make_pipeline, parse_time, reference_report
from tests.support.spec_support import (
    CONFIG,
    T,
    assert_reports_match,
    assert_sub,
    closed,
    created,
    d,
    dq,
    forecast,
    moved,
    open_,
    stage,
    updated,
    win,
)


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
    assert_sub(forecast(build_document(eng, t_us), "7d")["open_at_start"],
               {"count": 2, "amount": 110.0, "weighted_amount": 11.0})
    for ln in (moved("a", d(2), "negotiation"), updated("a", d(3), amount=500),
               closed("b", d(2), "lost")):
        eng.ingest(ln.encode("utf-8"))
    # at 03-04: a in negotiation with 500 (450), b closed
    assert_sub(forecast(build_document(eng, t_us), "7d"), {
        "open_at_start": {"count": 1, "amount": 500.0, "weighted_amount": 450.0},
        "attainment": 0.0})
    # a late update before the window start, then a late win inside it
    for ln in (updated("a", d(3, 12), amount=1000), created("c", d(5), amount=900),
               closed("c", d(6), "won")):
        eng.ingest(ln.encode("utf-8"))
    # at 03-04: a 1000 x 0.9 = 900; won 900 in 7d -> attainment 1.0
    assert_sub(forecast(build_document(eng, t_us), "7d"), {
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
        assert_reports_match(build_document(eng, t_us), expected, path=f"doc[{name}]")
