"""Every touch of Faust's and aiokafka's private parts, in one place.

The worker needs a few things Faust (and aiohttp under it) does not offer publicly: a consumer whose fetch loop
hands our input topics' messages over in batches (agents/batching.py says why), the
aiokafka producer under Faust's (to write record batches), the offset the consumer has
read up to (the aligner's lag), a table changelog topic made again with raw bytes, and a
web server whose protocol answers GET /metrics itself (agents/fast_http.py, the one other
module touching private parts: its overrides are pinned here too). Each is reached here,
and only here; the rest of agents/ calls the functions below.

A Faust upgrade can change any of these silently. tests/agents/test_faust_compat.py fails
loudly instead: the source of each upstream method we override is hashed and compared
with `OVERRIDDEN` (re-read upstream's new code and port its changes into ours, then
record the new hash), and each private attribute in `PRIVATE_ATTRIBUTES` must still
exist. Both were checked against faust-streaming 0.15.3.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import faust
from aiokafka.consumer import fetcher as aiokafka_fetcher
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from pulse.schemas.topics import SEQ_HEADER

from .align import OFFSET, PARTITION, TOPIC

# handler(messages) -> more: takes a batch and processes some of what it holds, synchronously
# (no await: a rebalance cannot cut it); True when more is ready: called again with [] after a yield
BatchHandler = Callable[[list], bool]

# "module:qualname" of each upstream method overridden below -> sha256 of its source
# (inspect.getsource) in the Faust version our override was written against.
OVERRIDDEN = {
    "faust.transport.consumer:Consumer._drain_messages":
        "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417",
    "faust.app.base:App._new_consumer":
        "bff6ccd646b71ea99a7e7a7d1c62adbf3d34432a0b42a39e6f60b4c0307d89c8",
    "aiokafka.consumer.fetcher:PartitionRecords._consumer_record":
        "e668541600b047ab928a9008b54c00951d9ae7e2a11b82e7b00f3a5d71b0cc0c",
    # agents/fast_http.py: GET /metrics answered in aiohttp's protocol
    "faust.app.base:App._new_web":
        "9558ffdcacfa13bdfca5632f86d96901677c084bf2fe697bc7ef2162f9aa5a75",
    "faust.web.drivers.aiohttp:Web._new_transport_tcp":
        "3f9463d869f309eca590868c95441621aa1566545236e18149d7c5e70498a92f",
    "aiohttp.web_protocol:RequestHandler.data_received":
        "1ee57ebe052e6c80ced26c96e4ccb1223172e1d55afba460353c5e414914d3f6",
    # the fetch long-poll (FETCH_MAX_WAIT_MS): the aiokafka consumer Faust makes, with a shorter wait
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._create_worker_consumer":
        "c2701bfc3e6f6cad95c2be36d6a255a86e2c57d18d36cc1082b5fb5c482d99d7",
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread":
        "0870ec53dea75083995e3565c0f0a25a1c63ecceaeb238e92e2585e3623af5a9",
}
# Upstream classes as they were when this module was imported (before use_input_records replaced one).
UPSTREAM = {"aiokafka.consumer.fetcher:PartitionRecords": aiokafka_fetcher.PartitionRecords}

# Upstream methods whose body is copied (edited) here rather than overridden, pinned the same way:
# Consumer.getmany is inlined in BatchingConsumer._drain_messages, Consumer.ack in ack_records.
REPLICATED = {
    "faust.transport.consumer:Consumer.getmany":
        "4b168d84882a70d6e3e2f9804430a63b92f8fd117d3187cbb4aeb54305bda34e",
    "faust.transport.consumer:Consumer.ack":
        "5fcf41cf45153475de3790dc56fec1b83335956dc8b3bf7ff6bbb2b57627f03f",
    # fast_http._FastSite.start is TCPSite.start with our protocol; FastPathHandler._pulse_kept_alive
    # does what RequestHandler.start does after a kept-alive response.
    "aiohttp.web_runner:TCPSite.start":
        "0baaeca3d4f956ad5e5e05e7379dce04b117f2386f53640463e7879325d8c654",
    "aiohttp.web_protocol:RequestHandler.start":
        "2e565fd40c8e04fb3afb481d5ba52691a61d28396573b4b8a4cf3b168782288e",
}

# (what, private attribute): every private name used here besides the overrides.
PRIVATE_ATTRIBUTES = (
    ("consumer", "_read_offset"),           # read_offset(), and the fetch loop
    ("consumer", "_stopped"),               # the fetch loop (also the fetcher's)
    ("consumer", "_commit_every"),          # the fetch loop
    ("consumer", "_n_acked"),               # the fetch loop, ack_records()
    ("consumer", "_add_gap"),               # the fetch loop
    ("consumer", "_wait_next_records"),     # the fetch loop (as Consumer.getmany)
    ("consumer", "_buffered_partitions"),   # the fetch loop (as Consumer.getmany)
    ("consumer", "_to_message"),            # the fetch loop, for records of other topics
    ("consumer", "_committed_offset"),      # ack_records()
    ("consumer", "_acked"),                 # ack_records()
    ("consumer", "_acked_index"),           # ack_records()
    ("consumer", "_waiting_for_ack"),       # ack_records()
    ("producer", "_producer"),              # aiokafka_producer()
    ("table", "_new_changelog_topic"),      # use_raw_changelog()
)


# How long a fetch may wait at the broker for data (Faust hard-codes 1,500 ms). aiokafka keeps
# one fetch in flight per broker, and the partitions whose records wait in its buffer are left
# out of the next request: near the end of a backlog a request can hold only partitions with
# nothing new, and the partitions with data wait behind its long poll. On the worker bench
# (501,817 events) that stalled the worker 2-3 times a run for 0.3-0.9 s (CPU under 0.6); with
# 100 ms, no stall over 0.25 s (figures: bench/README.md, "pulse against Quix Streams"). The
# price: an idle worker sends ~10 fetch requests a second instead of ~0.7 (Kafka's default: 500 ms).
FETCH_MAX_WAIT_MS = 100


class PulseConsumerThread(AIOKafkaConsumerThread):
    """Faust's thread running aiokafka, whose consumer long-polls FETCH_MAX_WAIT_MS at most."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS      # read by AIOKafkaConsumer.start()
        return consumer


