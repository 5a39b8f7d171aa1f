"""FlowTotals/DealTotals (streams/window_totals.py) answer what the merged accumulators answer.

The property: partition engines fed random events (late and out of order, closes,
reopens, amount and owner changes, in bursts on a quarter-day grid over 200 days), with refreshes at
random points, housekeeping's `drop_days_before` on random partitions and days, partitions
assigned, revoked and rebuilt, and the report's T moving forward, sometimes back and
sometimes jumping: at every refresh, each read call the report makes (the configured
windows, the LVR's 30 days and the 30 before, the open stock at the windows' starts)
equals the same call on a fresh StageFlow/DealFlow with every partition's merged in.
"""
from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pulse.config import load_config
from pulse.schemas.timestamps import format_timestamp, parse_timestamp
from pulse.streams.deals import DealFlow
from pulse.streams.engine import PulseEngine
from pulse.streams.flow import StageFlow, stage_report
from pulse.streams.window_totals import DealTotals, FlowTotals
from pulse.streams.windows import DAY_US, previous_window_days, window_days
from tests.support.scenarios import SETTINGS, drawn_fields

CFG = load_config(None)                     # windows 7d, 30d, 90d
PIPELINE = CFG.pipelines["default"]
STAGES = [s.name for s in PIPELINE.stages]
N_STAGES = len(STAGES)
T0 = parse_timestamp("2026-01-01T00:00:00Z")

# Quarter-days after the clock's day: mostly the next three days (the cached bucket's fast
# path, a day change), sometimes up to 100 days earlier (late events, into dropped days too).
near = st.integers(0, 11)
event = st.tuples(
    st.integers(0, 7),                                              # lead
    st.sampled_from(("lead.created", "lead.updated", "lead.stage_changed", "deal.closed")),
    st.one_of(near, near, near, st.integers(-400, 0)),
    st.integers(0, N_STAGES - 1), st.booleans(),                    # stage, won
    st.sampled_from([None, "ann", "bob", "cy"]),                   # owner
    st.sampled_from([None, 0.0, 100.0, 2500.5, 1e300]))            # amount (a huge one: exact sums)

# A step: a batch of events into a partition, after the clock moved (days); then one of: a
# report at T = the clock's day + offset (back up to 100 days, or on), housekeeping dropping
# the days before the clock's + offset, or a partition revoked or assigned (a new engine).
step = st.tuples(
    st.integers(0, 3), st.sampled_from((0, 0, 0, 1, 1, 2, 5, 9)), st.lists(event, max_size=20),
    st.one_of(st.tuples(st.just("report"), st.integers(-100, 10)),
              st.tuples(st.just("report"), st.integers(-2, 2)),
              st.tuples(st.just("drop"), st.integers(0, 3), st.integers(-100, 0)),
              st.tuples(st.just("revoke"), st.integers(0, 3)),
              st.tuples(st.just("assign"), st.integers(0, 3))))


