"""agents/faust_compat.py: the Faust internals the worker relies on are still the ones it was
written against, and the fetch loop logs what kills it (as upstream's does).

No broker: the app and its consumer are made, never started (tests/agents/test_worker.py runs
them against a real broker).
"""
from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import logging
from types import SimpleNamespace

import faust
import pytest
from faust.transport.consumer import CONSUMER_FETCHING

from pulse.agents import faust_compat
from pulse.agents.align import OFFSET, input_record
from pulse.agents.fast_http import FastPathHandler, PulseWeb
from pulse.agents.faust_compat import (FETCH_MAX_WAIT_MS, OVERRIDDEN, PRIVATE_ATTRIBUTES, REPLICATED, UPSTREAM,
                                       BatchingConsumer, InputRecords, PulseApp, PulseConsumerThread)


def _upstream(ref: str):
    module, qualname = ref.split(":")
    found = importlib.import_module(module)
    parts = qualname.split(".")
    if f"{module}:{parts[0]}" in UPSTREAM:      # replaced in its module by use_tuple_records
        found, parts = UPSTREAM[f"{module}:{parts[0]}"], parts[1:]
    for part in parts:
        found = getattr(found, part)
    return found


@pytest.mark.parametrize("ref", sorted(OVERRIDDEN) + sorted(REPLICATED))
def test_each_overridden_upstream_method_is_the_one_our_override_copies(ref):
    source = inspect.getsource(_upstream(ref))
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest == {**OVERRIDDEN, **REPLICATED}[ref], (
        f"Faust's {ref} changed (faust-streaming {faust.__version__}): agents/faust_compat.py overrides it "
        f"with an edited copy. Re-read the new upstream source, port its changes into the override (error "
        f"handling, offsets, flags, commit), run tests/agents/test_worker.py and tests/agents/test_batching.py, "
        f"then record the new hash {digest} in faust_compat.OVERRIDDEN.")


def test_the_overrides_listed_are_the_methods_faust_compat_overrides():
    ours = {"faust.transport.consumer:Consumer._drain_messages": BatchingConsumer._drain_messages,
            "faust.app.base:App._new_consumer": PulseApp._new_consumer,
            "aiokafka.consumer.fetcher:PartitionRecords._consumer_record": InputRecords._input_record,
            "faust.app.base:App._new_web": PulseApp._new_web,
            "faust.web.drivers.aiohttp:Web._new_transport_tcp": PulseWeb._new_transport_tcp,
            "aiohttp.web_protocol:RequestHandler.data_received": FastPathHandler.data_received,
            "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer":
                PulseConsumerThread._create_worker_consumer,
            "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread": BatchingConsumer._new_consumer_thread}
    assert set(ours) == set(OVERRIDDEN)
    for ref, method in ours.items():
        assert method is not _upstream(ref), f"{ref} is no longer overridden: drop it from OVERRIDDEN"


@pytest.fixture
def app():
    app = PulseApp("compat-test", broker="kafka://127.0.0.1:9", store="memory://", autodiscover=False,
                   web_enabled=False)
    yield app


def test_every_private_attribute_used_is_still_there(app):
    objects = {"consumer": app.consumer, "producer": app.producer, "table": app.Table("t", default=None)}
    assert isinstance(objects["consumer"], BatchingConsumer)
    for what, name in PRIVATE_ATTRIBUTES:
        # The producer's aiokafka producer is made at start: its class declares it.
        target = objects[what]
        assert hasattr(target, name) or name in getattr(type(target), "__annotations__", {}), (
            f"Faust {faust.__version__}: the {what} ({type(target).__module__}.{type(target).__qualname__}) has "
            f"no {name} any more; agents/faust_compat.py uses it. Find what replaced it upstream and adapt.")


