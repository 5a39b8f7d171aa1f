"""`pulse slack` against a local fake Slack Web API (tests/support/fake_slack.py), a real Redis
server and the session's embedded Kafka-protocol broker: the consumer group, restart and
replay, the command, rebalances, batches, what the ledger holds.

Fixtures in conftest.py, helpers in tests/support/slack_harness.py. Each test has its own
ledger prefix (and topics), so tests share the Redis server only.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import orjson

from kafka import KafkaProducer

from pulse.kafka.broker import free_port
from pulse.slack.consumer import AlertConsumer
from pulse.schemas.topics import NOTIFICATIONS
from tests.support.slack_harness import leads_in, resolved, run, running, stale


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
