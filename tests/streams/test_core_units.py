"""Unit and property tests of the core's building blocks (streams/)."""
from __future__ import annotations

import math
import zlib

import orjson
import pytest
from hypothesis import given, strategies as st

from pulse.inputs.parallel import shard_of
from pulse.schemas.types import CLOSED, CREATED, STAGE_CHANGED, Event
from pulse.streams import history
from pulse.streams.dwell import HOUR_US, bucket_of, bucket_value_us, nearest_rank
from pulse.streams.exact import from_fixed, to_fixed, weighted, weighted_sum
from pulse.config import load_config
from pulse.streams.report import build_document
from pulse.streams.staleness import DueHeap, next_level_due_us, stale_level, stale_limits
from pulse.streams.windows import DAY_US, previous_window_days, window_days

finite = st.floats(min_value=0, max_value=1e15, allow_nan=False, allow_infinity=False)


# -- exact sums -----------------------------------------------------------------------

@given(st.lists(finite, max_size=30), st.randoms())
def test_exact_sum_is_order_independent_and_correctly_rounded(values, rnd):
    total = sum(to_fixed(v) for v in values)
    shuffled = values[:]
    rnd.shuffle(shuffled)
    assert total == sum(to_fixed(v) for v in shuffled)
    assert from_fixed(total) == math.fsum(values)


@given(st.lists(finite, min_size=1, max_size=20), finite)
def test_exact_sum_removal_restores_previous_value(values, extra):
    total = sum(to_fixed(v) for v in values)
    assert total + to_fixed(extra) - to_fixed(extra) == total


@given(st.lists(st.tuples(st.floats(0, 1), st.lists(finite | st.floats(0, 1e-300), max_size=4)), max_size=6))
def test_weighted_sum_is_the_fixed_point_product_rounded_once(terms):
    pairs = [(p, sum(to_fixed(a) for a in amounts)) for p, amounts in terms]
    assert weighted_sum(pairs) == sum(to_fixed(p) * t for p, t in pairs) / (1 << 2148)


def test_weighted_amount_rounds_once():
    total = to_fixed(0.1) + to_fixed(0.2)
    # 0.3 × (0.1 + 0.2) with one rounding, not fl(fl(0.1 + 0.2) × 0.3)
    from fractions import Fraction
    exact = Fraction(0.3) * (Fraction(0.1) + Fraction(0.2))
    assert weighted(0.3, total) == float(exact)
    assert weighted_sum([(0.5, to_fixed(10.0)), (0.25, to_fixed(4.0))]) == 6.0


# -- dwell percentiles ------------------------------------------------------------------

@given(st.integers(min_value=0, max_value=10 * 365 * DAY_US))
def test_dwell_bucket_value_within_tolerance(dwell):
    value = bucket_value_us(bucket_of(dwell))
    assert abs(value - dwell) <= max(0.05 * dwell, HOUR_US)
    assert abs(value - dwell) <= max(0.021 * dwell, HOUR_US / 2)   # what the design promises


@given(st.lists(st.integers(min_value=0, max_value=400 * DAY_US), min_size=1, max_size=60),
       st.sampled_from([50, 90]))
def test_nearest_rank_percentile_within_spec_tolerance(dwells, p):
    counts: dict[int, int] = {}
    for d in dwells:
        counts[bucket_of(d)] = counts.get(bucket_of(d), 0) + 1
    exact = sorted(dwells)[math.ceil(p / 100 * len(dwells)) - 1]
    got = nearest_rank(counts, len(dwells), p)
    assert abs(got - exact) <= max(0.05 * exact, HOUR_US)


# -- windows and staleness --------------------------------------------------------------

def test_window_days_cover_whole_utc_days_ending_with_t():
    t = 20_000 * DAY_US + 5 * HOUR_US            # day 20000, 05:00
    w = window_days(t, 7)
    assert (w.first, w.last) == (19_994, 20_000)
    assert w.start_us == 19_994 * DAY_US
    prev = previous_window_days(t, 7)
    assert (prev.first, prev.last) == (19_987, 19_993)


@pytest.mark.parametrize("age,limit,level", [
    (10, None, 0), (10, 10, 0), (11, 10, 1), (20, 10, 1), (21, 10, 2), (30, 10, 2), (31, 10, 3), (10**9, 10, 3),
    (0, 0, 0), (1, 0, 3),
])
def test_stale_level(age, limit, level):
    assert stale_level(age, limit) == level


