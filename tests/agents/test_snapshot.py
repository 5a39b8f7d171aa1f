"""The dashboard's read path without a broker: views of a report (agents/views.py), the shared
snapshot (agents/snapshot.py: one build per interval, shared by concurrent readers) and the
forked build."""
from __future__ import annotations

import asyncio
import importlib.resources
import itertools
import os
import time

import orjson
import pytest

from pulse.agents.snapshot import (BACKLOG_FRESH_S, BACKLOG_MIN_MESSAGES, BACKLOG_S, FRESH_S, ForkedBuildError,
                                   Snapshots, refresh_interval, run_forked)
from pulse.agents.views import MAX_PAGE, RENDER_CHUNK, FigureViews, Views, encode_views
from pulse.agents.web import BadRequest, parse_stale_query
from pulse.config import load_config
from pulse.streams.engine import PulseEngine
from pulse.streams.report import build_figures, build_report

DEMO = importlib.resources.files("pulse") / "samples" / "demo.jsonl"


@pytest.fixture(scope="module")
def report() -> dict:
    lines = [line for line in DEMO.read_bytes().split(b"\n") if line.strip()]
    return build_report(lines, load_config(None))


@pytest.fixture(scope="module")
def figures():
    """The demo's report figures (what `FigureViews`, this worker's own snapshot, is made of)."""
    engine = PulseEngine(load_config(None))
    for line in DEMO.read_bytes().split(b"\n"):
        if line.strip():
            engine.ingest(line)
    return build_figures(engine, engine.default_as_of(0))


@pytest.fixture(params=["encoded", "figures"])
def views_of(request, report, figures):
    """Both forms of a snapshot's views (agents/views.py) of the demo's report."""
    if request.param == "encoded":
        return lambda: Views.decode(encode_views(report))
    return lambda: FigureViews(figures, metrics=lambda: b"# gauges")


def test_figure_views_render_the_report_as_the_document(report, figures, monkeypatch):
    monkeypatch.setattr("pulse.agents.views.RENDER_CHUNK", 7)       # several chunks over the demo's stale leads
    views = FigureViews(figures, metrics=lambda: b"# gauges")
    whole = asyncio.run(views.render_report())
    assert orjson.loads(whole) == report and views.report() is whole
    assert orjson.loads(asyncio.run(FigureViews(figures).render_report("default"))) == report
    assert views.metrics == b"# gauges" and RENDER_CHUNK > 7
    assert views.report() == Views.decode(encode_views(report)).report()     # byte for byte


@pytest.fixture(scope="module")
def two_pipelines(report) -> dict:
    """The demo report with a second pipeline (a copy with no stale leads): several pipelines, and an empty list."""
    doc = orjson.loads(orjson.dumps(report))
    doc["pipelines"]["other"] = {**doc["pipelines"]["default"], "stale": []}
    return doc


def test_views_give_back_the_report_whole_and_per_pipeline(two_pipelines):
    views = Views.decode(encode_views(two_pipelines))
    assert orjson.loads(views.report()) == two_pipelines
    assert views.report() is views.report()                     # assembled once per snapshot
    assert asyncio.run(views.render_report("other")) == views.report("other")
    for name in ("default", "other"):
        one = orjson.loads(views.report(name))
        assert one == {**two_pipelines, "pipelines": {name: two_pipelines["pipelines"][name]}}


def test_summary_is_the_section_without_stale_plus_its_counts(report, views_of):
    section = report["pipelines"]["default"]
    summary = orjson.loads(views_of().pipelines["default"].summary)
    stale = section["stale"]
    facts = summary.pop("stale_summary")
    assert summary == {k: v for k, v in section.items() if k != "stale"}
    assert facts["total"] == len(stale) > 25
    assert facts["by_level"] == {str(n): sum(s["level"] == n for s in stale) for n in (1, 2, 3)}
    owners = dict((v, n) for v, n in facts["owners"])
    assert owners == {o: sum(s["owner"] == o for s in stale) for o in {s["owner"] for s in stale}}
    assert [v for v, _ in facts["teams"]] == sorted({s["team"] for s in stale if s["team"] is not None}) + (
        [None] if any(s["team"] is None for s in stale) else [])