class BatchingConsumer(AIOKafkaConsumer):
    """Faust's aiokafka consumer; messages of the app's `batch_topics` go to its `on_batch` in batches,
    in fetch order, each as a plain tuple (align.input_record, made by InputRecords as aiokafka
    unpacks the fetch: use_input_records). Faust's `getmany` would wrap each in a Faust message
    and read the high-water mark per record (~7 % of the worker's CPU, measured with py-spy):
    here that is done per topic-partition of a fetch, and records of other topics (table
    changelogs during recovery) still become Faust messages and take Faust's path."""

    def _new_consumer_thread(self) -> PulseConsumerThread:
        return PulseConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by the worker tests
        # Faust's loop (faust/transport/consumer.py, Consumer._drain_messages, with the body of
        # Consumer.getmany inlined), with the per-message `wait_first(callback(message),
        # suspend_flow.wait())` replaced by one call per fetch for our topics. Gap tracking,
        # commit_every, the diagnostic flag, the generation and flow checks and the error
        # handling are kept as they are.
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        batch_topics = self.app.batch_topics
        on_batch = self.app.on_batch
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                batch: list = []
                await self.sleep(0)
                if not self.should_stop:
                    generation = self.app.consumer_generation_id
                    records, active = await self._wait_next_records(1.0)
                    if records is not None and not self.should_stop:
                        if not self.flow_active:
                            await self._seek_back()
                        for tp, tp_records in records.items():
                            if not self.flow_active or self.app.consumer_generation_id != generation:
                                break
                            if not (active is None or tp in active or tp in self._buffered_partitions):
                                continue
                            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                            if tp.topic in batch_topics:
                                tp_records, gaps = self._take_in_order(tp, tp_records, acks_enabled_for(tp.topic))
                                for start, end in gaps:
                                    await self._add_gap(tp, start, end)
                                batch += tp_records     # already input tuples (InputRecords)
                                continue
                            for record in tp_records:
                                message = self._to_message(tp, record)
                                offset = message.offset
                                r_offset = get_read_offset(tp)
                                if r_offset is not None and offset < r_offset:
                                    continue            # Faust drops these too (re-fetched after a seek)
                                if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                                    await self._add_gap(tp, r_offset + 1, offset)
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                                set_read_offset(tp, offset)
                    self.diag.unset_flag(CONSUMER_FETCHING)
                    if self.app.consumer_generation_id != generation:
                        batch = []          # fetched before a rebalance: re-read from the committed offsets
                more = on_batch(batch)      # also when empty: buffered messages may be due
                await asyncio.sleep(0)
                while more and not self.should_stop:
                    more = on_batch([])
                    await asyncio.sleep(0)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            # As upstream: the fetcher dies with this, so say why (and where) before it does.
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    def _take_in_order(self, tp: TP, records: list, track_gaps: bool) -> tuple[list, list[tuple[int, int]]]:
        """A topic-partition's fetched input records (InputRecords' tuples) after the last one
        read (Faust drops those before it: re-fetched after a seek), and the gaps in their offsets
        (first, last) as Faust's loop finds them (acked on commit: a gap holds no message). Sets
        the read offset to the last record's. Per record only when the offsets are not contiguous."""
        r_offset = self._read_offset[tp]
        if r_offset is not None and records and records[0][OFFSET] < r_offset:
            records = [r for r in records if r[OFFSET] >= r_offset]
        if not records:
            return records, []
        gaps = []
        if track_gaps:
            previous = r_offset
            if records[-1][OFFSET] - records[0][OFFSET] != len(records) - 1:     # not contiguous
                for record in records:
                    if previous and record[OFFSET] - previous > 1:
                        gaps.append((previous + 1, record[OFFSET]))
                    previous = record[OFFSET]
            elif previous and records[0][OFFSET] - previous > 1:
                gaps.append((previous + 1, records[0][OFFSET]))
        self._read_offset[tp] = records[-1][OFFSET]
        return records, gaps

    async def _seek_back(self) -> None:
        # As Faust's getmany when the flow stopped (a rebalance) while it fetched.
        self.log.dev("getmany called while flow not active. Seek back to committed offsets.")
        try:
            await self.perform_seek()
        except Exception as ex:
            self.log.warning(f"exception performing seek when flow not active {ex}")


