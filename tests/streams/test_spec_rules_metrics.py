"""Hand-computed scenarios for the metrics of SPEC 4.2 (deals, rates, velocity), 4.3 (stage
flow, dwell percentiles) and 4.4 / 4.5 / 4.7 (open pipeline, stale leads).

Every test runs over both the naive reference and the engine (`report_fn`), and every expected
number is computed by hand; unless a test says otherwise it uses the pipeline "default" and
as_of T = 2026-03-10T12:00:00Z, described with the windows' bounds in tests/support/spec_support.py.
"""
from __future__ import annotations

from tests.support.reference import make_config, make_pipeline
from tests.support.spec_support import (
    CONFIG,
    T,
    assert_keys,
    assert_sub,
    closed,
    created,
    d,
    moved,
    stage,
    win,
)


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