def test_next_level_due_is_first_instant_past_the_boundary():
    start, limit = 1_000, 100
    for level in (0, 1, 2):
        due = next_level_due_us(start, limit, level)
        assert stale_level(due - start, limit) == level + 1
        assert stale_level(due - 1 - start, limit) == level
    assert next_level_due_us(start, limit, 3) is None
    assert next_level_due_us(start, None, 0) is None


def test_stale_limits_are_each_stages_stale_after_in_microseconds(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("pipelines:\n  a: {stages: [{name: new, stale_after: 36h}, {name: won}]}\n"
                    "  b: {stages: [{name: x, stale_after: 45s}]}\n")
    config = load_config(path)
    assert stale_limits(config.pipelines) == {"a": [36 * 3600 * 1_000_000, None], "b": [45_000_000]}
    assert [st.stale_after_us for st in config.pipelines["a"].stages] == [129_600_000_000, None]


@given(st.lists(st.integers(0, 50), max_size=40), st.integers(0, 50))
def test_due_heap_gives_what_is_due_earliest_first_and_keeps_the_rest(dues, now):
    heap = DueHeap()
    for i, due in enumerate(dues):
        heap.push((due, "p", f"L{i}", 0, 0))
    taken = [entry[0] for entry in heap.pop_due(now)]
    assert taken == sorted(d for d in dues if d <= now)
    assert len(heap) == len(dues) - len(taken) and all(entry[0] > now for entry in heap.entries)


def test_due_heap_gives_entries_pushed_while_taking_when_they_are_due_too():
    heap = DueHeap()
    heap.push((5, "p", "L", 0, 0))
    seen = []
    for entry in heap.pop_due(10):
        seen.append(entry[0])
        if entry[0] < 9:
            heap.push((entry[0] + 2, "p", "L", 0, 0))     # the next level, as the detector schedules it
    assert seen == [5, 7, 9] and len(heap) == 0


# -- lead history encoding --------------------------------------------------------------

texts = st.text(max_size=12)
events = st.builds(
    Event, ts=st.integers(0, 2**62), kind=st.sampled_from([CREATED, STAGE_CHANGED, CLOSED]),
    event_id=st.text(min_size=1, max_size=20), pipeline=st.just("p"), lead_id=st.just("L"),
    stage=st.integers(-1, 30), won=st.booleans(), owner=st.none() | texts, team=st.none() | texts,
    amount=st.none() | finite, source=st.none() | texts)


@given(st.lists(events, max_size=8))
def test_history_round_trip_and_event_id_lookup(evs):
    blob = b"".join(history.encode(e) for e in evs)
    assert history.decode(blob, len(evs), "p", "L") == evs
    for e in evs:
        assert history.contains_event_id(blob, len(evs), e.event_id)
    assert history.contains_event_id(blob, len(evs), "never-used-\u2603") == any(
        e.event_id == "never-used-\u2603" for e in evs)


def test_history_lookup_is_not_fooled_by_other_fields():
    # owner and team hold the encoding of event_id "a"
    e = Event(ts=1, kind=CREATED, stage=0, won=False, amount=None, owner="\xa1a", team="a", source=None,
              event_id="a", pipeline="p", lead_id="L")
    blob = history.encode(e)
    assert not history.contains_event_id(blob, 1, "zz")
    assert history.contains_event_id(blob, 1, "a")
    assert not history.contains_event_id(history.encode(e._replace(event_id="b")), 1, "a")


# -- sharding ---------------------------------------------------------------------------

lead_ids = st.text(min_size=1, max_size=10).filter(lambda s: all(not 0xD800 <= ord(c) <= 0xDFFF for c in s))


@given(lead_ids, st.sampled_from([2, 3, 4]), st.integers(0, 3))
def test_shard_depends_only_on_the_decoded_lead_id(lead_id, shards, style):
    """However the line is written (escapes, spacing, other keys), one lead_id gives one shard."""
    body = {"type": "lead.created", "event_id": "e", "lead_id": lead_id, "occurred_at": "2026-01-01T00:00:00Z"}
    forms = [
        orjson.dumps(body),
        orjson.dumps({"attributes": {"x": 1}, **body}),
        ('{"lead_id" : ' + orjson.dumps(lead_id).decode() + ', "type": "x"}').encode(),
        ('{"lead_id": "' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else c for c in lead_id) + '"}').encode(),
        ('{"lead_id": "zz", "lead_id": ' + orjson.dumps(lead_id).decode() + "}").encode(),   # last key wins
    ]
    assert len({shard_of(f, line_no, shards) for line_no, f in enumerate(forms)}) == 1


