"""Shared by the stale-detector and live-shell tests (tests/agents/test_stale_detector.py,
test_live_*.py): the default configuration, event-line builders, and LivePulse fed like Kafka
without a broker."""
from __future__ import annotations

import orjson

from pulse.agents.live import LivePulse
from pulse.config import load_config
from pulse.schemas.timestamps import parse_timestamp
from pulse.streams.engine import PulseEngine
from tests.support.kafka_feed import KafkaFeed

CFG = load_config(None)
DAY = 86_400_000_000


def ts(s: str) -> int:
    return parse_timestamp(s)


def created(eid, lead, at, **extra):
    return orjson.dumps({"type": "lead.created", "event_id": eid, "lead_id": lead, "occurred_at": at, **extra})


def moved(eid, lead, at, to):
    return orjson.dumps({"type": "lead.stage_changed", "event_id": eid, "lead_id": lead, "occurred_at": at,
                         "to_stage": to})


def engine_with(*lines) -> PulseEngine:
    engine = PulseEngine(CFG)
    for line in lines:
        engine.ingest(line)
    return engine


TYPE_OF_TOPIC = {"c": "lead.created", "s": "lead.stage_changed", "d": "deal.closed"}
TOPIC_OF_TYPE = {v: k for k, v in TYPE_OF_TOPIC.items()}


def write_dirty(live: LivePulse, changelog: list) -> None:
    """What the worker's flush writes (agents/app.py), appended to a list as (partition, key, value)."""
    for p, records in live.take_dirty().items():
        changelog.extend((p, k, v) for k, v in records)


class Fakes:
    def __init__(self):
        self.sent, self.changelog = [], []

    def live(self) -> LivePulse:
        return LivePulse(CFG, type_of_topic=TYPE_OF_TOPIC, clock="event",
                         send=lambda *a: self.sent.append(a), now_us=lambda: 0)

    def flush(self, live: LivePulse) -> None:
        write_dirty(live, self.changelog)


def feed(live, lines, start=0, stop=None):
    """Deliver lines[start:stop] as Kafka would: by type to a topic, all in partition 0 (offsets count
    over the whole sequence)."""
    for topic, offset, line in topic_offsets(lines)[start:stop]:
        live.on_message(topic, 0, offset, None, line)


def topic_offsets(lines):
    """(topic, offset, line) of each line, all in partition 0 (tests/support/kafka_feed.py)."""
    return [(topic, offset, line) for topic, _, offset, line in KafkaFeed(1, TOPIC_OF_TYPE).deliveries(lines)]
