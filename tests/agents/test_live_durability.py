"""The live shell's durability logic, without a broker: dead letters, flush and restore, crashes
between writes, alerts exactly once across restarts, the wall and event clocks.

Shared builders and the Kafka-like feed in tests/support/live_cases.py.
"""
from __future__ import annotations

import msgspec
import orjson

from pulse.agents.live import LEAD_RECORD, PARTITION_RECORD, LivePulse
from pulse.dev.synth import generate
from tests.support.live_cases import (
    CFG,
    TYPE_OF_TOPIC,
    Fakes,
    created,
    engine_with,
    feed,
    topic_offsets,
    ts,
    write_dirty,
)


# -- the live shell --------------------------------------------------------------------------

def test_dead_letters_carry_reason_and_source_and_the_original_bytes():
    fakes = Fakes()
    live = fakes.live()
    live.restore([0], [])
    live.on_message("s", 0, 7, b"L", b'{"type": "lead.created", "event_id": "x", "lead_id": "L", '
                                     b'"occurred_at": "2026-03-01T00:00:00Z"}')
    ((role, key, value, partition, headers),) = fakes.sent
    assert (role, key, partition) == ("deadletter", b"L", 0) and value.startswith(b'{"type": "lead.created"')
    headers = dict(headers)
    detail = headers.pop("pulse.detail").decode()
    assert headers == {"pulse.reason": b"invalid_event", "pulse.source.topic": b"s", "pulse.source.partition": b"0",
                       "pulse.source.offset": b"7"}
    # the detail names the field at fault and what the topic carries, never a value of the event
    assert detail.startswith("type:") and "lead.stage_changed" in detail and '"L"' not in detail


def test_flush_writes_leads_then_the_counters_and_restore_reproduces_the_report():
    lines = list(generate(leads=40, seed=2, duplicates=0.05, late=0.1, invalid=0.05))
    fakes = Fakes()
    live = fakes.live()
    live.restore([0], [])
    for topic, offset, line in topic_offsets(lines):
        live.on_message(topic, 0, offset, None, line)
    fakes.flush(live)
    kinds = [msgspec.msgpack.decode(v)[0] for _, _, v in fakes.changelog]
    assert kinds[-1] == PARTITION_RECORD and set(kinds[:-1]) == {LEAD_RECORD}
    expected = live.report()
    again = Fakes().live()
    again.restore([0], [(k, v) for _, k, v in fakes.changelog])
    assert again.report() == expected
    # Re-delivery of everything (offsets not committed) changes nothing: all skipped.
    for topic, offset, line in topic_offsets(lines):
        assert again.on_message(topic, 0, offset, None, line) == "skipped"
    assert again.report() == expected


def test_a_crash_between_lead_writes_and_the_counters_record_counts_nothing_twice():
    lines = list(generate(leads=30, seed=3, duplicates=0.05))
    routed = topic_offsets(lines)
    half = len(routed) // 2
    fakes = Fakes()
    live = fakes.live()
    live.restore([0], [])
    for topic, offset, line in routed[:half]:
        live.on_message(topic, 0, offset, None, line)
    fakes.flush(live)
    durable = len(fakes.changelog)
    for topic, offset, line in routed[half:]:
        live.on_message(topic, 0, offset, None, line)
    fakes.flush(live)
    expected = live.report()
    # The crash: the second flush's lead records made it, its counters record did not.
    survived = fakes.changelog[:-1]
    assert len(survived) > durable
    again = Fakes().live()
    again.restore([0], [(k, v) for _, k, v in survived])
    for topic, offset, line in routed:            # Kafka re-delivers from the last commit (here: the start)
        again.on_message(topic, 0, offset, None, line)
    assert again.report() == expected


def test_a_lead_record_encoded_after_more_input_then_a_crash_before_the_counters_counts_nothing_twice():
    """LivePulse.take_state fixes which leads a flush writes and its counters record; each lead's
    record is encoded as the flush writes it, after more input may have changed the lead. A crash
    before the counters record is written leaves lead records ahead of the counters: the
    re-delivered input must still count once."""
    lines = list(generate(leads=30, seed=5, duplicates=0.05))
    routed = topic_offsets(lines)
    third = len(routed) // 3
    live = Fakes().live()
    live.restore([0], [])
    for topic, offset, line in routed[:2 * third]:
        live.on_message(topic, 0, offset, None, line)
    taken = live.take_state()[0]                    # the flush starts: counters as of 2/3 of the input
    for topic, offset, line in routed[2 * third:]:  # more input is applied between its turns
        live.on_message(topic, 0, offset, None, line)
    written = list(taken)                           # ... and then its lead records are encoded
    changed_since = {k for k, v in written[:-1]} & {k for k, v in live.take_dirty()[0][:-1]}
    assert changed_since                            # some leads were written ahead of the counters
    expected = live.report()
    again = Fakes().live()
    again.restore([0], written[:-1])                # the crash: the counters record did not make it
    results = [again.on_message(topic, 0, offset, None, line) for topic, offset, line in routed]
    assert "redelivered" in results and again.report() == expected


