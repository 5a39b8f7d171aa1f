"""The live worker against a real Kafka-protocol broker (the embedded Tansu).

Each test uses its own topic prefix and consumer group, and runs `pulse worker` as a
real process (so it can be killed with SIGKILL).
"""
from __future__ import annotations

import signal
import time
from collections import Counter

import msgspec
import orjson
import pytest
from kafka import KafkaProducer

from pulse.topics import NOTIFICATIONS, topic_names

from tests.support.live_harness import WorkerProcess, offline_report, read_topic, replay


def test_live_report_equals_offline_report(broker, topic_prefix, messy_file, tmp_path):
    expected, n = offline_report(messy_file)
    worker = WorkerProcess(broker.url, topic_prefix, f"g-{topic_prefix}", tmp_path).start()
    try:
        assert replay(broker, topic_prefix, messy_file).wait(60) == 0
        assert worker.wait_consumed(n) == expected
        dead = read_topic(broker, topic_prefix + "pipeline.deadletter")
        assert len(dead) == expected["data_quality"]["dead_lettered"]
        headers = dict(dead[0].headers)
        assert headers["pulse.reason"].decode() in expected["data_quality"]["dead_letter_reasons"]
        assert {"pulse.source.topic", "pulse.source.partition", "pulse.source.offset"} <= set(headers)
    finally:
        worker.stop()


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_crash_in_the_middle_of_a_replay_loses_and_repeats_nothing(broker, topic_prefix, messy_file, tmp_path, how):
    expected, n = offline_report(messy_file)
    worker = WorkerProcess(broker.url, topic_prefix, f"g-{topic_prefix}", tmp_path).start()
    publisher = replay(broker, topic_prefix, messy_file, "--rate", "400")
    try:
        time.sleep(1.5)
        if how == "kill":
            worker.kill()                               # SIGKILL: no flush, no commit, no goodbye
        else:
            worker.stop()                               # SIGTERM: Faust waits for the unacked messages
            assert worker.proc.returncode != -signal.SIGKILL, "did not stop on SIGTERM within 20 s"
        assert publisher.wait(60) == 0
        worker = WorkerProcess(broker.url, topic_prefix, f"g-{topic_prefix}", tmp_path).start()
        assert worker.wait_consumed(n) == expected
        time.sleep(2)                                   # let the alert timer run once more
        alerts = [orjson.loads(m.value) for m in read_topic(broker, topic_prefix + NOTIFICATIONS)]
        ids = Counter(a["alert_id"] for a in alerts)
        assert alerts and max(ids.values()) == 1, [i for i, c in ids.items() if c > 1]
    finally:
        publisher.kill()
        worker.stop()


def test_the_surviving_worker_takes_over_and_the_report_stays_correct(broker, topic_prefix, messy_file, tmp_path):
    expected, n = offline_report(messy_file)
    group = f"g-{topic_prefix}"
    first = WorkerProcess(broker.url, topic_prefix, group, tmp_path).start()
    second = WorkerProcess(broker.url, topic_prefix, group, tmp_path).start()
    try:
        assert replay(broker, topic_prefix, messy_file).wait(60) == 0
        # Each worker serves the whole document, assembled from both workers' shares.
        assert first.wait_consumed(n) == expected
        assert second.report() == expected
        shares = [msgspec.msgpack.decode(w.get_bytes("/report/partial"))["counters"]["events_read"]
                  for w in (first, second)]
        assert sum(shares) == n and all(shares), shares
        second.stop()
        assert first.wait_consumed(n, timeout=90) == expected
    finally:
        second.stop()
        first.stop()


def test_stale_alerts_escalate_and_resolve(broker, topic_prefix, tmp_path):
    worker = WorkerProcess(broker.url, topic_prefix, f"g-{topic_prefix}", tmp_path).start()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    names = topic_names(topic_prefix)

    def send(topic, event):
        producer.send(names[topic], key=event["lead_id"].encode(), value=orjson.dumps(event))
        producer.flush()

    def alerts_for(lead_id, count, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [orjson.loads(m.value) for m in read_topic(broker, names[NOTIFICATIONS])]
            got = [a for a in got if a["lead_id"] == lead_id]
            if len(got) >= count:
                return got
            time.sleep(0.5)
        raise AssertionError(f"{len(got)} alerts for {lead_id}:\n{worker.log_tail()}")

    try:
        # "new" goes stale after 3 days. In event-clock mode, T moves with other leads' events
        # of the same partition (alert time is per partition): "B4" is keyed to A's partition.
        send("crm.lead-created", {"type": "lead.created", "event_id": "a1", "lead_id": "A",
                                  "occurred_at": "2026-03-01T00:00:00Z", "owner": "maria",
                                  "attributes": {"email": "maria.client@example.com"}})
        send("crm.lead-created", {"type": "lead.created", "event_id": "b1", "lead_id": "B4",
                                  "occurred_at": "2026-03-04T01:00:00Z"})
        (first,) = alerts_for("A", 1)
        assert (first["type"], first["level"], first["severity"], first["stage"]) == ("lead.stale", 1, "warning", "new")
        assert first["since"] == "2026-03-01T00:00:00Z" and first["stale_after_days"] == 3.0
        assert "email" not in orjson.dumps(first).decode() and "attributes" not in first
        send("crm.stage-changed", {"type": "lead.stage_changed", "event_id": "b2", "lead_id": "B4",
                                   "occurred_at": "2026-03-07T01:00:00Z", "to_stage": "prospecting"})
        second = alerts_for("A", 2)[1]
        assert (second["type"], second["level"], second["severity"]) == ("lead.stale", 2, "high")
        assert second["alert_id"] != first["alert_id"]
        send("crm.stage-changed", {"type": "lead.stage_changed", "event_id": "a2", "lead_id": "A",
                                   "occurred_at": "2026-03-07T02:00:00Z", "to_stage": "prospecting"})
        resolved = alerts_for("A", 3)[2]
        assert resolved["type"] == "lead.stale_resolved"
        assert (resolved["resolved_by"], resolved["to_stage"], resolved["stage"]) == ("stage_changed", "prospecting", "new")
    finally:
        producer.close()
        worker.stop()
