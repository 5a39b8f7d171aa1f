"""Reading `pipeline.notifications` with a plain aiokafka consumer group.

Why not a Faust agent: the notifier has no stream state (its memory is the Redis
ledger), and its jobs finish out of order (one queue per Slack channel, a channel
may sit out a Retry-After). An offset may be committed only once every job of that
message and of all earlier messages of its partition is done; with aiokafka the
commit is ours to place (`enable_auto_commit=False`), Faust acks as its stream
advances. It is also a much smaller runtime (NOTES: Faust's per-event cost, slow
group joins).

Commits: per partition, the offset after the longest run of finished messages, every
`commit_interval` seconds, on revocation (after waiting briefly for the partition's
jobs) and at shutdown. What is not committed is delivered again after a restart or
a rebalance; the ledger makes that harmless. Fetching pauses while `max_in_flight`
jobs are outstanding (a stuck channel cannot grow memory without bound).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from .notifier import Notifier

log = logging.getLogger("pulse.slack")


class _Partition:
    """Offsets of one assigned partition that are consumed but not yet committable."""

    def __init__(self) -> None:
        self.revoked = False
        self.order: deque[int] = deque()
        self.left: dict[int, int] = {}          # offset -> 1 until its message is done, then 0
        self.outstanding = 0                     # messages not done

    def add(self, offset: int, pending: int):
        """Track a consumed message; returns the callback `done(delivered)` that marks it finished
        (pending=0: done now). Not delivered (its jobs were skipped on revocation): it stops
        being outstanding but never becomes committable, so the commit stays below it."""
        self.order.append(offset)
        self.left[offset] = pending
        self.outstanding += pending

        def done(delivered: bool = True) -> None:
            if delivered:
                self.left[offset] -= 1
            self.outstanding -= 1

        return done

    def commit_point(self) -> int | None:
        """The next offset to commit if it moved, else None."""
        last = None
        while self.order and self.left[self.order[0]] <= 0:
            last = self.order.popleft()
            del self.left[last]
        return None if last is None else last + 1


class AlertConsumer:
    def __init__(self, notifier: Notifier, *, bootstrap: list[str], topic: str, group_id: str,
                 session_timeout: float = 45.0, heartbeat_interval: float = 3.0, rebalance_timeout: float = 60.0,
                 commit_interval: float = 2.8, max_in_flight: int = 5000, revoke_wait: float = 10.0):
        self.notifier = notifier
        self.topic = topic
        self.commit_interval = commit_interval
        self.max_in_flight = max_in_flight
        self.revoke_wait = revoke_wait
        self.parts: dict[TopicPartition, _Partition] = {}
        self._pending_commit: dict[TopicPartition, int] = {}
        self.ready = False
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group_id, client_id="pulse-slack",
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=int(session_timeout * 1000), heartbeat_interval_ms=int(heartbeat_interval * 1000),
            rebalance_timeout_ms=int(rebalance_timeout * 1000), max_poll_interval_ms=300_000)

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self.consumer
        consumer.subscribe([self.topic], listener=_Listener(self))
        await consumer.start()
        log.info("consuming %s", self.topic)
        paused = False
        last_commit = time.monotonic()
        try:
            while not stop.is_set():
                busy = self.notifier.in_flight >= self.max_in_flight
                if busy != paused:
                    assigned = list(consumer.assignment())
                    (consumer.pause if busy else consumer.resume)(*assigned)
                    paused = busy
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                self.ready = True
                for tp, records in batches.items():
                    part = self.parts.get(tp)
                    if part is None:
                        part = self.parts[tp] = _Partition()
                    for record in records:
                        await self._take(tp, part, record)
                if time.monotonic() - last_commit >= self.commit_interval:
                    await self.commit()
                    last_commit = time.monotonic()
        finally:
            drained = await self.notifier.drain(self.revoke_wait)
            if not drained:
                log.warning("stopping with deliveries still in flight; they will be delivered again after restart")
            await self.commit()
            await consumer.stop()

    async def _take(self, tp: TopicPartition, part: _Partition, record) -> None:
        self.notifier.metrics.consumed.inc()
        try:
            alert = orjson.loads(record.value)
            if not isinstance(alert, dict) or not isinstance(alert.get("alert_id"), str) or not alert["alert_id"]:
                raise ValueError("not an alert object with an alert_id")
        except (ValueError, TypeError) as exc:
            log.warning("skipping %s[%d]@%d: %s", tp.topic, tp.partition, record.offset, exc)
            self.notifier.metrics.errors.labels(error="bad_message").inc()
            part.add(record.offset, 0)
            return
        await self.notifier.note(alert)
        channels = await self.notifier.plan(alert)
        self.notifier.submit(alert, on_done=part.add(record.offset, 1), is_cancelled=lambda: part.revoked,
                             channels=channels)

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        offsets = {}
        for tp, part in self.parts.items():
            if only is not None and tp not in only:
                continue
            point = part.commit_point()
            if point is not None:
                offsets[tp] = point
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:                   # e.g. a rebalance in progress: delivered again, harmless
            log.warning("offset commit failed (%s); those alerts may be seen again", exc)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, owner: AlertConsumer):
        self.owner = owner

    async def on_partitions_revoked(self, revoked) -> None:
        parts = {tp: self.owner.parts[tp] for tp in revoked if tp in self.owner.parts}
        for part in parts.values():
            # Queued jobs of these partitions are skipped, and not counted as done: the commit
            # below stops before the first of them, so the partition's next owner delivers them
            # (the ledger keeps a job that was running meanwhile from being posted twice).
            part.revoked = True
        deadline = time.monotonic() + self.owner.revoke_wait
        while any(p.outstanding > 0 for p in parts.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self.owner.commit(set(parts))
        for tp in parts:
            del self.owner.parts[tp]

    async def on_partitions_assigned(self, assigned) -> None:
        log.info("assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(assigned)) or "nothing")
