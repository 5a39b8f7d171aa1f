"""Every touch of Faust's and aiokafka's private parts, in one place.

The worker needs a few things Faust does not offer publicly: a consumer whose fetch loop
hands our input topics' messages over in batches (agents/batching.py says why), the
aiokafka producer under Faust's (to write record batches), the offset the consumer has
read up to (the aligner's lag), and a table changelog topic made again with raw bytes.
Each is reached here, and only here; the rest of agents/ calls the functions below.

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
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP

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
}

# (what, private attribute): every private name used here besides the overrides.
PRIVATE_ATTRIBUTES = (
    ("consumer", "_read_offset"),           # read_offset(), and the fetch loop
    ("consumer", "_stopped"),               # the fetch loop (also the fetcher's)
    ("consumer", "_commit_every"),          # the fetch loop
    ("consumer", "_n_acked"),               # the fetch loop
    ("consumer", "_add_gap"),               # the fetch loop
    ("producer", "_producer"),              # aiokafka_producer()
    ("table", "_new_changelog_topic"),      # use_raw_changelog()
)


class BatchingConsumer(AIOKafkaConsumer):
    """Faust's aiokafka consumer; messages of the app's `batch_topics` go to its `on_batch` in batches."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by the worker tests
        # Faust's loop (faust/transport/consumer.py, Consumer._drain_messages), with the
        # per-message `wait_first(callback(message), suspend_flow.wait())` replaced by one
        # call per fetch for our topics. Gap tracking, commit_every, the diagnostic flag and
        # the error handling are kept as they are.
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
                    async for tp, message in self.getmany(timeout=1.0):
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is not None and offset < r_offset:
                            continue                    # Faust drops these too (re-fetched after a seek)
                        if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if message.topic in batch_topics:
                            batch.append(message)
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    self.diag.unset_flag(CONSUMER_FETCHING)
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


class PulseApp(faust.App):
    """faust.App whose consumer is a BatchingConsumer: set `batch_topics` and `on_batch` before it starts."""

    batch_topics: frozenset[str] = frozenset()
    on_batch: BatchHandler = staticmethod(lambda messages: False)

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