class InputRecords(aiokafka_fetcher.PartitionRecords):
    """aiokafka's PartitionRecords; a record of an input topic is unpacked straight into the
    worker's input tuple (align.input_record), other topics' into ConsumerRecords as upstream.

    A ConsumerRecord is a dataclass instance: a Python-level __init__ per record, which the fetch
    loop then turned into the tuple, and an object the cyclic collector tracks. A fetch hands over
    up to MAX_POLL_RECORDS of them, alive until the fetch loop reads them, so each was walked by a
    young collection and then by a middle one (gc callbacks at 130,000 leads, full speed: 4,000-
    16,000 ConsumerRecords, and as many header tuples, of the ~40,000 objects of each middle
    collection, the event loop's longest pauses). A tuple of atoms is made in C and untracked by
    the first collection that sees it."""

    input_topics: frozenset[str] = frozenset()      # set by use_input_records

    def __init__(self, tp, *args, **kwargs):
        super().__init__(tp, *args, **kwargs)
        if tp.topic in self.input_topics:
            self._consumer_record = self._input_record

    def _input_record(self, tp, record) -> tuple:
        # As upstream's _consumer_record (pinned in OVERRIDDEN), then align.input_record.
        key, value = record.key, record.value
        if self._key_deserializer:
            key = self._key_deserializer(key)
        if self._value_deserializer:
            value = self._value_deserializer(value)
        seq = -1
        for name, data in record.headers:
            if name == SEQ_HEADER:
                seq = int.from_bytes(data, "big")
                break
        return (record.timestamp or 0, seq, tp.topic, tp.partition, record.offset, key, value)


def use_input_records(input_topics: frozenset[str]) -> None:
    """Make every aiokafka fetcher of this process unpack `input_topics`' records as InputRecords
    (the alert feed's and the changelog reader's consumers read other topics: unchanged)."""
    InputRecords.input_topics = frozenset(input_topics)
    aiokafka_fetcher.PartitionRecords = InputRecords


class PulseApp(faust.App):
    """faust.App whose consumer is a BatchingConsumer (set `batch_topics` and `on_batch` before it
    starts) and whose web driver is fast_http.PulseWeb (add to `app.web.fast_routes`)."""

    batch_topics: frozenset[str] = frozenset()
    on_batch: BatchHandler = staticmethod(lambda messages: False)

    def _new_web(self):
        # Upstream's App._new_web for the one driver the worker uses: ours answers GET /metrics
        # in the protocol (agents/fast_http.py).
        from .fast_http import PulseWeb
        return PulseWeb(self)

    def _new_consumer(self) -> BatchingConsumer:
        # Upstream's App._new_consumer, with our consumer class in place of the transport's.
        return BatchingConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.transport.loop,
        )


def ack_records(consumer: Any, records: list) -> int:
    """Faust's `Consumer.ack` for many input records (align.input_record tuples) at once: the same
    bookkeeping -- the acked offsets per topic-partition that Faust's commit reads -- per
    topic-partition instead of per message (a Faust ack is ~1.5 us a message). Returns how many
    offsets were newly acked."""
    by_tp: dict[tuple[str, int], list[int]] = {}
    for record in records:
        key = (record[TOPIC], record[PARTITION])
        offsets = by_tp.get(key)
        if offsets is None:
            offsets = by_tp[key] = []
        offsets.append(record[OFFSET])
    acked = 0
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    with ack_lock:
        try:
            for (topic, partition), offsets in by_tp.items():
                if not acks_enabled_for(topic):
                    continue
                tp = TP(topic, partition)
                committed = consumer._committed_offset[tp]
                if committed is not None and min(offsets) < committed:
                    offsets = [offset for offset in offsets if offset >= committed]
                index = consumer._acked_index[tp]
                if not index.isdisjoint(offsets):
                    offsets = [offset for offset in offsets if offset not in index]
                index.update(offsets)
                consumer._acked[tp].extend(offsets)
                consumer._n_acked += len(offsets)
                acked += len(offsets)
        finally:
            notify(consumer._waiting_for_ack)
    return acked


def read_offset(app: faust.App, topic: str, partition: int) -> int | None:
    """The offset of the last message the consumer fetched from the topic-partition
    (None: nothing yet since it was assigned)."""
    return app.consumer._read_offset.get(TP(topic, partition))


def aiokafka_producer(app: faust.App) -> Any:
    """The aiokafka producer under Faust's (started with the app): it writes record batches."""
    return app.producer._producer


def use_raw_changelog(table: Any) -> None:
    """Make the table's keys and values opaque bytes, changelog topic included.

    Faust derives a table's serializers from its key/value types and falls back to
    JSON; the changelog topic was already made with JSON in the constructor, so it is
    made again with raw bytes."""
    table.key_serializer = table.value_serializer = "raw"
    table.changelog_topic = table._new_changelog_topic()