def test_the_compat_helpers_read_what_they_name(app):
    table = app.Table("leads", default=None)
    faust_compat.use_raw_changelog(table)
    assert table.changelog_topic.key_serializer == table.changelog_topic.value_serializer == "raw"
    assert faust_compat.read_offset(app, "t", 0) is None
    app.consumer._read_offset[faust.types.TP("t", 0)] = 41
    assert faust_compat.read_offset(app, "t", 0) == 41
    assert faust_compat.aiokafka_producer(app) is app.producer._producer


def test_an_error_in_on_batch_is_logged_with_its_traceback_and_stops_the_fetch_loop(app, caplog):
    # A real BatchingConsumer, never started: only `_wait_next_records` (the broker's side) is
    # replaced, by one fetch of one message of an input topic.
    message = (1, -1, "crm.lead-created", 0, 0, None, b"{}")     # as InputRecords unpacks it

    flags_while_fetching = []

    async def wait_next_records(timeout):
        flags_while_fetching.append(set(consumer.diag.flags))
        return {faust.types.TP("crm.lead-created", 0): [message]}, None

    def on_batch(messages):
        raise ValueError(f"boom on {len(messages)} message(s)")

    app.batch_topics, app.on_batch = frozenset({"crm.lead-created"}), on_batch
    consumer = app.consumer
    consumer._wait_next_records = wait_next_records
    consumer.flow_active = True
    consumer.highwater = lambda tp: 1
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match="boom on 1 message"):
        asyncio.run(consumer._drain_messages(fetcher))
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Drain messages raised" in record.getMessage() and "boom on 1 message" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    assert consumer._read_offset[faust.types.TP("crm.lead-created", 0)] == 0     # the message was read
    assert flags_while_fetching == [{CONSUMER_FETCHING}] and not consumer.diag.flags     # upstream's flag


def _records(topic, partition, offsets):
    return [SimpleNamespace(topic=topic, partition=partition, offset=o) for o in offsets]


def _inputs(topic, partition, offsets):
    """As InputRecords hands them over (align.input_record)."""
    return [(0, -1, topic, partition, o, None, b"") for o in offsets]


def test_a_fetch_is_taken_after_the_read_offset_and_its_gaps_are_found(app):
    consumer, tp = app.consumer, faust.types.TP("in", 0)
    assert consumer._take_in_order(tp, _inputs("in", 0, [0, 1, 2]), True) == (_inputs("in", 0, [0, 1, 2]), [])
    assert consumer._read_offset[tp] == 2
    # a seek re-fetched 1-2; offset 4 is missing (a transaction marker, say), then 7-8 after 4 more
    taken, gaps = consumer._take_in_order(tp, _inputs("in", 0, [1, 2, 3, 5, 6, 11, 12]), True)
    assert [r[OFFSET] for r in taken] == [2, 3, 5, 6, 11, 12]        # as Faust: only those before it dropped
    assert gaps == [(4, 5), (7, 11)] and consumer._read_offset[tp] == 12
    taken, gaps = consumer._take_in_order(tp, _inputs("in", 0, [15, 16]), True)     # contiguous, after a gap
    assert gaps == [(13, 15)] and consumer._read_offset[tp] == 16
    assert consumer._take_in_order(tp, _inputs("in", 0, [3, 4]), True) == ([], [])
    assert consumer._read_offset[tp] == 16