def test_stale_pages_match_filtering_the_report(report, views_of):
    stale = report["pipelines"]["default"]["stale"]
    view = views_of().pipelines["default"]
    owners = sorted({s["owner"] for s in stale if s["owner"]})[:3] + [None, "nobody"]
    teams = sorted({s["team"] for s in stale if s["team"]}) + [None]
    cases = [{}] + [{"owner": o} for o in owners] + [{"team": t} for t in teams] + [{"level": n} for n in (1, 2, 3)]
    cases += [{"team": t, "level": n} for t, n in itertools.product(teams, (1, 3))]
    cases += [{"owner": owners[0], "team": t, "level": 3} for t in teams]
    for filters, (offset, limit) in itertools.product(cases, [(0, 25), (25, 25), (10, 7), (0, MAX_PAGE), (500, 5)]):
        expected = [s for s in stale if all(s[k] == v for k, v in filters.items())]
        page = orjson.loads(view.stale_page(filters, offset, limit).to_json(limit))
        assert page["total"] == len(expected), filters
        assert page["rows"] == expected[offset:offset + limit], (filters, offset, limit)


def test_stale_query_is_checked():
    pipelines = ["default"]
    assert parse_stale_query({}, pipelines) == ("default", {}, 0, 50)
    assert parse_stale_query({"filters": '{"owner": null, "level": 2}', "offset": "25", "limit": "25"}, pipelines) \
        == ("default", {"owner": None, "level": 2}, 25, 25)
    for bad in ({"pipeline": "nope"}, {"filters": "{"}, {"filters": "[]"}, {"filters": '{"email": "x"}'},
                {"filters": '{"level": 4}'}, {"filters": '{"owner": 3}'}, {"offset": "-1"}, {"limit": "0"},
                {"limit": str(MAX_PAGE + 1)}, {"offset": "x"}):
        with pytest.raises(BadRequest):
            parse_stale_query(bad, pipelines)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_snapshots(report, clock, token=None, fail=None):
    calls = []
    gate = asyncio.Event()
    gate.set()

    async def build() -> Views:
        calls.append(clock.now)
        await gate.wait()
        if fail:
            raise fail
        return Views.decode(encode_views(report))
    return Snapshots(build, fresh_s=2.0, max_age_s=5.0, clock=clock, token=token), calls, gate


def test_concurrent_readers_share_one_build_and_reuse_it_while_fresh(report):
    async def scenario():
        clock = FakeClock()
        snaps, calls, gate = make_snapshots(report, clock)
        gate.clear()
        readers = [asyncio.ensure_future(snaps.get()) for _ in range(10)]
        await asyncio.sleep(0)
        gate.set()
        got = await asyncio.gather(*readers)
        assert len(calls) == 1 and all(s is got[0] for s in got) and got[0].version == 1
        clock.now += 1.9                                # fresh: no build
        assert await snaps.get() is got[0] and len(calls) == 1
        clock.now += 1.0                                # 2.9 s old: served, one rebuild in the background
        assert await snaps.get() is got[0]
        assert await snaps.get() is got[0]
        await asyncio.sleep(0.01)
        assert len(calls) == 2 and snaps.current.version == 2
        clock.now += 5.1                                # too old to serve: the reader waits for the build
        fresh = await snaps.get()
        assert len(calls) == 3 and fresh.version == 3 and fresh.age(clock.now) == 0
        clock.now += 30.0                               # a reader that takes older figures (/metrics) ...
        assert await snaps.get(max_age_s=60.0) is fresh         # ... is answered at once
        await asyncio.sleep(0.01)
        assert len(calls) == 4 and snaps.current.version == 4   # while one build replaces them
    asyncio.run(scenario())


def test_the_interval_stretches_only_while_more_input_waits_than_the_worker_reads_in_BACKLOG_S():
    assert refresh_interval(None, 30_000.0) == FRESH_S                 # lag not known (not assigned yet)
    assert refresh_interval(500_000, 0.0) == FRESH_S                   # nothing read since the last build
    assert refresh_interval(0, 3_000.0) == FRESH_S                     # a live worker keeping up
    assert refresh_interval(int(30_000 * BACKLOG_S), 30_000.0) == FRESH_S   # 5 s behind at its rate, the bound
    assert refresh_interval(int(30_000 * BACKLOG_S) + 1, 30_000.0) == BACKLOG_FRESH_S
    assert refresh_interval(1_000_000, 30_000.0) == BACKLOG_FRESH_S    # catching up on a backlog
    # a worker just started (its rate counts its start-up) with a demo's few thousand events: no backlog
    assert refresh_interval(BACKLOG_MIN_MESSAGES, 50.0) == FRESH_S
    assert refresh_interval(BACKLOG_MIN_MESSAGES + 1, 50.0) == BACKLOG_FRESH_S
    assert BACKLOG_FRESH_S > FRESH_S