@given(lead_ids, st.sampled_from([2, 3, 4]))
def test_routing_by_the_decoded_lead_id_agrees_with_shard_of(lead_id, shards):
    """`pulse report --jobs` routes a line that decode_fast decodes by its decoded lead_id,
    any other by shard_of: a lead's valid events must get one shard either way."""

    from pulse.schemas.fast_path import decode_fast

    body = {"type": "lead.created", "event_id": "e", "lead_id": lead_id, "occurred_at": "2026-01-01T00:00:00Z"}
    escaped = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else c for c in lead_id)
    compact = orjson.dumps(body)     # its first '"lead_id":' is the key (type and event_id come first)
    forms = [
        compact,
        orjson.dumps({"attributes": {"lead_id": "zz"}, **body}),
        orjson.dumps({**body, "owner": '"lead_id":"zz"'}),
        compact.replace(b'"lead_id":', b'"lead_id" :  ', 1),
        compact.replace(b'"lead_id":', b'"lead_id":"zz","lead_id":', 1),     # the last key wins
        ('{"type":"lead.stage_changed","event_id":"e","lead_id":"' + escaped
         + '","occurred_at":"2026-01-01T00:00:00Z","to_stage":"qualified"}').encode(),
    ]
    decoded = [decode_fast(f) for f in forms]
    assert decoded[0] is not None
    expected = zlib.crc32(lead_id.encode()) % shards
    for f, d in zip(forms, decoded):
        assert shard_of(f, 0, shards) == expected
        if d is not None:
            assert d.lead_id == lead_id
            assert zlib.crc32(d.lead_id.encode()) % shards == expected


def test_shard_of_lines_without_lead_id_is_by_line_number():
    assert shard_of(b"not json", 7, 2) == 1
    assert [shard_of(b'{"lead_id": 5}', n, 3) for n in range(6)] == [0, 1, 2, 0, 1, 2]
    # Invalid anyway (no top-level lead_id), so any one shard will do: the fast path reads the
    # only "lead_id" key there is, so the line goes by that value whatever its line number.
    nested = b'{"attributes": {"lead_id": "x"}}'
    assert {shard_of(nested, n, 7) for n in range(8, 15)} == {zlib.crc32(b"x") % 7}


def test_merge_leaves_the_merged_engines_unchanged_and_unshared():
    from pulse.config import load_config
    from pulse.streams.engine import PulseEngine

    cfg = load_config(None)
    lines = [
        b'{"type":"lead.created","event_id":"a","lead_id":"L1","occurred_at":"2026-03-01T00:00:00Z"}',
        b'{"type":"lead.stage_changed","event_id":"b","lead_id":"L1","occurred_at":"2026-03-02T00:00:00Z","to_stage":"qualified"}',
        b'{"type":"lead.created","event_id":"c","lead_id":"L2","occurred_at":"2026-03-02T00:00:00Z"}',
    ]
    a, b = PulseEngine(cfg), PulseEngine(cfg)
    a.ingest(lines[0]); a.ingest(lines[1]); b.ingest(lines[2])
    before = (build_document(a, 1_772_500_000_000_000), build_document(b, 1_772_500_000_000_000))
    total = PulseEngine(cfg)
    total.merge(a); total.merge(b); total.merge(PulseEngine(cfg))
    # Mutating the sum must not leak into its parts, and the parts are unchanged.
    total.ingest(b'{"type":"lead.stage_changed","event_id":"d","lead_id":"L9","occurred_at":"2026-03-02T00:00:00Z","to_stage":"new"}')
    assert (build_document(a, 1_772_500_000_000_000), build_document(b, 1_772_500_000_000_000)) == before


def test_partial_state_round_trip_gives_the_same_report():
    from pulse.config import load_config
    from pulse.streams.engine import PulseEngine
    from pulse.streams.partial import dump_partial, load_partial
    from pulse.dev.synth import generate

    cfg = load_config(None)
    lines = list(generate(leads=60, seed=5, duplicates=0.05, late=0.1, implicit=0.05, invalid=0.05))
    shards = [PulseEngine(cfg), PulseEngine(cfg)]
    whole = PulseEngine(cfg)
    for i, line in enumerate(lines):
        whole.ingest(line)
        shards[shard_of(line, i, 2)].ingest(line)
    merged = PulseEngine(cfg)
    for shard in shards:
        merged.merge(load_partial(cfg, dump_partial(shard)))
    t = whole.default_as_of(0)
    assert build_document(merged, t) == build_document(whole, t)
    assert any(w["segments"]["owner"] for w in build_document(merged, t)["pipelines"]["default"]["windows"].values())