def test_restart_raises_each_alert_exactly_once_whatever_the_flush_missed():
    lines = [created("a", "A", "2026-03-01T00:00:00Z"), created("b", "B", "2026-03-04T01:00:00Z"),
             created("c", "C", "2026-03-08T01:00:00Z")]
    fakes = Fakes()
    live = fakes.live()
    live.restore([0], [])
    feed(live, lines, 0, 1)
    fakes.flush(live)                                     # A durable, before any alert
    feed(live, lines, 1, 2)
    live.tick()                                           # T = Mar 4 01:00: A level 1 published ...
    published = [v for role, _, v, _, _ in fakes.sent if role == "notifications"]
    assert [orjson.loads(v)["level"] for v in published] == [1]
    # ... and the worker dies before flushing. Restart from the changelog and the topic:
    again = Fakes()
    restarted = again.live()
    restarted.restore([0], [(k, v) for _, k, v in fakes.changelog], published)
    feed(restarted, lines, 1, 2)                           # B re-delivered from the last commit
    restarted.tick()                                       # T is back at Mar 4 01:00: A is at level 1 ...
    assert [m for role, _, m, _, _ in again.sent if role == "notifications"] == []   # ... already said
    feed(restarted, lines, 2, 3)
    restarted.tick()
    after = [orjson.loads(v) for role, _, v, _, _ in again.sent if role == "notifications"]
    assert [a["level"] for a in after if a["lead_id"] == "A"] == [2]
    assert [a["level"] for a in after if a["lead_id"] == "B"] == [1]     # B went stale meanwhile


def test_wall_clock_holds_events_dated_after_now_until_the_clock_gets_there():
    clock = [ts("2026-03-01T12:00:00Z")]
    changelog = []
    live = LivePulse(CFG, type_of_topic=TYPE_OF_TOPIC, clock="wall", send=lambda *a: None,
                     now_us=lambda: clock[0])
    live.restore([0], [])
    live.on_message("c", 0, 0, None, created("a", "A", "2026-03-01T11:00:00Z"))
    assert live.on_message("c", 0, 1, None, created("b", "B", "2026-03-01T12:00:05Z")) == "held"   # 5 s ahead
    doc = live.report()
    assert (doc["data_quality"]["after_as_of"], doc["data_quality"]["applied"], doc["pipelines"]["default"]["open"]["count"]) == (1, 1, 1)
    write_dirty(live, changelog)
    restarted = LivePulse(CFG, type_of_topic=TYPE_OF_TOPIC, clock="wall", send=lambda *a: None,
                          now_us=lambda: clock[0])
    restarted.restore([0], [(k, v) for _, k, v in changelog])
    assert restarted.report() == doc                     # the held event survived the restart, still held
    clock[0] += 6_000_000
    restarted.tick()
    doc = restarted.report()
    assert (doc["data_quality"]["after_as_of"], doc["data_quality"]["applied"], doc["pipelines"]["default"]["open"]["count"]) == (0, 2, 2)



def test_report_time_is_now_on_the_wall_clock_and_the_latest_event_in_the_report_on_the_event_clock():
    now = ts("2026-03-10T00:00:00Z")
    for clock in ("wall", "event"):
        live = LivePulse(CFG, type_of_topic=TYPE_OF_TOPIC, clock=clock, send=lambda *a: None, now_us=lambda: now)
        live.restore([0, 1], [])
        assert live.report_as_of(live.merged_engine()) == now               # nothing read yet: now
        live.on_message("c", 0, 0, None, created("a", "A", "2026-03-01T11:00:00Z"))
        merged = live.merged_engine()
        merged.merge(engine_with(created("b", "B", "2026-03-02T00:00:00Z")))     # a peer's share, later
        assert live.report_as_of(merged) == (now if clock == "wall" else ts("2026-03-02T00:00:00Z"))
        assert live.report_as_of(live.merged_engine()) == (now if clock == "wall" else ts("2026-03-01T11:00:00Z"))
