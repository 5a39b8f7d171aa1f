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
recorded offsets in the state make that harmless (agents/live.py). Messages are
acked a `ProcessedBatch` at a time (faust_compat.ack_records: Faust's bookkeeping per
topic-partition, not per message), and each batch stands for its messages in Faust's
set of unacked messages, which Faust waits to see empty before a rebalance or a stop.

The consumer (`BatchingConsumer`) overrides a Faust internal, `Consumer._drain_messages`:
it lives with every other private Faust touch in agents/faust_compat.py, pinned by
tests/agents/test_faust_compat.py (upstream's source hash) and by the tests with a real broker
(tests/agents/test_worker.py: live == offline, kill -9 recovery, rebalancing between two workers).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable


class ProcessedBatch:
    """Input messages applied in one go, acked together once their effects are durable. It is
    also their place-holder in Faust's set of unacked messages (a WeakSet, read by Faust's
    `wait_empty`, which looks at `acked` and `refcount`)."""

    __slots__ = ("messages", "generation_id", "acked", "refcount", "__weakref__")

    def __init__(self, messages: list, generation_id: int):
        self.messages = messages
        self.generation_id = generation_id      # the consumer generation they were fetched in
        self.acked = False
        self.refcount = 0

    def __len__(self) -> int:
        return len(self.messages)


class DurableAcks:
    """Acks processed messages once their effects are durable.

    `processed(messages, generation)` after a batch was applied to the state; `output(record)` for
    each dead letter, `output(record, alert=True)` for each alert it produced. `flush()`
    (every FLUSH_EVERY_S, at once when an alert is waiting: `wake`, and on revocation)
    takes in one synchronous step the messages processed so far, their outputs and the
    state they changed (so the three match: which leads, and the counters record; the lead
    records may be encoded later, as they are written -- LivePulse.take_state), then writes, each time waiting for the
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
                 write_state: Callable[[Any], Awaitable[None]], ack: Callable[[ProcessedBatch], Any],
                 generation: Callable[[], int], yield_every: int = 1 << 62):
        self.take_state = take_state
        self.write_outputs = write_outputs
        self.write_state = write_state
        self.ack = ack
        self.generation = generation
        self.yield_every = yield_every      # messages acked per turn of the event loop (about)
        self._batches: list[ProcessedBatch] = []
        self._pending = 0
        self._outputs: list = []
        self._alerts: list = []
        self._lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.flushes = 0
        self.last_flush_s = 0.0

    @property
    def pending(self) -> int:
        """Messages processed and not yet acked."""
        return self._pending

    def processed(self, messages: list, generation_id: int) -> ProcessedBatch:
        """`messages` (of consumer generation `generation_id`) were applied: ack them with the next flush."""
        batch = ProcessedBatch(messages, generation_id)
        self._batches.append(batch)
        self._pending += len(messages)
        return batch

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
            batches, self._batches, self._pending = self._batches, [], 0
            outputs, self._outputs = self._outputs, []
            alerts, self._alerts = self._alerts, []
            state = self.take_state()
            if outputs:
                await self.write_outputs(outputs)
            await self.write_state(state)
            if alerts:
                await self.write_outputs(alerts)
            acked = since_yield = 0
            for batch in batches:
                # A batch of an older consumer generation belongs to an assignment that was
                # revoked; Faust refuses it a commit anyway (and the partition is re-read).
                if batch.generation_id == self.generation():
                    self.ack(batch)
                    batch.acked = True
                    acked += len(batch)
                since_yield += len(batch)
                if since_yield >= self.yield_every:
                    since_yield = 0
                    await asyncio.sleep(0)      # acking later is safe: the state is durable

            self.flushes += 1
            self.last_flush_s = time.monotonic() - started
            return acked
