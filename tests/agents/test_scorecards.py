"""Per-owner scorecards in Redis (agents/scorecards.py, docs/redis.md) and `pulse stale --owner`.

The scorecards are cut out of the cluster-wide document the serving layer already writes
(`P report`); here a LivePulse (no broker) feeds a real redis-server, as in test_redis.py.
"""
from __future__ import annotations

import asyncio
import copy
import uuid

import orjson

from pulse.agents.scorecards import EMPTY_WINDOW, scorecards
from pulse.agents.redis_layout import Keys, connect, key_prefix, read_scorecards
from pulse.agents.serving import RedisServing
from pulse.cli import main
from pulse.synth import generate

from tests.support.kafka_feed import KafkaFeed, make_live
from tests.support.redis import PIPELINES, event, expected_stale, offline_engine


def _document(lines, config) -> dict:
    return orjson.loads(orjson.dumps(offline_engine(config, lines).report()))


def test_a_scorecard_is_the_owner_segment_of_the_report_and_they_add_up(pipelines_config):
    lines = list(generate(leads=300, seed=4, pipelines=PIPELINES, duplicates=0.03, late=0.1, implicit=0.03))
    lines.append(event("lead.created", "u1", "U-1", "2026-01-04T00:00:00Z", amount=7))      # no owner
    doc = _document(lines, pipelines_config)
    cards = scorecards(doc)
    assert set(cards) == set(PIPELINES)
    for name, p in doc["pipelines"].items():
        by_owner = cards[name]
        assert len(by_owner) > 3 and None not in by_owner
        # open: the segment entry, and the owners' sums plus the unassigned add up to the pipeline
        unassigned = [e for e in p["open"]["segments"]["owner"] if e["value"] is None]
        for field in ("count", "stale"):
            assert sum(c["open"][field] for c in by_owner.values()) + sum(e[field] for e in unassigned) \
                == (p["open"]["count"] if field == "count" else len(p["stale"]))
        for e in p["open"]["segments"]["owner"]:
            if e["value"] is not None:
                card = by_owner[e["value"]]["open"]
                assert {k: card[k] for k in ("count", "amount", "weighted_amount", "stale")} == \
                    {k: e[k] for k in ("count", "amount", "weighted_amount", "stale")}
                levels = card["stale_by_level"]
                assert sum(levels.values()) == card["stale"]
                assert levels["2"] == sum(1 for s in p["stale"] if s["owner"] == e["value"] and s["level"] == 2)
        for window, w in p["windows"].items():
            entries = {e["value"]: e for e in w["segments"]["owner"]}
            for owner, card in by_owner.items():
                cw = card["windows"][window]
                assert (cw["from"], cw["to"]) == (w["from"], w["to"])
                want = {k: v for k, v in entries[owner].items() if k != "value"} if owner in entries else EMPTY_WINDOW
                assert {k: v for k, v in cw.items() if k not in ("from", "to")} == want
            assert sum(c["windows"][window]["won"] for c in by_owner.values()) \
                + sum(e["won"] for v, e in entries.items() if v is None) == w["won"]
    # no lead ids, no attributes, no contact data: only the owner's name and figures
    text = orjson.dumps(cards).decode()
    assert "@" not in text and "L-" not in text and "attributes" not in text and "lead_id" not in text


def test_scorecards_in_redis_follow_the_report_and_pulse_stale_owner_shows_them(redis_server, pipelines_config, capsys):
    prefix = f"sc{uuid.uuid4().hex[:6]}."
    lines = list(generate(leads=250, seed=9, pipelines=PIPELINES))
    lines.append(event("lead.created", "mk1", "MK-1", "2026-01-02T00:00:00Z", owner="[bold]x", team="[red]t"))
    docs: list[dict] = []
    wall = [1000.0]

    async def report_source():
        return docs[-1]

    async def sync(live, serving, doc):
        docs.append(doc)
        wall[0] += 3600                                 # past the report interval: written at this sync
        stats = await serving.sync_once()
        assert stats is not None and stats.report

    async def scenario():
        client = connect(redis_server.url)
        keys = Keys(key_prefix(prefix))
        live = make_live(pipelines_config, range(4))
        serving = RedisServing(live, client, prefix=keys.prefix, worker_id="w", clock="event",
                               report_source=report_source, wall=lambda: wall[0])
        feeder = KafkaFeed()
        feeder.feed(lines, live)
        first = _document(feeder.lines, pipelines_config)
        await sync(live, serving, first)
        cards = scorecards(first)
        for name in PIPELINES:
            stored = await client.hgetall(keys.scorecards(name))
            assert {k.decode(): orjson.loads(v) for k, v in stored.items()} == cards[name]
            assert await client.ttl(keys.scorecards(name)) > 0          # goes away with `P report`
        owner = max(cards["default"], key=lambda o: cards["default"][o]["open"]["stale"])
        assert await read_scorecards(client, keys, owner) == {n: cards[n][owner] for n in PIPELINES
                                                               if owner in cards[n]}
        assert await read_scorecards(client, keys, "nobody") == {}

        # An owner's every lead is reassigned and the windows lose them: the next write drops the card.
        later = copy.deepcopy(first)
        gone = next(o for o in sorted(cards["default"]) if o not in (owner, "[bold]x"))
        for section in [later["pipelines"]["default"]["open"], *later["pipelines"]["default"]["windows"].values()]:
            section["segments"]["owner"] = [e for e in section["segments"]["owner"] if e["value"] != gone]
        await sync(live, serving, later)
        assert await client.hexists(keys.scorecards("default"), gone) == 0
        assert await client.hlen(keys.scorecards("default")) == len(cards["default"]) - 1
        await client.aclose()
        return owner, cards

    owner, cards = asyncio.run(scenario())

    # pulse stale --owner: that owner's stale leads (all pipelines), and their scorecards
    expected = [e for e in expected_stale(offline_engine(pipelines_config, lines)) if e["owner"] == owner]
    assert expected
    argv = ["stale", "--redis", redis_server.url, "--topic-prefix", prefix]
    assert main([*argv, "--owner", owner, "--json", "--limit", "0"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["stale"] == expected and doc["count"] == len(expected)
    assert doc["scorecards"] == {n: cards[n][owner] for n in PIPELINES if owner in cards[n]}
    assert main([*argv, "--owner", owner, "--pipeline", "default", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    card = cards["default"][owner]
    assert f"{owner} in default" in out and f"{card['open']['count']} open lead" in out
    assert f"{card['open']['stale']} stale" in out and "30d:" in out
    default = [e for e in expected if e["pipeline"] == "default"]
    assert all(e["lead_id"] in out for e in default[:2])
    assert main([*argv, "--owner", "[bold]x", "--limit", "0"]) == 0          # names are printed, not read as markup
    out = capsys.readouterr().out
    assert "[bold]x in default" in out and "MK-1" in out and "[red]t" in out
    assert main([*argv, "--owner", "nobody"]) == 0
    assert "no scorecard for this owner" in capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    assert "scorecards" not in orjson.loads(capsys.readouterr().out)     # only with --owner