def raw(n: int, day: int, e: tuple) -> bytes:
    lead, kind, quarter, stage, won, owner, amount = e
    extra = drawn_fields(kind, stage, won, owner, amount, STAGES)
    return orjson.dumps({"type": kind, "event_id": f"e{n % 50}", "lead_id": f"L{lead}",
                         "occurred_at": format_timestamp(T0 + day * DAY_US + quarter * DAY_US // 4), **extra})


def report_calls(flow, deals, as_of: int) -> list:
    """Every read call streams/report.py pipeline_figures makes, in its order."""
    spans = [window_days(as_of, w.days) for w in CFG.windows]
    out: list = [flow.open_at_day_starts([d.first for d in spans])]
    for days in spans:
        out += [flow.window(days), deals.window(days), deals.segments(days)]
    return out + [deals.window(window_days(as_of, 30)), deals.window(previous_window_days(as_of, 30))]


def merged_calls(engines: list[PulseEngine], as_of: int) -> list:
    flow, deals = StageFlow(N_STAGES), DealFlow()
    for e in engines:
        flow.merge(e.pipelines["default"].flow)
        deals.merge(e.pipelines["default"].deals)
    return report_calls(flow, deals, as_of)


def stage_windows(calls: list) -> list:
    return [stages for stages, _ in calls[1::3][:len(CFG.windows)]]


def stage_reports(calls: list) -> list:
    """The report's stage objects of the windows; random drops (not housekeeping's choice of
    leads) can leave a histogram short of the exits: then the error, on both sides alike."""
    def report(sw):
        try:
            return stage_report(sw)
        except ValueError as e:
            return str(e)
    return [[report(sw) for sw in stages] for stages in stage_windows(calls)]


def without_zero_buckets(calls: list) -> list:
    """A merged window's dwell histogram can hold a bucket whose days' counts cancel (+1 on
    one day, -1 on another: a revert into days housekeeping dropped, as `drop` steps do at
    random); the totals hold none. nearest_rank reads the same either way (stage_report)."""
    for stages in stage_windows(calls):
        for sw in stages:
            sw.dwell_hist = {b: c for b, c in sw.dwell_hist.items() if c}
    return calls


@settings(max_examples=120, **SETTINGS)
@given(steps=st.lists(step, min_size=3, max_size=25))
def test_the_totals_answer_every_report_call_as_the_merged_accumulators_do(steps):
    partitions: dict[int, PulseEngine] = {0: PulseEngine(CFG), 1: PulseEngine(CFG)}
    flow_totals, deal_totals = FlowTotals(N_STAGES), DealTotals()
    n = clock = 0
    for partition, advance, batch, then in [*steps, (0, 0, [], ("report", 0))]:
        clock += advance
        if partitions:
            engine = partitions[sorted(partitions)[partition % len(partitions)]]
            for e in batch:
                engine.ingest(raw(n, clock, e))
                n += 1
        kind = then[0]
        if kind == "drop" and then[1] in partitions:
            p = partitions[then[1]].pipelines["default"]
            p.flow.drop_days_before(T0 // DAY_US + clock + then[2])
            p.deals.drop_days_before(T0 // DAY_US + clock + then[2])
        elif kind == "revoke":
            partitions.pop(then[1], None)
        elif kind == "assign":
            partitions[then[1]] = PulseEngine(CFG)
        elif kind == "report":
            as_of = T0 + (clock + then[1]) * DAY_US + DAY_US // 3
            engines = list(partitions.values())
            flow_totals.refresh([e.pipelines["default"].flow for e in engines])
            deal_totals.refresh([e.pipelines["default"].deals for e in engines])
            totals, merged = report_calls(flow_totals, deal_totals, as_of), merged_calls(engines, as_of)
            assert stage_reports(totals) == stage_reports(merged)
            assert totals == without_zero_buckets(merged)


def test_a_day_changed_through_the_cached_bucket_after_a_take_is_taken_next_time():
    """The per-event fast path writes into the last bucket looked up without marking it:
    take_touched() still reports its day (also when a later event went to another day, or
    housekeeping dropped days since); a drop reports the days gone and the carry day."""
    flow, deals = StageFlow(2), DealFlow()
    for f in (flow, deals):
        assert f.take_touched() == set()
    flow.stay_started(0, 5 * DAY_US + 1, 10.0, 1)
    deals.lead_created(5 * DAY_US + 1, ("ann", None, None), 1)
    assert flow.take_touched() == {5} and deals.take_touched() == {5}
    flow.stay_started(1, 5 * DAY_US + 2, None, 1)          # day 5 again: the bucket cached before the take
    deals.lead_qualified(5 * DAY_US + 2, 1)
    flow.stay_started(1, 6 * DAY_US, None, 1)              # then another day
    deals.lead_created(6 * DAY_US, ("bob", None, None), 1)
    assert flow.take_touched() == {5, 6} and deals.take_touched() == {5, 6}
    flow.stay_started(1, 6 * DAY_US + 1, None, 1)
    deals.lead_created(6 * DAY_US + 1, ("bob", None, None), 1)
    flow.stay_started(1, 3 * DAY_US, None, 1)
    deals.lead_created(3 * DAY_US, ("bob", None, None), 1)
    flow.drop_days_before(4)
    deals.drop_days_before(4)
    assert flow.take_touched() == {3, 6}                    # 6 written; 3 dropped, and 4 - 1 the carry day
    assert deals.take_touched() == {3, 6}
    assert flow.take_touched() == set() and deals.take_touched() == set()


def test_open_stock_and_windows_of_no_source_are_empty_and_of_one_source_equal_it():
    flow = StageFlow(2)
    flow.stay_started(0, 2 * DAY_US, 7.5, 1)
    flow.moved(0, 2 * DAY_US, 3 * DAY_US, 0, 1, 7.5, 1)
    totals = FlowTotals(2)
    totals.refresh([])
    assert totals.open_at_day_starts([3]) == {3: ([0, 0], [0, 0])}
    days = window_days(4 * DAY_US, 7)
    assert totals.window(days) == StageFlow(2).window(days)
    totals.refresh([flow])
    assert totals.open_at_day_starts([4, 3, 3]) == flow.open_at_day_starts([4, 3, 3])
    assert totals.window(days) == flow.window(days)
    flow.moved(0, 2 * DAY_US, 3 * DAY_US, 0, 1, 7.5, -1)     # a revert: the totals hold zeros
    totals.refresh([flow])
    assert totals.window(days) == flow.window(days)
    assert totals.open_at_day_starts([4]) == flow.open_at_day_starts([4])
