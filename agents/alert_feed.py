"""The alerts of every worker, as they are raised, for the dashboard.

A worker raises only its own partitions' alerts, but the notifications topic holds
everyone's: this worker's own alerts are taken as it raises them (`publish_own`, no
round trip through the broker), the other partitions' are read from
`pipeline.notifications`, so the dashboard of any worker of a group shows all of them.
The feed runs only while someone watches (started by the first watcher, stopped a
little after the last one leaves), so a worker nobody looks at pays nothing. On start it
reads the last few alerts of each partition, so a new page is not empty.

One shared log, not a queue per page: an alert costs the same whatever the number of
pages (hundreds of alerts a second and ten pages made the copies a share of the
worker's CPU); each page keeps its place in the log (`since`).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
from typing import Any, Callable, Collection

import orjson

log = logging.getLogger("pulse.worker")

__all__ = ["AlertFeed", "BACKLOG"]

BACKLOG = 50            # alerts kept for a new page (newest)
BACKLOG_S = 2.0         # at most this long reading the backlog before following live alerts
LINGER_S = 30.0         # how long the feed keeps reading after the last watcher left
LOG_MAX = 1_000         # alerts kept for the pages; a page further behind misses the excess
OWN_POLL_S = 1.0        # while every partition is this worker's, how often to look again (a rebalance)

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
    def __init__(self, bootstrap_servers: list[str], topic: str,
                 own_partitions: Callable[[], Collection[int]] = frozenset):
        """`own_partitions()`: the partitions whose alerts this worker raises (and gives to
        `publish_own`); the others are read from the topic."""
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.own_partitions = own_partitions
        # each alert as its server-sent event, encoded once for every page; `seq` alerts so far
        self.log: collections.deque[bytes] = collections.deque(maxlen=LOG_MAX)
        self.seq = 0
        self.on_publish: Callable[[], None] = lambda: None     # the pages' wake-up (agents/web.py)
        self.watchers = 0
        self.live = False           # the backlog is read: own alerts are published as raised
        self._task: asyncio.Task | None = None
        self._stop_later: asyncio.TimerHandle | None = None

    @property
    def recent(self) -> list[bytes]:
        """The newest BACKLOG alerts, oldest first (what a new page is sent)."""
        return list(itertools.islice(self.log, max(0, len(self.log) - BACKLOG), None))

    def since(self, seq: int, limit: int = LOG_MAX) -> list[bytes]:
        """The alerts published after the first `seq` (the newest `limit` of those still in the
        log), oldest first."""
        new = min(self.seq - seq, len(self.log), limit)
        return list(itertools.islice(self.log, len(self.log) - new, None)) if new > 0 else []

    def watch(self) -> None:
        self.watchers += 1
        if self._stop_later is not None:
            self._stop_later.cancel()
            self._stop_later = None
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def unwatch(self) -> None:
        self.watchers -= 1
        if not self.watchers and self._task is not None and self._stop_later is None:
            self._stop_later = asyncio.get_running_loop().call_later(LINGER_S, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._stop_later = None
        if not self.watchers and self._task is not None:
            self._task.cancel()
            self._task = None
            self.live = False

    async def stop(self) -> None:
        self.live = False
        if self._stop_later is not None:
            self._stop_later.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def publish_own(self, value: bytes) -> None:
        """An alert this worker just raised (its SPEC 6 JSON, as written to the topic)."""
        if self.live:
            self._append(b"event: alert\ndata: %s\n\n" % value)

    def _publish(self, alert: tuple[dict, bytes]) -> None:
        self._append(b"event: alert\ndata: %s\n\n" % alert[1])

    def _append(self, event: bytes) -> None:
        self.log.append(event)
        self.seq += 1
        self.on_publish()

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
                for a in sorted(backlog, key=lambda a: str(a[0].get("detected_at", "")))[-BACKLOG:]:
                    self._publish(a)
                self.live = True
                await self._follow(consumer, tps)
            except asyncio.CancelledError:
                raise
            except Exception as exc:            # broker away: retry; the page keeps what it has
                log.warning("dashboard alert feed: %r; retrying in 2 s", exc)
                await asyncio.sleep(2.0)
            finally:
                self.live = False
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _follow(self, consumer, tps: list) -> None:
        """The other workers' partitions, from the topic. The assignment follows rebalances; a
        new one starts at the end (auto_offset_reset): alerts in flight during a rebalance may be
        missed by the page (or, after a crash, shown again when the new owner publishes them)."""
        others: list = tps
        while True:
            own = set(self.own_partitions())
            wanted = [tp for tp in tps if tp.partition not in own]
            if wanted != others:
                others = wanted
                if others:
                    consumer.assign(others)
                else:
                    consumer.unsubscribe()      # every partition is this worker's: nothing to fetch
            if not others:
                await asyncio.sleep(OWN_POLL_S)
                continue
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for r in records:
                    if (a := shown(r.value)) is not None:
                        self._publish(a)


async def _partitions(consumer, topic: str) -> list[int]:
    for _ in range(50):
        found = consumer.partitions_for_topic(topic)
        if found:
            return sorted(found)
        await consumer.topics()         # refreshes metadata
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} not found")
