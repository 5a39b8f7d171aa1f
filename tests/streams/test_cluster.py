"""ClusterFigures (streams/cluster.py): the figures of several live engines, kept as sums
between calls, equal the figures of the same engines merged (what every report did),
whatever happened in between: events anywhere in time, days dropped by housekeeping, an
engine replaced by another (a partition re-assigned) or gone, T moving either way."""
from __future__ import annotations

import zlib

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pulse.schemas.timestamps import parse_timestamp
from pulse.streams.cluster import ClusterFigures
from pulse.streams.engine import PulseEngine
from pulse.streams.report import build_figures
from tests.support.reference import DAY_US
from tests.support.scenarios import BASE_US, SETTINGS, scenarios


def _shard(line: str, n: int) -> int:
    """Disjoint leads per engine, as the worker's partitions hold them (by lead_id)."""
    try:
        doc = orjson.loads(line)
        key = doc.get("lead_id") if isinstance(doc, dict) else None
    except orjson.JSONDecodeError:
        key = None
    return zlib.crc32(str(key).encode()) % n


def _merged(config, engines) -> PulseEngine:
    total = PulseEngine(config)
    for engine in engines:
        total.merge(engine, leads=False)
    return total


def _ingest(line: str, shards: list[list[str]], engines: list[PulseEngine]) -> None:
    k = _shard(line, len(engines))
    shards[k].append(line)
    engines[k].ingest(line)


def _outcome(build) -> object:
    """A document, or the error building it raised."""
    try:
        return build()
    except ValueError as exc:
        return repr(exc)


def _assert_equal_figures(cluster: ClusterFigures, config, engines, t: int) -> None:
    """The cluster's figures equal the merged engines' (or fail as they do: a T whose windows
    cover days housekeeping dropped, after a late event of a lead re-folded its stays on those
    days, has negative day counts; the live worker never reports at such a T, as it drops
    only days no report at or after now reads: streams/housekeeping.py)."""
    got = _outcome(lambda: cluster.figures(engines, t).document())
    assert got == _outcome(lambda: build_figures(_merged(config, engines), t).document())


def _engine(config, lines) -> PulseEngine:
    engine = PulseEngine(config, index_open=True)
    for line in lines:
        if line.strip():
            engine.ingest(line)
    return engine


@settings(max_examples=120, **SETTINGS)
@given(scenarios(), st.integers(1, 4), st.data())
def test_cluster_figures_equal_the_merged_engines_figures_after_any_changes(case, n, data):
    config, lines, as_of = case
    shards: list[list[str]] = [[] for _ in range(n)]
    engines = [PulseEngine(config, index_open=True) for _ in range(n)]
    cluster = ClusterFigures(config)
    times = [BASE_US + k * DAY_US // 2 for k in range(-2, 16)] + ([parse_timestamp(as_of)] if as_of else [])
    for i, line in enumerate(lines + [""]):
        if data.draw(st.integers(0, 3), label="check") == 0 or i == len(lines):
            action = data.draw(st.sampled_from(["none", "none", "drop days", "replace", "remove"]), label="action")
            k = data.draw(st.integers(0, n - 1), label="engine")
            if action == "drop days":           # housekeeping: the days before one forgotten (a stock kept)
                day = data.draw(st.integers(BASE_US // DAY_US - 1, BASE_US // DAY_US + 8), label="day")
                for p in engines[k].pipelines.values():
                    p.flow.drop_days_before(day)
                    p.deals.drop_days_before(day)
            elif action == "replace":           # the partition re-assigned: a new engine, the same leads
                engines[k] = _engine(config, shards[k])
            held = engines if action != "remove" else engines[:k] + engines[k + 1:]
            t = data.draw(st.sampled_from(times), label="T")
            _assert_equal_figures(cluster, config, held, t)
        if line:
            _ingest(line, shards, engines)


@settings(max_examples=120, **SETTINGS)
@given(scenarios(), st.integers(1, 4), st.data())
def test_catch_up_steps_between_events_leave_the_figures_equal_to_the_merged_engines(case, n, data):
    """The live worker takes changes into the sums in steps between events (catch_up_steps,
    interleaved with the event loop), then builds the figures at one instant: whatever the
    steps took, left half-done or abandoned, the figures equal the merged engines'."""
    config, lines, as_of = case
    shards: list[list[str]] = [[] for _ in range(n)]
    engines = [PulseEngine(config, index_open=True) for _ in range(n)]
    cluster = ClusterFigures(config)
    times = [BASE_US + k * DAY_US // 2 for k in range(-2, 16)] + ([parse_timestamp(as_of)] if as_of else [])
    steps = None
    t = times[0]
    stepped = 0
    for i, line in enumerate(lines + [""]):
        if steps is None and data.draw(st.booleans(), label="start steps"):
            t = max(t, data.draw(st.sampled_from(times), label="T of the steps"))       # T moves forward
            steps = cluster.catch_up_steps(list(engines), t, days_per_step=data.draw(st.integers(1, 3)),
                                           leads_per_step=data.draw(st.integers(1, 4)))
        if steps is not None:
            for _ in range(data.draw(st.integers(0, 3), label="steps")):
                if next(steps, StopIteration) is StopIteration:
                    steps = None
                    break
                stepped += 1
        if data.draw(st.integers(0, 4), label="check") == 0 or i == len(lines):
            if data.draw(st.integers(0, 5), label="replace") == 0:     # a partition re-assigned
                k = data.draw(st.integers(0, n - 1), label="engine")
                engines[k] = _engine(config, shards[k])
                steps = None                    # the worker starts its steps again over the new engines
            t = max(t, data.draw(st.sampled_from(times), label="T"))
            _assert_equal_figures(cluster, config, engines, t)
        if line:
            _ingest(line, shards, engines)


@settings(max_examples=40, **SETTINGS)
@given(scenarios(), st.integers(1, 3), st.data())
def test_figures_at_every_point_of_the_catch_up_steps_equal_the_merged_engines(case, n, data):
    """A figures() call may come at any yield of catch_up_steps (a read that cannot wait, a
    rebalance): stopped after each of its steps in turn, the steps leave figures equal to the
    merged engines', then and once they run to the end (each point from the same state: the
    engines rebuilt, the first half read whole, the second half left to the steps)."""
    config, lines, as_of = case
    half = len(lines) // 2
    times = sorted(data.draw(st.lists(st.sampled_from([BASE_US + k * DAY_US // 2 for k in range(0, 16)]),
                                      min_size=2, max_size=2), label="T of the two reads"))
    stop_at = 0
    while True:
        shards: list[list[str]] = [[] for _ in range(n)]
        engines = [PulseEngine(config, index_open=True) for _ in range(n)]
        cluster = ClusterFigures(config)
        for line in lines[:half]:
            _ingest(line, shards, engines)
        cluster.figures(engines, times[0])
        for line in lines[half:]:
            _ingest(line, shards, engines)
        steps = cluster.catch_up_steps(list(engines), times[1], days_per_step=1, leads_per_step=1)
        taken = sum(1 for _ in zip(range(stop_at), steps))
        _assert_equal_figures(cluster, config, engines, times[1])
        if taken < stop_at:
            return                                  # every point checked
        for _ in steps:                             # the steps resumed after the read, to the end
            pass
        _assert_equal_figures(cluster, config, engines, times[1])
        stop_at += 1
