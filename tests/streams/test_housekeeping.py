"""Housekeeping: what the worker forgets (streams/housekeeping.py) changes no report at any
T >= the time it ran; the worker (agents/housekeeping.py) keeps it forgotten across a
recovery and a replay; and over a simulated year its state stays flat."""
from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulse.agents.housekeeping import FORGOTTEN, SWEEP_DAYS
from pulse.agents.live import LivePulse
from pulse.config import load_config
from pulse.schemas.timestamps import format_timestamp, parse_timestamp
from pulse.dev.steady_traffic import by_day, steady_traffic
from pulse.streams.engine import PulseEngine
from pulse.streams.housekeeping import MARGIN_DAYS, forget, forgettable, held_sizes, keep_from_day, plan
from pulse.streams.report import LVR_DAYS
from pulse.streams.windows import DAY_US, day_of, previous_window_days, window_days
from pulse.streams.report import build_document
from tests.support.kafka_feed import KafkaFeed
from tests.support.scenarios import drawn_fields

CFG = load_config(None)                     # windows 7d, 30d, 90d
STAGES = [s.name for s in CFG.pipelines["default"].stages]
TYPES = ("lead.created", "lead.updated", "lead.stage_changed", "deal.closed")
T0 = parse_timestamp("2026-01-01T00:00:00Z")


def line(kind: str, eid: str, lead: str, at_us: int, **extra) -> bytes:
    return orjson.dumps({"type": kind, "event_id": eid, "lead_id": lead, "occurred_at": format_timestamp(at_us),
                         **extra})


# -- the horizon ------------------------------------------------------------------------------

def test_the_horizon_is_the_earliest_day_any_later_report_reads_less_the_margin():
    now = parse_timestamp("2026-06-15T13:00:00Z")
    first = keep_from_day(now, [7, 30, 90])
    assert first == day_of(now) - 90 + 1 - MARGIN_DAYS
    assert keep_from_day(now, [7]) == day_of(now) - 2 * LVR_DAYS + 1 - MARGIN_DAYS   # LVR's previous 30 days
    assert keep_from_day(now, [120]) == day_of(now) - 120 + 1 - MARGIN_DAYS
    for t in (now, now + 5 * DAY_US, now + 400 * DAY_US):   # every day read at T >= now is kept
        reads = [window_days(t, w).first for w in (7, 30, 90)] + [previous_window_days(t, LVR_DAYS).first]
        assert min(reads) - MARGIN_DAYS >= first


def test_only_closed_or_never_created_leads_entirely_before_the_horizon_are_forgettable():
    e = PulseEngine(CFG)
    day = DAY_US
    for raw in (line("lead.created", "1", "open-old", T0),
                line("lead.created", "2", "closed-old", T0), line("deal.closed", "3", "closed-old", T0 + day,
                                                                  outcome="won"),
                line("lead.created", "4", "closed-late", T0), line("deal.closed", "5", "closed-late", T0 + day,
                                                                   outcome="lost"),
                line("lead.updated", "6", "closed-late", T0 + 50 * day, owner="x"),
                line("lead.updated", "7", "only-updates", T0 + day, owner="y"),
                line("lead.created", "8", "alerted", T0), line("deal.closed", "9", "alerted", T0 + day,
                                                               outcome="won")):
        e.ingest(raw)
    leads = e.pipelines["default"].leads
    leads["alerted"].alert_level = 2        # closed, its resolution not published yet
    horizon = T0 + 10 * day
    assert sorted(i for i, lead in leads.items() if forgettable(lead, horizon)) == ["closed-old", "only-updates"]


# -- the property: forgetting changes no report at T >= now ------------------------------------

event = st.tuples(st.integers(0, 5), st.sampled_from(TYPES), st.integers(0, 220 * 4),
                  st.integers(0, len(STAGES) - 1), st.booleans(), st.sampled_from([None, "ann", "bob"]),
                  st.sampled_from([None, 0.0, 100.0, 2500.5]))