def test_a_partial_of_another_format_is_refused_not_misread():
    """A rolling upgrade: a peer's share without the v2 fields must not be merged as if it had none."""
    import msgspec
    import pytest

    from pulse.config import load_config
    from pulse.streams.engine import PulseEngine
    from pulse.streams.partial import PartialFormatError, dump_partial, load_partial

    cfg = load_config(None)
    v2 = msgspec.msgpack.decode(dump_partial(PulseEngine(cfg)))
    del v2["format"]                                # what a v1 worker sends
    with pytest.raises(PartialFormatError):
        load_partial(cfg, msgspec.msgpack.encode(v2))


@given(st.integers(0, 5), st.integers(0, 5), st.integers(0, 200 * 86_400_000_000), st.integers(0, 90 * 86_400_000_000),
       st.sampled_from([0, 1]), st.sampled_from([None, 0.0, 1234.5, 5e-324, 1e300]), st.sampled_from([1, -1]))
def test_stage_flow_moved_equals_a_stay_ended_and_one_started(stage, to_stage, start, dwell, outcome, amount, sign):
    """StageFlow.moved is the hot path's copy of stay_ended + stay_started (bucket_of inlined),
    the open pipeline's stock included (the lead leaves `stage` and opens in `to_stage`)."""
    from pulse.streams.flow import StageFlow

    one, two = StageFlow(6), StageFlow(6)
    one.moved(stage, start, start + dwell, outcome, to_stage, amount, sign)
    two.stay_ended(stage, start, start + dwell, outcome, to_stage, sign, amount)
    two.stay_started(to_stage, start + dwell, amount, sign)
    assert one._days.keys() == two._days.keys()
    for day, a in one._days.items():
        b = two._days[day]
        assert (a.entered, a.exits, a.dwell_sum_us, a.dwell_hist, a.transitions, a.open_fix, a.open_amount) == \
            (b.entered, b.exits, b.dwell_sum_us, b.dwell_hist, b.transitions, b.open_fix, b.open_amount)


def test_dropping_old_days_keeps_the_open_pipeline_stock():
    """Housekeeping forgets old days' flows, but the open pipeline at a later day start is a
    sum over every earlier day: it must come out the same."""
    from pulse.streams.flow import StageFlow
    from pulse.streams.windows import DAY_US

    flow = StageFlow(3)
    flow.stay_started(0, 1 * DAY_US + 5, 100.0, +1)
    flow.moved(0, 1 * DAY_US + 5, 3 * DAY_US, 0, 2, 100.0, +1)
    flow.stay_started(1, 4 * DAY_US, 7.5, +1)
    flow.open_amount_changed(6 * DAY_US, 2, 100.0, 250.0, +1)
    before = flow.open_at_day_starts([5, 7, 9])
    flow.drop_days_before(5)
    assert min(flow._days) == 4
    assert flow.open_at_day_starts([5, 7, 9]) == before
    from pulse.streams.exact import to_fixed
    assert before[5] == ([0, 1, 1], [0, to_fixed(7.5), to_fixed(100.0)])
    assert before[7] == ([0, 1, 1], [0, to_fixed(7.5), to_fixed(250.0)])


def test_accept_line_is_accept_of_the_decoded_line():
    """`pulse report`'s fused per-line path parses and counts exactly as accept(raw, decode_fast(raw))."""
    import json

    from pulse.schemas.fast_path import decode_fast
    from pulse.streams.engine import PulseEngine
    from tests.schemas.test_parse_paths import NASTY
    from tests.support.event_cases import CONFIG, CORPUS_CASES, MUTATIONS, TS

    raws = [t.replace(b"%s", TS.encode()) for t in NASTY] + [case.values[0] for case in CORPUS_CASES]
    raws += [json.dumps(obj).encode() for obj in MUTATIONS] + [b"{", b"[]", b" x", b"\x00"]
    raws = [raw for raw in raws if raw.strip()]
    fused, plain = PulseEngine(CONFIG), PulseEngine(CONFIG)
    for raw in raws:
        assert fused.accept_line(raw) == plain.accept(raw, decode_fast(raw)), raw
    for blank in (b"", b" ", b"\t \r"):      # not an input: not counted
        assert fused.accept_line(blank) is None
    assert fused.counters() == plain.counters() and fused.events_read == len(raws)
