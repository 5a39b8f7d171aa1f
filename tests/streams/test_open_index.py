"""The open leads kept indexed per event (streams/open_index.py) against a from-scratch index.

Properties, on the messy random inputs of tests/support/scenarios.py (late events, reopens,
supersedes, updates of owner/team/source/amount, duplicates, invalid lines):

* after any prefix of the input, an engine that keeps the index per event holds exactly
  the index built at once from its open leads, and reports the same document, byte for
  byte, at any T;
* the leads split over shards (as a worker's partitions), each indexed per event and
  merged without copying their leads (`merge(leads=False)`), report the same document as
  one engine; so does a shard whose leads were restored from their histories (recovery);
* the stale counts by level that /metrics reads equal the levels of the report's list.
"""
from __future__ import annotations

import zlib
from collections import Counter

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pulse.schemas.parse import parse_event
from pulse.schemas.types import Event
from pulse.streams.engine import PulseEngine
from pulse.streams.exact import to_fixed
from pulse.streams.open_index import OpenIndex, _Stays, open_figures
from pulse.streams.report import build_document
from tests.support.reference import DAY_US, US, make_config, make_pipeline
from tests.support.scenarios import SETTINGS, scenarios

LATER = [0, 1, 3600 * US, DAY_US, 3 * DAY_US, 9 * DAY_US, 35 * DAY_US, 200 * DAY_US]


def _state(index: OpenIndex) -> tuple:
    return index.held, index.groups, [index.live_stays(stage) for stage in range(len(index.stays))]


def _as_of(engine: PulseEngine, data, label: str) -> int:
    return (engine.max_ts or 0) + data.draw(st.sampled_from(LATER), label=label)


def _document(engine: PulseEngine, as_of: int) -> bytes:
    return orjson.dumps(build_document(engine, as_of))


@settings(max_examples=150, **SETTINGS)
@given(scenarios(), st.booleans(), st.data())
def test_index_kept_per_event_equals_one_built_from_the_open_leads(case, sweep_often, data):
    """`sweep_often`: ended stays are swept out at once (in production, once 256 have piled up)."""
    saved = _Stays.SWEEP_MIN
    _Stays.SWEEP_MIN = 0 if sweep_often else saved
    try:
        _check_index_kept_per_event(case, data)
    finally:
        _Stays.SWEEP_MIN = saved


def _check_index_kept_per_event(case, data) -> None:
    config, lines, _ = case
    lines = [ln.encode() for ln in lines if ln.strip()]
    cuts = sorted(data.draw(st.sets(st.integers(0, len(lines)), min_size=1, max_size=4), label="cuts"))
    live, batch = PulseEngine(config, index_open=True), PulseEngine(config)
    fed = 0
    for cut in cuts:
        while fed < cut:
            live.ingest(lines[fed])
            batch.ingest(lines[fed])
            fed += 1
        for name, p in live.pipelines.items():
            assert _state(p.open_index) == _state(OpenIndex.of(p.config, p.open_leads.values()))
            assert batch.pipelines[name].open_index is None
        as_of = _as_of(live, data, "as_of")
        assert _document(live, as_of) == _document(batch, as_of)


def _shard_of(line: bytes, config, n: int) -> int:
    ev = parse_event(line, config)
    return zlib.crc32(ev.lead_id.encode()) % n if isinstance(ev, Event) else 0


@settings(max_examples=120, **SETTINGS)
@given(scenarios(), st.integers(2, 3), st.data())
def test_shards_merged_without_their_leads_report_as_one_engine(case, n, data):
    config, lines, _ = case
    lines = [ln.encode() for ln in lines if ln.strip()]
    one = PulseEngine(config)
    shards = [PulseEngine(config, index_open=True) for _ in range(n)]
    for line in lines:
        one.ingest(line)
        shards[_shard_of(line, config, n)].ingest(line)
    # recovery: shard 0's leads rebuilt from their histories into a fresh indexed engine
    restored = PulseEngine(config, index_open=True)
    restored.restore_counters(shards[0].counters())
    for name, p in shards[0].pipelines.items():
        for lead_id, lead in p.leads.items():
            restored.restore_lead(name, lead_id, bytes(lead.history), lead.n_events)
            restored.restore_lead(name, lead_id, bytes(lead.history), lead.n_events)   # replacing: no double count
        restored.pipelines[name].implicit_creates = p.implicit_creates
    merged = PulseEngine(config)
    for shard in [restored, *shards[1:]]:
        merged.merge(shard, leads=False)
    assert all(not p.leads for p in merged.pipelines.values())
    as_of = _as_of(one, data, "as_of")
    assert _document(merged, as_of) == _document(one, as_of)


@settings(max_examples=100, **SETTINGS)
@given(scenarios(), st.booleans(), st.data())
def test_stale_counts_by_level_equal_the_report_list(case, indexed, data):
    """Read from the index kept per event, or in one pass over the open leads (`pulse report`)."""
    config, lines, _ = case
    engine = PulseEngine(config, index_open=indexed)
    for line in lines:
        if line.strip():
            engine.ingest(line.encode())
    as_of = _as_of(engine, data, "as_of")
    for name, p in engine.pipelines.items():
        figures = p.open_figures(as_of)
        entries = figures.stale_entries()
        names = [st_.name for st_ in p.config.stages]
        expected = Counter((names.index(e["stage"]), e["level"]) for e in entries)
        assert {k: v for k, v in figures.stale_by_level.items() if v} == dict(expected)
        assert sum(figures.stale_by_stage) == len(entries)


def test_a_lead_leaving_and_reentering_the_index():
    """A hand-made case: open, stale, moved, closed, reopened; groups vanish when empty."""
    config = make_config([make_pipeline("p", [("a", 86_400, 0.5), ("b", None, 1.0)])])
    engine = PulseEngine(config, index_open=True)
    p = engine.pipelines["p"]

    def send(i: int, kind: str, day: int, **fields) -> None:
        doc = {"event_id": f"e{i}", "type": kind, "pipeline": "p", "lead_id": "L",
               "occurred_at": f"2026-03-{day:02d}T00:00:00Z", **fields}
        assert engine.ingest(orjson.dumps(doc)) == "applied"

    send(1, "lead.created", 1, stage="a", owner="o", amount=10.0)
    assert p.open_index.groups == {("o", None, None): ([1, 0], [to_fixed(10.0), 0])}
    assert open_figures([p.open_index], p.config, 3 * DAY_US + engine.max_ts).stale_by_level == {
        (0, 1): 0, (0, 2): 1, (0, 3): 0}
    send(2, "lead.stage_changed", 2, to_stage="b")
    assert p.open_index.groups == {("o", None, None): ([0, 1], [0, to_fixed(10.0)])}
    assert p.open_index.live_stays(0) == [] and p.open_index.stays[1] is None
    send(3, "deal.closed", 3, outcome="lost")
    assert p.open_index.held == {} and p.open_index.groups == {}
    send(4, "lead.stage_changed", 4, to_stage="a")
    assert p.open_index.live_stays(0) == [(engine.max_ts, "L")]
