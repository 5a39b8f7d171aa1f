"""A LivePulse fed as Kafka would feed it, in process (no broker): the one harness of the
tests that drive the worker's live shell directly.

Lines go to topics by type and to partitions by lead_id (`route`), and each
topic-partition numbers its messages from 0, as a fresh topic's offsets (`KafkaFeed`).
`Worker` adds what agents/app.py wires around the LivePulse for GET /metrics (processing
stats and the registry).
"""
from __future__ import annotations

import time
import zlib
from collections import Counter
from typing import Iterable, Mapping

import orjson

from pulse.agents.live import LivePulse
from pulse.agents.metrics import ProcessingStats, make_registry, render
from pulse.config import load_config
from pulse.synth import generate
from pulse.topics import TOPIC_OF_TYPE

CFG = load_config(None)
TYPE_OF_TOPIC = {topic: kind for kind, topic in TOPIC_OF_TYPE.items()}


def route(line: bytes, partitions: int, topic_of_type: Mapping[str, str] = TOPIC_OF_TYPE) -> tuple[str, int]:
    """(topic, partition) of an input line: the topic of its type (no type, an unknown one, or
    not a JSON object: the lead.created topic), the partition crc32(lead_id) (no string
    lead_id: 0)."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        return topic_of_type["lead.created"], 0
    kind, lead = doc.get("type"), doc.get("lead_id")
    topic = topic_of_type.get(kind, topic_of_type["lead.created"]) if isinstance(kind, str) \
        else topic_of_type["lead.created"]
    return topic, (zlib.crc32(lead.encode()) % partitions if isinstance(lead, str) else 0)


class KafkaFeed:
    """Routes lines (`route`) and numbers them per topic-partition from 0."""

    def __init__(self, partitions: int = 4, topic_of_type: Mapping[str, str] = TOPIC_OF_TYPE):
        self.partitions = partitions
        self.topic_of_type = dict(topic_of_type)
        self.offsets: Counter = Counter()
        self.lines: list[bytes] = []        # every line offered to `feed`, delivered or not

    def route(self, line: bytes) -> tuple[str, int]:
        return route(line, self.partitions, self.topic_of_type)

    def next_offset(self, topic: str, partition: int) -> int:
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] += 1
        return offset

    def deliveries(self, lines: Iterable[bytes]) -> list[tuple[str, int, int, bytes]]:
        """(topic, partition, offset, line) of each line, in order."""
        out = []
        for line in lines:
            topic, partition = self.route(line)
            out.append((topic, partition, self.next_offset(topic, partition), line))
        return out

    def feed(self, lines: Iterable[bytes], *lives: LivePulse, only: set[int] | None = None) -> None:
        """Deliver each line to the LivePulse holding its partition (one LivePulse: to it). With
        `only`, lines of other partitions are not delivered and take no offset."""
        for line in lines:
            self.lines.append(line)
            topic, partition = self.route(line)
            if only is not None and partition not in only:
                continue
            offset = self.next_offset(topic, partition)
            live = lives[0] if len(lives) == 1 else next(lv for lv in lives if partition in lv.partitions)
            live.on_message(topic, partition, offset, None, line)


def make_live(config, partitions: Iterable[int], type_of_topic: Mapping[str, str] = TYPE_OF_TOPIC) -> LivePulse:
    """A ready LivePulse (event clock) holding `partitions`, its output thrown away."""
    live = LivePulse(config, type_of_topic=dict(type_of_topic), clock="event", send=lambda *a: None,
                     now_us=lambda: 0)
    live.ready = True
    for p in partitions:
        live.partitions[p] = live._new_state(p)
    return live


def messy_lines(leads=150, seed=7) -> list[bytes]:
    return list(generate(leads=leads, seed=seed, duplicates=0.05, late=0.1, implicit=0.03, invalid=0.05,
                         offsets=0.2))


class Worker:
    """A LivePulse holding some partitions, with the wiring of agents/app.py's agent loop."""

    def __init__(self, config=CFG, clock="event", now_us=None):
        self.sent = []
        self.live = LivePulse(config, type_of_topic=dict(TYPE_OF_TOPIC), clock=clock,
                              send=lambda *a: self.sent.append(a),
                              now_us=now_us or (lambda: time.time_ns() // 1000))
        self.live.ready = True
        self.stats = ProcessingStats()
        self.registry = make_registry(self.live, self.stats, config, clock=clock, process_metrics=False)
        self.kafka = KafkaFeed()

    def feed(self, topic: str, partition: int, value: bytes) -> str:
        offset = self.kafka.next_offset(topic, partition)
        started = time.perf_counter_ns()
        result = self.live.on_message(topic, partition, offset, None, value)
        self.stats.observe(topic, result, time.perf_counter_ns() - started)
        return result

    def exposition(self) -> bytes:
        return render(self.registry)

    def report(self) -> dict:
        engine = self.live.merged_engine()
        as_of = self.live.clock_us() if self.live.clock == "wall" else (engine.max_ts or self.live.clock_us())
        return orjson.loads(orjson.dumps(engine.report(as_of=as_of)))