def test_a_stretched_interval_moves_the_age_readers_wait_past_with_it(report):
    async def scenario():
        clock = FakeClock()
        snaps, calls, _ = make_snapshots(report, clock)         # fresh 2 s, served up to 5 s old
        first = await snaps.get()
        snaps.set_interval(10.0)                                # a backlog: served up to 25 s old
        clock.now += 9.9
        assert await snaps.get() is first and len(calls) == 1   # still fresh: no build
        clock.now += 15.0                                       # 24.9 s: served, rebuilt in the background
        assert await snaps.get() is first
        await asyncio.sleep(0.01)
        assert len(calls) == 2
        snaps.set_interval(2.0)                                 # caught up: back to 2 s and 5 s
        clock.now += 5.1
        fresh = await snaps.get()                               # too old to serve: waits for the build
        assert len(calls) == 3 and fresh.age(clock.now) == 0
        clock.now += 2.5
        assert await snaps.get() is fresh                       # past 2 s: served, rebuilt behind it
        await asyncio.sleep(0.01)
        assert len(calls) == 4
    asyncio.run(scenario())


def test_unchanged_state_is_confirmed_without_a_build(report):
    async def scenario():
        clock, state = FakeClock(), {"token": ("p", 1)}
        snaps, calls, _ = make_snapshots(report, clock, token=lambda: state["token"])
        first = await snaps.get()
        clock.now += 3
        again = await snaps.refresh()
        assert len(calls) == 1 and again.version == first.version and again.started == clock.now
        state["token"] = ("p", 2)                       # something changed: a real build
        clock.now += 3
        assert (await snaps.refresh()).version == 2 and len(calls) == 2
        state["token"] = None                           # cannot tell (peers): always a build
        clock.now += 3
        assert (await snaps.refresh()).version == 3 and len(calls) == 3
    asyncio.run(scenario())


def test_a_failed_build_reaches_its_readers_and_the_next_one_retries(report):
    async def scenario():
        clock = FakeClock()
        snaps, calls, _ = make_snapshots(report, clock, fail=RuntimeError("peer away"))
        results = await asyncio.gather(snaps.get(), snaps.get(), return_exceptions=True)
        assert [str(r) for r in results] == ["peer away", "peer away"] and len(calls) == 1
        with pytest.raises(RuntimeError):
            await snaps.get()
        assert len(calls) == 2 and snaps.current is None
    asyncio.run(scenario())


def test_run_forked_builds_from_the_memory_of_the_moment_and_returns_bytes():
    big = {"n": 123, "payload": os.urandom(3 << 20)}          # more than a pipe holds at once

    async def scenario():
        out = await run_forked(lambda: b"%d:" % big["n"] + big["payload"])
        assert out == b"123:" + big["payload"]
        with pytest.raises(KeyError):                      # the child's exception, raised here
            await run_forked(lambda: {}["missing"])
        with pytest.raises(ForkedBuildError):              # a child that dies
            await run_forked(lambda: os._exit(3))
    asyncio.run(scenario())


def test_the_alert_feed_passes_on_spec_fields_only():
    from pulse.agents.alert_feed import shown

    ours = orjson.dumps({"alert_id": "a1", "type": "lead.stale", "severity": "warning", "lead_id": "L-1", "level": 1})
    alert, raw = shown(ours)
    assert raw == ours and alert["alert_id"] == "a1"                     # the worker's own: sent on as they are
    alert, raw = shown(orjson.dumps({"alert_id": "a2", "type": "lead.stale", "attributes": {"email": "x@y.example"}}))
    assert alert == {"alert_id": "a2", "type": "lead.stale"} and b"email" not in raw
    assert shown(b"not json") is None and shown(b"[1, 2]") is None


