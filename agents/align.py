"""Input messages of one partition, released in record-timestamp order across the input topics.

Why: the four input topics are co-partitioned, so partition p of each holds the same
leads, but the consumer fetches them by bytes per partition, and stage changes
outnumber creates and closes about 4 to 1: left alone, the topics drift apart in event
time, a lead's events reach the engine out of order, and the engine re-folds the lead
for every late one (measured: ~40 % of the worker's CPU). The result is the same either
way (the core handles late events exactly); this only saves the work.

The rule is Kafka Streams' timestamp synchronisation of a task's partitions
(max.task.idle.ms): the earliest head is released while every topic of the partition
has a buffered message; when a topic has none, the others wait for it only if it is
known to have more to fetch (lag > 0), and only for `max_idle_s`. A caught-up topic
never holds the others back, so a lone live event is released at once.

Memory: a topic-partition buffering more than `high` messages is paused at the fetcher
(`on_full`) and resumed (`on_drop`) when it is down to `low`.

Starvation: the fetcher hands over one topic-partition's prefetched records at a time, in
the order it fetched them (aiokafka's `fetched_records`, up to max_poll_records), so the
topic a partition waits for can sit behind other topic-partitions' records for seconds,
until the wait ends in enforced processing and the lead's events go out of order
(measured on the worker bench: 143,000 enforced releases and 120,000 re-folds in
501,817 events). So while a partition waits for a topic, every topic-partition that has
messages buffered is paused too: the next fetches go to those that have none.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable

from pulse.schemas.topics import SEQ_HEADER

# An input record as the worker holds it from its fetch to its ack: a plain tuple of atoms,
# (timestamp in ms, publisher's sequence, topic, partition, offset, key, value). CPython's
# collector stops tracking such a tuple at its first young collection, while a record object
# would be walked by every middle-generation collection as it waits here or for its flush
# (tens of thousands of them at full speed: most of those collections' pauses).
TS, SEQ, TOPIC, PARTITION, OFFSET, KEY, VALUE = range(7)

# lag(topic, partition): messages known to be on the broker and not yet fetched (0 when unknown)
Lag = Callable[[str, int], int]
Pause = Callable[[str, int], None]


def seq_of(message: Any) -> int:
    """The publisher's sequence number (header `pulse.seq`, 8 bytes big-endian; -1 when absent).

    It orders two topics' heads that have the same timestamp: `pulse replay` publishes
    thousands of records per millisecond, and without it same-millisecond records of
    different topics would be taken topic by topic, reordering a lead's events differently
    from one replay to the next (and so its alerts, which follow the partition's time).
    Read once per message, as it is fetched (`input_record`, faust_compat.InputRecords)."""
    headers = getattr(message, "headers", None)
    if headers:
        for key, value in (headers.items() if isinstance(headers, dict) else headers):
            if key == SEQ_HEADER:
                return int.from_bytes(value, "big")
    return -1


def input_record(record: Any) -> tuple:
    """The worker's tuple (TS, SEQ, ...) of a fetched record (aiokafka's ConsumerRecord: .timestamp in ms,
    .headers, .topic, .partition, .offset, .key, .value). The definition: the worker's fetcher
    makes the same tuple as it unpacks a fetch (faust_compat.InputRecords, tested against this)."""
    return (record.timestamp or 0, seq_of(record), record.topic, record.partition, record.offset,
            record.key, record.value)


def messages_behind(end: int, last: int | None) -> int:
    """Consumer lag: the messages of a partition after offset `last` (None: none taken yet)
    up to its end offset `end` (the broker's high-water mark, as last fetched). Never
    below 0: the embedded broker may report an end below the last offset taken."""
    return max(0, end - (last + 1 if last is not None else 0))


def _no_lag(topic: str, partition: int) -> int:
    return 0


def _nothing(topic: str, partition: int) -> None:
    return None


class TimeAligner:
    def __init__(self, topics: Iterable[str], *, max_idle_s: float = 0.1, lag: Lag = _no_lag,
                 high: int = 1_000, low: int = 250, on_full: Pause = _nothing, on_drop: Pause = _nothing):
        self.topics = list(topics)
        self.index = {t: i for i, t in enumerate(self.topics)}   # also the tie order: created < changed < closed
        self.max_idle_s = max_idle_s
        self.lag = lag
        self.high, self.low = high, low
        self.on_full, self.on_drop = on_full, on_drop
        self._queues: dict[int, list[deque]] = {}
        self._blocked_since: dict[int, float] = {}
        self._waiting: set[int] = set()     # partitions holding their messages for a lagging topic
        self._paused: set[tuple[str, int]] = set()

    def __len__(self) -> int:
        return sum(len(q) for qs in self._queues.values() for q in qs)

    def add(self, messages: Iterable[tuple]) -> None:
        """Buffer input records (`input_record`), in their fetch order."""
        queues = self._queues
        index = self.index
        n = len(self.topics)
        touched = set()
        for m in messages:
            p = m[PARTITION]
            qs = queues.get(p)
            if qs is None:
                qs = queues[p] = [deque() for _ in range(n)]
            i = index[m[TOPIC]]
            qs[i].append(m)
            touched.add((i, p))
        for i, p in touched:
            if len(queues[p][i]) > self.high and (self.topics[i], p) not in self._paused:
                self._paused.add((self.topics[i], p))
                self.on_full(self.topics[i], p)

    def release(self, now: float, limit: int = 1 << 62) -> list:
        """Up to about `limit` messages that may be processed now, in order (per partition)."""
        out: list = []
        for p, qs in self._queues.items():
            self._release_partition(p, qs, now, out, len(out) + max(1, limit // len(self._queues)))
        if self._paused or self._waiting:
            self._repause()
        return out

    def _repause(self) -> None:
        """Pause what buffers more than `high`, and, while a partition waits for a topic, whatever
        buffers anything (module docstring: starvation); resume the rest once down to `low`."""
        waiting = bool(self._waiting)
        for p, qs in self._queues.items():
            for i, q in enumerate(qs):
                n = len(q)
                key = (self.topics[i], p)
                if key in self._paused:
                    if n <= self.low and not (waiting and n):
                        self._paused.discard(key)
                        self.on_drop(*key)
                elif n > self.high or (waiting and n):
                    self._paused.add(key)
                    self.on_full(*key)

    def _release_partition(self, p: int, qs: list[deque], now: float, out: list, stop: int) -> None:
        append = out.append
        lagging: dict[int, bool] = {}      # per topic, asked once per call: a synchronous step
        heads = [q[0] if q else None for q in qs]      # each queue's head: ordered by (TS, SEQ)
        while len(out) < stop:
            best = best_head = None
            blocked = False
            for i, head in enumerate(heads):
                if head is not None:
                    if best_head is None or head[TS] < best_head[TS] or (
                            head[TS] == best_head[TS] and head[SEQ] < best_head[SEQ]):
                        best, best_head = i, head
                else:
                    if i not in lagging:
                        lagging[i] = self.lag(self.topics[i], p) > 0
                    blocked = blocked or lagging[i]
            if best is None:
                self._blocked_since.pop(p, None)
                self._waiting.discard(p)
                return
            if blocked:
                since = self._blocked_since.setdefault(p, now)
                if now - since < self.max_idle_s:
                    self._waiting.add(p)
                    return
                # waited long enough: release what there is (Kafka Streams' "enforced processing")
            else:
                self._blocked_since.pop(p, None)
            self._waiting.discard(p)
            q = qs[best]
            append(q.popleft())
            heads[best] = q[0] if q else None

    def clear(self) -> None:
        """Forget everything buffered (a rebalance: it is fetched again from the committed offsets)."""
        self._queues.clear()
        self._blocked_since.clear()
        self._waiting.clear()
        for topic, p in self._paused:
            self.on_drop(topic, p)
        self._paused.clear()
