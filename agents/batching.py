"""Input messages in batches, below Faust's per-event stream path; acks once durable.

Why: Faust hands each message to an agent through ~100-200 us of asyncio machinery
(a task pair per message in the consumer's drain loop, a lock and a queue in the
conductor, the stream iterator and its sensors); pulse's own work per event is ~10 us
(NOTES.md, and bench/bench_worker.py phase (a)). `BatchingConsumer` keeps the rest of
Faust as it is -- its aiokafka consumer thread, group membership and rebalancing, flow
control, offset commits, table recovery -- and changes one thing: messages of the
input topics skip the per-message path and reach one synchronous handler per fetch.
Messages of every other topic (table changelogs during recovery) still take Faust's path.

Offsets: Faust commits what was acked (`Consumer.ack`). `DurableAcks` acks a
message only after the state it changed, and what it produced (dead letters,
alerts), is acknowledged by the broker; so a commit never covers unwritten state and
no hook into Faust's commit is needed. A crash re-delivers what was not acked; the
recorded offsets in the state make that harmless (agents/live.py).

This relies on two Faust internals, both pinned by the tests with a real broker
(tests/test_worker.py: live == offline, kill -9 recovery, rebalancing between two
workers): `Consumer._drain_messages` (overridden) and `Consumer.getmany`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Iterable

import faust
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer

log = logging.getLogger("pulse.worker")

# handler(messages) -> more: takes a batch and processes some of what it holds, synchronously
# (no await: a rebalance cannot cut it); True when more is ready: called again with [] after a yield
BatchHandler = Callable[[list], bool]


class BatchingConsumer(AIOKafkaConsumer):
    """Faust's aiokafka consumer; messages of the app's `batch_topics` go to its `on_batch` in batches."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by the worker tests
        # Faust's loop (faust/transport/consumer.py), with the per-message
        # `wait_first(callback(message), suspend_flow.wait())` replaced by one call per
        # fetch for our topics. Gap tracking and commit_every are kept as they are.
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
                self.diag.set_flag("fetching")
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
                    self.diag.unset_flag("fetching")
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
        finally:
            self.diag.unset_flag("fetching")


class PulseApp(faust.App):
    """faust.App whose consumer is a BatchingConsumer: set `batch_topics` and `on_batch` before it starts."""

    batch_topics: frozenset[str] = frozenset()
    on_batch: BatchHandler = staticmethod(lambda messages: False)

    def _new_consumer(self) -> BatchingConsumer:
        return BatchingConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.transport.loop,
        )


class DurableAcks:
    """Acks processed messages once their effects are durable.

    `processed(messages)` after a batch was applied to the state; `output(record)` for
    each dead letter, `output(record, alert=True)` for each alert it produced. `flush()`
    (every FLUSH_EVERY_S, at once when an alert is waiting: `wake`, and on revocation)
    takes in one synchronous step the messages processed so far, their outputs and the
    state they changed (so the three match), then writes, each time waiting for the
    broker's acks: the dead letters, the state, the alerts; and only then acks the
    messages to Faust. Each write goes as record batches (one produce request per
    partition), not message by message.

    Why this order (a crash can fall between any two steps):
    - dead letters before the state: the state records the offsets as counted, and a
      restart skips counted offsets, so a dead letter must never be younger than them;
    - alerts after the state: the state then never lags behind the notifications topic.
      An alert that did not make it is raised again after a restart (LivePulse.restore
      sets each lead's alert memory from the topic: a resolution is re-published at
      restore, a stale level at the next check), with the same id. An alert ahead of its
      state could not be taken back: the restored lead would still sit in a stay the
      topic has resolved, and be raised stale, and resolved, again (issue 12).
    """

    def __init__(self, *, take_state: Callable[[], Any], write_outputs: Callable[[list], Awaitable[None]],
                 write_state: Callable[[Any], Awaitable[None]], ack: Callable[[Any], Any],
                 generation: Callable[[], int]):
        self.take_state = take_state
        self.write_outputs = write_outputs
        self.write_state = write_state
        self.ack = ack
        self.generation = generation
        self._messages: list = []
        self._outputs: list = []
        self._alerts: list = []
        self._lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.flushes = 0
        self.last_flush_s = 0.0

    @property
    def pending(self) -> int:
        """Messages processed and not yet acked."""
        return len(self._messages)

    def processed(self, messages: Iterable[Any]) -> None:
        self._messages.extend(messages)

    def output(self, record: Any, alert: bool = False) -> None:
        """A dead letter, or an alert (written after the state, and flushed at once)."""
        if alert:
            self._alerts.append(record)
            self.wake.set()
        else:
            self._outputs.append(record)

    async def flush(self) -> int:
        """Returns the number of messages acked."""
        async with self._lock:              # one flush at a time: revocation may call it too
            started = time.monotonic()
            self.wake.clear()
            messages, self._messages = self._messages, []
            outputs, self._outputs = self._outputs, []
            alerts, self._alerts = self._alerts, []
            state = self.take_state()
            if outputs:
                await self.write_outputs(outputs)
            await self.write_state(state)
            if alerts:
                await self.write_outputs(alerts)
            generation = self.generation()
            acked = 0
            for m in messages:
                # A message of an older consumer generation belongs to an assignment that
                # was revoked; Faust refuses it a commit anyway (and the partition is re-read).
                if m.generation_id == generation:
                    self.ack(m)
                    acked += 1
            self.flushes += 1
            self.last_flush_s = time.monotonic() - started
            return acked