def test_the_alert_feed_keeps_one_log_that_each_page_reads_from_its_place():
    from pulse.agents import alert_feed
    from pulse.agents.alert_feed import AlertFeed

    feed = AlertFeed([], "pipeline.notifications")
    wakes = []
    feed.on_publish = lambda: wakes.append(feed.seq)
    feed.publish_own(b'{"alert_id":"early"}')
    assert feed.seq == 0 and not wakes          # before the backlog is read: left to the topic's backlog
    feed.live = True
    for i in range(3):
        feed.publish_own(b'{"alert_id":"a%d"}' % i)
    assert wakes == [1, 2, 3]
    assert feed.since(1) == [b'event: alert\ndata: {"alert_id":"a1"}\n\n', b'event: alert\ndata: {"alert_id":"a2"}\n\n']
    assert feed.since(3) == [] and feed.recent == feed.since(0)
    assert feed.since(0, limit=1) == [b'event: alert\ndata: {"alert_id":"a2"}\n\n']     # the newest
    for i in range(alert_feed.LOG_MAX + 5):      # a page further behind than the log gets what is left
        feed.publish_own(b'{"alert_id":"b%d"}' % i)
    behind = feed.since(1)
    assert len(behind) == alert_feed.LOG_MAX and behind[-1].endswith(b'"b%d"}\n\n' % (alert_feed.LOG_MAX + 4))
    assert len(feed.recent) == alert_feed.BACKLOG and feed.recent == behind[-alert_feed.BACKLOG:]


def test_the_alert_feed_reads_only_the_partitions_this_worker_does_not_hold(monkeypatch):
    from collections import namedtuple

    from pulse.agents import alert_feed
    from pulse.agents.alert_feed import AlertFeed

    TP, Record = namedtuple("TP", "topic partition"), namedtuple("Record", "value")
    tps = [TP("n", p) for p in range(4)]
    own = {0, 1, 2, 3}
    calls = []

    class Consumer:             # aiokafka's calls that _follow makes
        def assign(self, wanted):
            calls.append(("assign", [tp.partition for tp in wanted]))

        def unsubscribe(self):
            calls.append(("unsubscribe",))

        async def getmany(self, timeout_ms):
            calls.append(("getmany",))
            if len(calls) > 8:
                raise asyncio.CancelledError
            return {TP("n", 3): [Record(b'{"alert_id":"peer"}'), Record(b"not json")]}

    async def scenario():
        feed = AlertFeed([], "n", own_partitions=lambda: own)
        task = asyncio.ensure_future(feed._follow(Consumer(), tps))
        await asyncio.sleep(0.01)
        assert calls[0] == ("unsubscribe",) and ("getmany",) not in calls      # all ours: nothing fetched
        own.discard(3)                                                          # a rebalance gave 3 away
        with pytest.raises(asyncio.CancelledError):
            await task
        assert calls.count(("assign", [3])) == 1 and ("getmany",) in calls
        # one alert per fetch (the last one stopped the loop); the message that is not JSON is not shown
        assert feed.since(0)[0] == b'event: alert\ndata: {"alert_id":"peer"}\n\n'
        assert feed.seq == calls.count(("getmany",)) - 1
    monkeypatch.setattr(alert_feed, "OWN_POLL_S", 0.0)
    asyncio.run(scenario())


def test_a_reader_that_needs_fresh_figures_keeps_them_fresh_and_never_waits(report):
    """Reads every 0.7 s with fresh_s 0.2 and max_age_s 0.6: without the keeper every read finds
    the snapshot too old and waits for a build (0.1 s here); with it the snapshot is rebuilt as it
    turns fresh_s old (at most ~0.3 s old when read), so no read waits. Once reads stop, builds
    stop keep_fresh_s later."""
    async def scenario(keep_fresh_s):
        builds = []

        async def build() -> Views:
            builds.append(time.monotonic())
            await asyncio.sleep(0.1)
            return Views.decode(encode_views(report))
        snaps = Snapshots(build, fresh_s=0.2, max_age_s=0.6, keep_fresh_s=keep_fresh_s)
        await snaps.get()
        waited = []
        for _ in range(4):
            await asyncio.sleep(0.7)
            t = time.monotonic()
            await snaps.get()
            waited.append(time.monotonic() - t)
        await asyncio.sleep(1.2)            # past keep_fresh_s (0.8) after the last read
        stopped_at = len(builds)
        await asyncio.sleep(0.5)
        return min(waited), max(waited), stopped_at, len(builds)
    least, _, _, _ = asyncio.run(scenario(None))
    assert least >= 0.09                                    # every read waited for a build
    _, worst, stopped_at, total = asyncio.run(scenario(0.8))
    assert worst < 0.09                                     # none did
    assert total == stopped_at                              # no build once no one reads


