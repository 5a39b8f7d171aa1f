"""The alerts of every worker, as they reach `pipeline.notifications`, for the dashboard.

A worker raises only its own partitions' alerts, but the notifications topic holds
everyone's: reading it makes the dashboard of any worker of a group show all of them.
The feed runs only while someone watches (started by the first subscriber, stopped a
little after the last one leaves), so a worker nobody looks at pays nothing. On start it
reads the last few alerts of each partition, so a new page is not empty.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Any

import orjson

log = logging.getLogger("pulse.worker")

__all__ = ["AlertFeed", "BACKLOG"]

BACKLOG = 50            # alerts kept for a new subscriber (newest)
BACKLOG_S = 2.0         # at most this long reading the backlog before following live alerts
LINGER_S = 30.0         # how long the feed keeps reading after the last subscriber left
QUEUE_MAX = 1_000       # alerts buffered per subscriber; a slower one misses the excess (and is told)

# What the page shows of an alert: SPEC 6's fields (no free-form data exists in an alert).
FIELDS = ("alert_id", "type", "severity", "detected_at", "pipeline", "lead_id", "stage", "since", "age_days",
          "stale_after_days", "level", "owner", "team", "amount", "summary", "resolved_by", "to_stage", "outcome")


_FIELDS = frozenset(FIELDS)


def shown(raw: bytes) -> tuple[dict[str, Any], bytes] | None:
    """The alert's SPEC 6 fields, and as JSON; None for a message that is not a JSON object."""
    try:
        alert = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(alert, dict):
        return None
    if alert.keys() <= _FIELDS:
        return alert, bytes(raw)                # the worker's own alerts: sent on as they are
    alert = {k: alert[k] for k in FIELDS if k in alert}
    return alert, orjson.dumps(alert)


class AlertFeed:
    def __init__(self, bootstrap_servers: list[str], topic: str):
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        # each alert as its server-sent event, encoded once for every subscriber
        self.recent: collections.deque[bytes] = collections.deque(maxlen=BACKLOG)
        self._subscribers: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None
        self._stop_later: asyncio.TimerHandle | None = None

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(QUEUE_MAX)
        self._subscribers.add(q)
        if self._stop_later is not None:
            self._stop_later.cancel()
            self._stop_later = None
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._subscribers.discard(q)
        if not self._subscribers and self._task is not None and self._stop_later is None:
            self._stop_later = asyncio.get_running_loop().call_later(LINGER_S, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._stop_later = None
        if not self._subscribers and self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> None:
        if self._stop_later is not None:
            self._stop_later.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _publish(self, alert: tuple[dict, bytes]) -> None:
        event = b"event: alert\ndata: %s\n\n" % alert[1]
        self.recent.append(event)
        for q in self._subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(event)

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        while True:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="latest")
            try:
                await consumer.start()
                partitions = await _partitions(consumer, self.topic)
                tps = [TopicPartition(self.topic, p) for p in partitions]
                consumer.assign(tps)
                ends = await consumer.end_offsets(tps)
                starts = await consumer.beginning_offsets(tps)
                for tp in tps:
                    consumer.seek(tp, max(starts[tp], ends[tp] - BACKLOG))
                # The backlog: what is already in the topic, read until the topic goes quiet (or
                # for BACKLOG_S at most), then shown oldest first by detection time. Not up to
                # end_offsets: the embedded broker reports the base offset of the last batch there.
                backlog = []
                deadline = asyncio.get_running_loop().time() + BACKLOG_S
                while asyncio.get_running_loop().time() < deadline:
                    batches = await consumer.getmany(timeout_ms=300)
                    if not batches:
                        break
                    backlog.extend(a for records in batches.values() for r in records
                                   if (a := shown(r.value)) is not None)
                self.recent.clear()
                for a in sorted(backlog, key=lambda a: str(a[0].get("detected_at", "")))[-BACKLOG:]:
                    self._publish(a)
                while True:
                    for records in (await consumer.getmany(timeout_ms=1000)).values():
                        for r in records:
                            if (a := shown(r.value)) is not None:
                                self._publish(a)
            except asyncio.CancelledError:
                raise
            except Exception as exc:            # broker away: retry; the page keeps what it has
                log.warning("dashboard alert feed: %r; retrying in 2 s", exc)
                await asyncio.sleep(2.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()


async def _partitions(consumer, topic: str) -> list[int]:
    for _ in range(50):
        found = consumer.partitions_for_topic(topic)
        if found:
            return sorted(found)
        await consumer.topics()         # refreshes metadata
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} not found")