def lines_of(events) -> list[bytes]:
    out = []
    for n, (lead, kind, quarter, stage, won, owner, amount) in enumerate(events):
        extra = drawn_fields(kind, stage, won, owner, amount, STAGES)
        # a quarter-day grid over 220 days: ties, late events and events on both sides of the horizon
        out.append(line(kind, f"e{n % 40}", f"L{lead}", T0 + quarter * DAY_US // 4, **extra))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(event, min_size=1, max_size=60), split=st.integers(0, 60), extra_days=st.integers(0, 120),
       later=st.lists(st.integers(0, 200), max_size=3))
def test_a_report_at_any_later_time_is_the_same_with_and_without_housekeeping(events, split, extra_days, later):
    """Housekeeping runs after `split` inputs at now >= the latest of them; the inputs after it
    (any order, late ones into dropped days included) are those of leads it did not forget
    (what the worker does with the others is the FORGOTTEN rule, tested below)."""
    lines = lines_of(events)
    kept, full = PulseEngine(CFG), PulseEngine(CFG)
    for raw in lines[:split]:
        kept.ingest(raw)
        full.ingest(raw)
    now = (kept.max_ts if kept.max_ts is not None else T0) + extra_days * DAY_US
    decided = plan(kept, now)
    forget(kept, decided)
    gone = set(decided.leads.get("default", ()))
    for raw in lines[split:]:
        if orjson.loads(raw)["lead_id"] not in gone:
            kept.ingest(raw)
            full.ingest(raw)
    at = max(now, full.max_ts)
    for days in [0, *later]:
        assert build_document(kept, at + days * DAY_US) == build_document(full, at + days * DAY_US)


# -- the worker ----------------------------------------------------------------------------------

class Worker:
    """A LivePulse in event time, one partition, its changelog in a list; topics named by type."""

    def __init__(self):
        self.sent, self.changelog = [], []
        self.kafka = KafkaFeed(1, {t: t for t in TYPES})      # offsets per topic (tests/support/kafka_feed.py)
        self.live = self.new()

    def new(self) -> LivePulse:
        live = LivePulse(CFG, type_of_topic={t: t for t in TYPES}, clock="event",
                         send=lambda *a: self.sent.append(a), now_us=lambda: 0)
        live.track_changes = True           # as with the Redis serving layer
        live.restore([0], [(k, v) for k, v in self.changelog])
        return live

    def feed(self, kind: str, raw: bytes) -> str:
        return self.live.on_message(kind, 0, self.kafka.next_offset(kind, 0), None, raw)

    def flush(self) -> None:
        for records in self.live.take_dirty().values():
            self.changelog.extend(records)

    def held(self) -> dict[str, int]:
        return held_sizes(self.live.partitions[0].engine)


def test_over_a_simulated_year_the_worker_holds_a_flat_state_and_reports_what_pulse_report_does():
    traffic = steady_traffic(days=365, leads_per_day=30, seed=7)
    worker, offline = Worker(), PulseEngine(CFG)
    sizes = {}
    for day, batch in by_day(traffic):
        for ln in batch:
            worker.feed(ln.type, ln.line)
            offline.ingest(ln.line)
        worker.live.tick()                  # the worker's timer: alerts, then housekeeping
        worker.flush()
        sizes[day] = worker.held()
    total_leads = len(offline.pipelines["default"].leads)
    # The oldest window (90 days, + the margin) and the longest lead life (~60 days) have passed
    # by day 170: from then on, what the worker holds no longer grows with the traffic seen.
    steady = [sizes[d] for d in sorted(sizes) if 170 <= d < 365]
    leads = [s["leads"] for s in steady]
    assert max(leads) <= 1.15 * min(leads)
    assert abs(leads[-1] - leads[0]) <= 0.1 * leads[0]
    assert max(s["flow_days"] for s in steady) <= 90 + MARGIN_DAYS + SWEEP_DAYS + 2
    assert max(s["deal_days"] for s in steady) <= 90 + MARGIN_DAYS + SWEEP_DAYS + 2
    assert total_leads > 2.5 * max(leads)           # without housekeeping it would hold them all
    assert sizes[max(sizes)]["open_leads"] == len(offline.pipelines["default"].open_leads)
    # ... and every figure is the same as the offline report's, which forgets nothing
    assert worker.live.report() == build_document(offline, offline.max_ts)


def test_forgotten_leads_stay_forgotten_across_a_recovery_and_a_replay_of_their_input():
    w = Worker()
    old = [("lead.created", line("lead.created", "c1", "A", T0, owner="ann", amount=10.0)),
           ("lead.stage_changed", line("lead.stage_changed", "m1", "A", T0 + DAY_US, to_stage="qualified")),
           ("deal.closed", line("deal.closed", "d1", "A", T0 + 2 * DAY_US, outcome="won")),
           ("deal.closed", line("deal.closed", "d2", "B", T0 + DAY_US, outcome="lost")),    # implicit create
           ("lead.stage_changed", line("lead.stage_changed", "m2", "C", T0, to_stage="proposal"))]   # open
    for kind, raw in old:
        w.feed(kind, raw)
    w.feed("lead.created", line("lead.created", "c9", "D", T0 + 200 * DAY_US))
    w.flush()
    before = w.live.report()
    state = w.live.partitions[0]
    state.changed.clear()                   # as after a Redis sync
    w.live.tick()
    assert sorted(state.engine.pipelines["default"].leads) == ["C", "D"]
    assert state.forgotten == [("default", "A"), ("default", "B")]
    assert state.horizon_us == T0 + 2 * DAY_US + 1          # after the latest event of a forgotten lead
    assert state.changed == {("default", "A"), ("default", "B")}        # Redis deletes them
    assert w.live.report() == before
    w.flush()
    assert [v for k, v in w.changelog[-3:-1]] == [None, None]       # tombstones, then the partition record

    w.live = w.new()                                                # recovery from the changelog
    assert sorted(w.live.partitions[0].engine.pipelines["default"].leads) == ["C", "D"]
    assert w.live.report() == before                                # implicit_creates still counts B
    assert before["data_quality"]["implicit_creates"] == 2

    # A replay of the retained input (e.g. a producer re-sending): the forgotten leads do not come back.
    for kind, raw in old:
        result = w.feed(kind, raw)
        assert result == (FORGOTTEN if b'"C"' not in raw else "duplicate")
    after = w.live.report()
    assert sorted(w.live.partitions[0].engine.pipelines["default"].leads) == ["C", "D"]
    assert after["data_quality"]["duplicates"] == before["data_quality"]["duplicates"] + len(old)
    assert after["data_quality"]["events_read"] == before["data_quality"]["events_read"] + len(old)
    assert {k: v for k, v in after.items() if k != "data_quality"} == {
        k: v for k, v in before.items() if k != "data_quality"}
    # An old event of a lead never seen, after every forgotten lead's events: applied (SPEC 3)
    assert w.feed("lead.created", line("lead.created", "c5", "E", T0 + 3 * DAY_US)) == "applied"
    # A new event of a forgotten lead, after the horizon: a new lead (docs/operations.md)
    assert w.feed("lead.stage_changed", line("lead.stage_changed", "m3", "A", T0 + 150 * DAY_US,
                                             to_stage="new")) == "applied"
    # A late event dated before the horizon, of a lead the worker holds: applied as always
    assert w.feed("lead.updated", line("lead.updated", "u1", "C", T0 + DAY_US, owner="zed")) == "applied"


def test_a_wall_clock_partition_catching_up_does_not_sweep_until_it_has_applied_its_backlog():
    now = T0 + 300 * DAY_US
    ends = {"lead.created": 10}
    live = LivePulse(CFG, type_of_topic={t: t for t in TYPES}, clock="wall", send=lambda *a: None,
                     now_us=lambda: now, input_ends=lambda p: ends)
    live.restore([0], [])
    old = [line("lead.created", f"c{i}", f"L{i}", T0 + i * DAY_US) for i in range(10)]
    live.on_message("lead.created", 0, 0, None, old[0])
    live.on_message("deal.closed", 0, 0, None, line("deal.closed", "d0", "L0", T0 + DAY_US, outcome="won"))
    live.tick()                                 # 9 messages behind, just assigned: catching up
    state = live.partitions[0]
    assert state.swept_from is None and "L0" in state.engine.pipelines["default"].leads
    for i in range(1, 10):                      # the backlog's old leads are all applied
        assert live.on_message("lead.created", 0, i, None, old[i]) == "applied"
    live.tick()
    live.tick()                                 # caught up: the sweep forgets the closed old lead
    assert sorted(state.engine.pipelines["default"].leads) == [f"L{i}" for i in range(1, 10)]


def test_one_timer_tick_sweeps_one_partition_the_one_swept_longest_ago():
    """A sweep walks a partition's leads: one per tick keeps the loop's pause to one walk."""
    live = LivePulse(CFG, type_of_topic={t: t for t in TYPES}, clock="event", send=lambda *a: None,
                     now_us=lambda: 0)
    live.restore([0, 1], [])
    for p in (0, 1):        # in each partition: a lead closed long ago, and a recent one (the clock)
        live.on_message("lead.created", p, 0, None, line("lead.created", f"c{p}", f"Old{p}", T0))
        live.on_message("deal.closed", p, 0, None, line("deal.closed", f"d{p}", f"Old{p}", T0 + DAY_US, outcome="won"))
        live.on_message("lead.created", p, 1, None, line("lead.created", f"n{p}", f"New{p}", T0 + 200 * DAY_US))
    held = lambda p: sorted(live.partitions[p].engine.pipelines["default"].leads)    # noqa: E731
    assert live.tick() == 0
    assert [held(0), held(1)] == [["New0"], ["New1", "Old1"]]      # partition 0 swept, 1 waits ...
    live.tick()
    assert [held(0), held(1)] == [["New0"], ["New1"]]              # ... for the next tick
    for p in (0, 1):        # a week later in both: 1 was swept last, so 0 goes first again
        live.on_message("lead.created", p, 2, None, line("lead.created", f"w{p}", f"Week{p}", T0 + 208 * DAY_US))
    live.tick()
    assert live.partitions[0].swept_from > live.partitions[1].swept_from
