"""The notifier: alerts in, Slack messages out, once each, one queue per channel.

`Notifier.submit(alert)` routes an alert (config.py) to its channels and puts one job
per channel on that channel's queue; one task per channel works through its queue in
order, so a slow or rate-limited channel (429 + Retry-After) only delays itself.

Each job is posted exactly once per (alert, channel) by pulse/slack/delivery.py.

Permanent errors (channel_not_found, invalid_auth, ...) are logged, counted in
`pulse_slack_errors_total{error}`, the claim is dropped (a later replay may deliver)
and the notifier goes on. Redis errors are retried: nothing is posted without a claim.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Awaitable, Callable

from redis.exceptions import RedisError

from . import blocks
from .api import Permanent
from .config import SlackConfig
from .delivery import Delivery
from .ledger import Ledger, stay_key
from .metrics import Metrics

log = logging.getLogger("pulse.slack")

STALE, RESOLVED = "lead.stale", "lead.stale_resolved"
WEBHOOK_CHANNEL = "webhook"


@dataclass(eq=False)
class Job:
    kind: str                                   # "alert" | "digest"
    channel: str
    alert: dict
    # on_done(delivered): False when the job was skipped because its partition was revoked
    # (its offset must not be committed: the partition's new owner delivers it)
    on_done: Callable[[bool], None] | None = None
    is_cancelled: Callable[[], bool] = field(default=lambda: False)


class Notifier:
    def __init__(self, cfg: SlackConfig, api, ledger: Ledger, metrics: Metrics | None = None, *,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], Awaitable] = asyncio.sleep):
        self.cfg, self.api, self.ledger = cfg, api, ledger
        self.metrics = metrics or Metrics()
        self.clock, self.sleep = clock, sleep
        self.delivery = Delivery(cfg, api, ledger, self.metrics, clock=clock, sleep=sleep)
        self.webhook = self.delivery.webhook
        self._queues: dict[str, asyncio.Queue] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self.in_flight = 0
        self._idle: asyncio.Event | None = None

    # -- intake ---------------------------------------------------------------------------

    def channels_for(self, alert: dict) -> list[str]:
        if self.webhook:
            return [WEBHOOK_CHANNEL]
        if alert.get("type") == RESOLVED:
            return self.cfg.resolve_channels(alert)
        return self.cfg.route(alert)

    async def plan(self, alert: dict) -> list[str]:
        """`channels_for`, plus, for a resolution, every channel any level of that stay was
        routed to or has a message in (the owner or team may have changed since).

        Runs at consume time, when the earlier levels may still be queued (one fetch can
        hold a stay's levels and its resolution): so a `lead.stale`'s channels are noted in
        the ledger here, before it is queued, not only once posted. The resolution's job in
        such a channel runs after the level's (one queue per channel) and finds its message."""
        channels = self.channels_for(alert)
        if self.webhook:
            return channels
        if alert.get("type") == STALE:
            await self._redis_retry("plan", lambda: self.ledger.add_stay_routes(alert, channels))
        elif alert.get("type") == RESOLVED:
            held = await self._redis_retry("plan", lambda: self.ledger.stay_channels(alert))
            channels += [c for c in held if c not in channels]
        return channels

    def submit(self, alert: dict, on_done: Callable[[bool], None] | None = None,
               is_cancelled: Callable[[], bool] | None = None, channels: list[str] | None = None) -> int:
        """Queue one job per channel of the alert; `on_done(delivered)` runs once all of them
        finished: delivered is False if any was skipped (cancelled: its partition was revoked)."""
        channels = self.channels_for(alert) if channels is None else channels
        left = len(channels)
        all_delivered = True

        def one_done(delivered: bool) -> None:
            nonlocal left, all_delivered
            left -= 1
            all_delivered = all_delivered and delivered
            if left == 0 and on_done is not None:
                on_done(all_delivered)

        if not channels and on_done is not None:
            on_done(True)
        for channel in channels:
            self._enqueue(Job("alert", channel, alert, one_done, is_cancelled or (lambda: False)))
        return len(channels)

    async def note(self, alert: dict) -> None:
        """Remember open stale leads for the digest (retried while Redis is unreachable)."""
        await self._redis_retry("note", lambda: self.ledger.note_alert(alert))

    async def handle(self, alert: dict) -> None:
        """Note, submit and wait until every channel's job is done (tests, `--digest-now`)."""
        await self.note(alert)
        done = asyncio.get_running_loop().create_future()
        self.submit(alert, on_done=lambda _: done.done() or done.set_result(None), channels=await self.plan(alert))
        await done

    def _enqueue(self, job: Job) -> None:
        queue = self._queues.get(job.channel)
        if queue is None:
            queue = self._queues[job.channel] = asyncio.Queue()
            self._tasks[job.channel] = asyncio.create_task(self._worker(job.channel, queue),
                                                           name=f"slack-{job.channel}")
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        if self._idle is None:
            self._idle = asyncio.Event()
        self._idle.clear()
        queue.put_nowait(job)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until no job is queued or running; False on timeout."""
        if self.in_flight == 0 or self._idle is None:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        self._queues.clear()

    # -- the per-channel worker ---------------------------------------------------------------

    async def _worker(self, channel: str, queue: asyncio.Queue) -> None:
        while True:
            job = await queue.get()
            delivered: bool | None = None               # None: interrupted (close), not finished at all
            try:
                if job.is_cancelled():
                    delivered = False                   # revoked: left for the partition's new owner
                else:
                    await self._run(job)
                    delivered = True
            except Exception:                            # noqa: BLE001  never let one alert stop a channel
                log.exception("internal error delivering %s to %s; skipped", _what(job), channel)
                self.metrics.errors.labels(error="internal").inc()
                delivered = True
            finally:
                self.in_flight -= 1
                self.metrics.in_flight.set(self.in_flight)
                if delivered is not None and job.on_done is not None:
                    job.on_done(delivered)
                if self.in_flight == 0 and self._idle is not None:
                    self._idle.set()

    async def _run(self, job: Job) -> None:
        delay = self.cfg.retry_initial_s
        while True:
            try:
                if job.kind == "digest":
                    await self._deliver_digest(job)
                elif job.alert.get("type") == RESOLVED:
                    await self._deliver_resolved(job)
                else:
                    await self._deliver_alert(job)
                return
            except Permanent as exc:
                self.delivery.permanent(exc, _what(job), job.channel)
                return
            except RedisError as exc:
                self.metrics.retries.labels(reason="redis").inc()
                log.warning("Redis error while delivering %s to %s (%s); retrying in %.1fs",
                            _what(job), job.channel, type(exc).__name__, delay)
                await self.sleep(delay)
                delay = min(delay * 2, self.cfg.retry_max_s)

    async def _redis_retry(self, what: str, fn):
        delay = self.cfg.retry_initial_s
        while True:
            try:
                return await fn()
            except RedisError as exc:
                self.metrics.retries.labels(reason="redis").inc()
                log.warning("Redis error (%s: %s); retrying in %.1fs", what, type(exc).__name__, delay)
                await self.sleep(delay)
                delay = min(delay * 2, self.cfg.retry_max_s)

    # -- deliveries -------------------------------------------------------------------------------

    async def _deliver_alert(self, job: Job) -> None:
        alert, channel = job.alert, job.channel
        delivery_id = str(alert["alert_id"])
        body = blocks.stale_message(alert, self.cfg, delivery_id)

        async def on_posted(channel_id: str, ts: str | None) -> None:
            if alert.get("type") == STALE:
                await self.ledger.add_stay_message(alert, channel, channel_id, ts)

        await self.delivery.post_once(delivery_id, channel, body, action="posted", on_posted=on_posted)

    async def _deliver_resolved(self, job: Job) -> None:
        alert, channel = job.alert, job.channel
        delivery_id = str(alert["alert_id"])
        messages = await self.ledger.stay_messages(alert, channel)
        if not messages:
            return                                  # nothing of this stay was posted here
        if self.webhook:                            # no update, no thread: a message of its own
            await self.delivery.post_once(delivery_id, channel, blocks.resolved_reply(alert, self.cfg, delivery_id),
                                  action="replied")
            return
        record = await self.ledger.get(delivery_id, channel)
        if record is not None and record.get("state") == "posted":
            self.metrics.duplicates.inc()
            return
        if self.cfg.resolve in ("update", "both"):
            for message in messages:
                original = blocks.original_of(alert, message)
                body = blocks.resolved_update(original, alert, self.cfg, str(original.get("alert_id")))
                try:
                    await self.delivery.retry("chat.update", channel, lambda m=message, b=body: self.api.update(
                        m["channel_id"], m["ts"], b))
                    self.metrics.messages.labels(action="updated").inc()
                except Permanent as exc:
                    self.delivery.permanent(exc, _what(job), job.channel)
        if self.cfg.resolve in ("reply", "both"):
            latest = messages[-1]
            await self.delivery.post_once(delivery_id, channel, blocks.resolved_reply(alert, self.cfg, delivery_id),
                                  action="replied", thread=(latest["channel_id"], latest["ts"]))
        else:
            await self.ledger.posted(delivery_id, channel, None, None)

    # -- the daily digest ---------------------------------------------------------------------------

    def digest_channel(self, group: str) -> str:
        d = self.cfg.digest
        by = d.by if d else "owner"
        if d and group in d.channels:
            return d.channels[group]
        if by == "owner" and group in self.cfg.users and not self.webhook:
            return self.cfg.users[group]            # a direct message from the bot
        return (d.channel if d and d.channel else None) or self.cfg.default_channel

    async def send_digest(self, now: float | None = None) -> int:
        """One message per owner (or team) listing their open stale leads; returns how many.

        Built from the `lead.stale` alerts this notifier has seen and not seen resolved
        (ledger `open`), ages recomputed for `now`. Sent once per group and UTC day."""
        now = self.clock() if now is None else now
        by = self.cfg.digest.by if self.cfg.digest else "owner"
        day = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d")
        alerts = await self._redis_retry("digest", self.ledger.open_alerts)
        groups: dict[str, list[dict]] = {}
        expired = []
        for alert in alerts:
            detected = blocks.parse_time(alert.get("detected_at"))
            if detected is not None and now - detected > self.ledger.ttl:
                expired.append(stay_key(alert))
                continue
            since = blocks.parse_time(alert.get("since"))
            if since is not None:
                alert = {**alert, "age_days": max(0.0, now - since) / 86400}
            groups.setdefault(str(alert.get(by) or f"(no {by})"), []).append(alert)
        await self._redis_retry("digest", lambda: self.ledger.forget_open(expired))
        if not groups:
            return 0
        loop = asyncio.get_running_loop()
        futures = []
        for group, items in sorted(groups.items()):
            done = loop.create_future()
            futures.append(done)
            self._enqueue(Job("digest", self.digest_channel(group), {"group": group, "by": by, "day": day,
                                                                      "alerts": items},
                              on_done=lambda _, f=done: f.done() or f.set_result(None)))
        await asyncio.gather(*futures)
        return len(groups)

    async def _deliver_digest(self, job: Job) -> None:
        d = job.alert
        delivery_id = f"digest-{d['day']}-{hashlib.sha256((d['by'] + ':' + d['group']).encode()).hexdigest()[:16]}"
        body = blocks.digest_message(d["by"], d["group"], d["alerts"], self.cfg, d["day"], delivery_id)
        await self.delivery.post_once(delivery_id, job.channel, body, action="digest")

    async def digest_loop(self) -> None:
        """Send the digest every day at `digest.at` (UTC) while running."""
        if self.cfg.digest is None:
            return
        while True:
            now = self.clock()
            midnight = now - now % 86400
            due = midnight + self.cfg.digest.at_minute * 60
            if due <= now:
                due += 86400
            await self.sleep(due - now)
            try:
                sent = await self.send_digest(due)
                log.info("daily digest: %d message(s)", sent)
            except Exception:                       # noqa: BLE001
                log.exception("daily digest failed")
                self.metrics.errors.labels(error="digest").inc()


def _what(job: Job | None) -> str:
    if job is None:
        return "a message"
    if job.kind == "digest":
        return f"the digest for {job.alert.get('group')}"
    return f"alert {job.alert.get('alert_id')} ({job.alert.get('type')}, lead {job.alert.get('lead_id')})"