def test_the_keeper_survives_failing_builds_and_retries_an_interval_later(report):
    """Builds that raise (a peer away) do not stop the keeper, nor make it spin: it tries again
    fresh_s later, and once builds succeed again it keeps the snapshot fresh as before."""
    async def scenario():
        builds, failing = [], {"on": False}

        async def build() -> Views:
            builds.append(time.monotonic())
            await asyncio.sleep(0.01)
            if failing["on"]:
                raise RuntimeError("peer away")
            return Views.decode(encode_views(report))
        snaps = Snapshots(build, fresh_s=0.2, max_age_s=10.0, keep_fresh_s=5.0)
        await snaps.get()
        failing["on"] = True
        await asyncio.sleep(1.0)
        during_failure = len(builds) - 1
        keeper_alive = snaps._keeper is not None and not snaps._keeper.done()
        failing["on"] = False
        await asyncio.sleep(0.6)
        snap = snaps.peek()
        age = time.monotonic() - snap.started if snap else None
        snaps.close()
        return during_failure, keeper_alive, age
    during_failure, keeper_alive, age = asyncio.run(scenario())
    assert keeper_alive
    assert 2 <= during_failure <= 8         # ~one try per fresh_s (0.2 s) over 1 s, not a spin
    assert age is not None and age < 0.45   # fresh again once builds succeed


def test_closing_stops_the_keeper_and_no_build_starts_on_its_own_after(report):
    """What the worker does in on_before_shutdown: after close() no build starts unasked (a
    forked build would copy the process while it stops), though a read still gets figures."""
    async def scenario():
        builds = []

        async def build() -> Views:
            builds.append(time.monotonic())
            await asyncio.sleep(0.01)
            return Views.decode(encode_views(report))
        snaps = Snapshots(build, fresh_s=0.1, max_age_s=10.0, keep_fresh_s=5.0)
        await snaps.get()
        await asyncio.sleep(0.5)
        kept = len(builds)
        snaps.close()
        while snaps._inflight is not None:  # a build the keeper had started finishes
            await asyncio.sleep(0.01)
        closed_at = len(builds)
        await asyncio.sleep(0.5)            # nobody reads: nothing may build
        unasked = len(builds) - closed_at
        answered = await snaps.get()        # a read after close: answered, the keeper not restarted
        await asyncio.sleep(0.3)
        return kept, unasked, answered is not None, snaps._keeper
    kept, unasked, answered, keeper = asyncio.run(scenario())
    assert kept >= 2                        # the keeper was rebuilding every fresh_s
    assert unasked == 0 and answered and keeper is None


def test_the_dashboards_refresh_loop_follows_the_interval_the_builds_set(report):
    """While pages are open the dashboard rebuilds once per interval; a build that stretches the
    interval (a backlog, agents/app.py) stretches the loop's next waits too."""
    import types

    from pulse.agents.web import Dashboard

    async def scenario():
        builds = []

        async def build() -> Views:
            builds.append(time.monotonic())
            snaps.set_interval(0.5 if len(builds) > 1 else 0.05)      # the second build finds a backlog
            return Views.decode(encode_views(report))
        snaps = Snapshots(build, fresh_s=0.05, max_age_s=0.1)
        dashboard = Dashboard(snaps, types.SimpleNamespace(), ["default"], windows=["7d"],
                              report_error=lambda exc: (500, {}))
        dashboard._viewer_joined()
        await asyncio.sleep(1.2)
        dashboard._viewer_left()
        await asyncio.sleep(0.6)
        return builds
    builds = asyncio.run(scenario())
    # 0.05 s, then 0.5 s apart: ~4 builds in 1.2 s (the interval read once at the start: ~20)
    assert 2 <= len(builds) <= 6, builds