def test_ack_records_keeps_fausts_bookkeeping_as_its_per_message_ack_would(app):
    """The same acked offsets, index and count as `Consumer.ack` per message (Faust commits from them)."""
    app.topics.acks_enabled_for = lambda topic: topic != "no-acks"
    ours, theirs = app.consumer, PulseApp("compat-ref", broker="kafka://127.0.0.1:9", store="memory://",
                                          autodiscover=False, web_enabled=False).consumer
    theirs.app.topics.acks_enabled_for = app.topics.acks_enabled_for
    for c in (ours, theirs):
        c._committed_offset[faust.types.TP("b", 1)] = 5      # committed: those below are not acked again
    first = _records("a", 0, [0, 1, 2]) + _records("b", 1, [4, 5, 6]) + _records("no-acks", 0, [0])
    again = _records("a", 0, [2, 3])                        # 2 twice: counted once
    as_taken = [(0, -1, r.topic, r.partition, r.offset, None, None) for r in first + again]    # align.input_record
    assert faust_compat.ack_records(ours, as_taken[:7]) == 5 and faust_compat.ack_records(ours, as_taken[7:]) == 1
    for r in first + again:
        theirs.ack(faust.types.Message(r.topic, r.partition, r.offset, 0.0, 0, {}, None, b"", None,
                                       tp=faust.types.TP(r.topic, r.partition)))
    assert ({tp: sorted(v) for tp, v in ours._acked.items() if v}
            == {tp: sorted(v) for tp, v in theirs._acked.items() if v}
            == {faust.types.TP("a", 0): [0, 1, 2, 3], faust.types.TP("b", 1): [5, 6]})
    assert ours._n_acked == theirs._n_acked == 6
    assert all(isinstance(tp, faust.types.TP) for tp in ours._acked)


def _fetched_batch() -> bytes:
    from aiokafka.record.default_records import DefaultRecordBatchBuilder
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    builder.append(0, timestamp=1_700_000_000_000, key=b"lead-1", value=b'{"type":"lead.created"}',
                   headers=[("pulse.seq", b"\x00\x00\x00\x00\x00\x00\x00\x07")])
    builder.append(1, timestamp=1_700_000_000_001, key=None, value=b"not json", headers=[])
    return bytes(builder.build())


def test_input_records_are_the_input_tuples_of_what_aiokafka_unpacks_and_the_collector_forgets(monkeypatch):
    import gc

    from aiokafka.record.memory_records import MemoryRecords
    from aiokafka.structs import ConsumerRecord, TopicPartition

    monkeypatch.setattr(InputRecords, "input_topics", frozenset({"crm.lead-created"}))

    def records(cls, topic, key_deserializer=None):
        return list(cls(TopicPartition(topic, 3), MemoryRecords(_fetched_batch()), [], 0,
                        key_deserializer, None, True, 0))

    upstream = UPSTREAM["aiokafka.consumer.fetcher:PartitionRecords"]
    theirs, ours = records(upstream, "crm.lead-created"), records(InputRecords, "crm.lead-created")
    assert ours == [input_record(r) for r in theirs] and len(ours) == 2
    assert ours[0][:3] == (1_700_000_000_000, 7, "crm.lead-created") and ours[1][1] == -1     # pulse.seq, or none
    upper = lambda key: key.upper() if key is not None else None    # noqa: E731  deserializers apply as upstream
    assert ([r[5] for r in records(InputRecords, "crm.lead-created", upper)]
            == [r.key for r in records(upstream, "crm.lead-created", upper)] == [b"LEAD-1", None])
    other = records(InputRecords, "leads-changelog")        # not an input topic: upstream's records
    assert all(type(r) is ConsumerRecord for r in other) and other == records(upstream, "leads-changelog")
    gc.collect()
    assert not any(gc.is_tracked(r) for r in ours)      # why: no collection walks them again
    assert all(gc.is_tracked(r) for r in theirs)


def test_the_worker_consumer_long_polls_fetch_max_wait_ms(app):
    """The aiokafka consumer the worker's thread makes waits FETCH_MAX_WAIT_MS per fetch (Faust's
    1,500 ms stalled the worker behind long polls), and aiokafka hands that to its fetcher."""
    import asyncio

    import aiokafka

    async def made():           # aiokafka's consumer wants a running loop
        thread = app.consumer._new_consumer_thread()
        consumer = thread._create_worker_consumer(app.transport)
        return thread, consumer._fetch_max_wait_ms
    thread, wait_ms = asyncio.run(made())
    assert isinstance(thread, PulseConsumerThread)
    assert wait_ms == FETCH_MAX_WAIT_MS < 1500
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.start)
