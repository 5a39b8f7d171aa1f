"""The notifier: alerts in, Slack messages out, once each, one queue per channel.

`Notifier.submit(alert)` routes an alert (config.py) to its channels and puts one job
per channel on that channel's queue; one task per channel works through its queue in
order, so a slow or rate-limited channel (429 + Retry-After) only delays itself.

Exactly once per (alert, channel), with the Redis ledger (ledger.py):

1. claim: `SET d:{alert_id}:{channel} {"state": "pending", owner, at} NX` before posting.
   Already `posted`: a repeat (restart, rebalance, replay): skipped. `pending` and
   fresh (younger than `claim_lease`, someone else's): another notifier is on it: wait.
2. post (chat.postMessage; the message metadata carries the alert id), retrying 429
   after Retry-After and 5xx/network errors with capped exponential backoff, refreshing
   the claim meanwhile. After an *ambiguous* failure (5xx, timeout: Slack may have
   posted) the next attempt first looks for the message (conversations.history, by
   metadata) instead of posting blindly.
3. record: `SET d:... {"state": "posted", channel_id, ts}`.

A crash between 2 and 3 leaves a `pending` claim older than the lease: the next
notifier to see the alert looks for the message in the channel's history; found, it
records it (no second post); not found, it takes the claim over (compare-and-set)
and posts. Slack is the source of truth for that window. With an incoming webhook
there is no history to look in: that window is at-most-once (the alert is taken as
delivered and a warning is logged).

Permanent errors (channel_not_found, invalid_auth, ...) are logged, counted in
`pulse_slack_errors_total{error}`, the claim is dropped (a later replay may deliver)
and the notifier goes on. Redis errors are retried: nothing is posted without a claim.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from redis.exceptions import RedisError

from . import blocks
from .api import Permanent, Transient
from .config import SlackConfig
from .ledger import Claim, Ledger, stay_key
from .metrics import Metrics

log = logging.getLogger("pulse.slack")

STALE, RESOLVED = "lead.stale", "lead.stale_resolved"
WEBHOOK_CHANNEL = "webhook"
_LOOKBACK_S = 120.0            # clock skew allowance when searching history from a claim's time
_HINTS = {
    "channel_not_found": "check the channel ID in the slack section, and that the bot can see the channel",
    "not_in_channel": "invite the bot to the channel (/invite @your-bot)",
    "is_archived": "the channel is archived: route these alerts elsewhere",
    "invalid_auth": "the bot token was refused: check SLACK_BOT_TOKEN or --slack-token-file",
    "not_authed": "no bot token was sent: check SLACK_BOT_TOKEN or --slack-token-file",
    "token_revoked": "the bot token was revoked: install the app again and update the token",
    "account_inactive": "the bot token belongs to a deactivated app or user",
    "missing_scope": "the Slack app lacks a scope (chat:write; channels:history, groups:history, im:write "
                     "to reconcile and DM)",
    "msg_too_long": "the message is too long for Slack",
    "invalid_blocks": "Slack rejected the message's blocks",
}


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
        self.webhook = not api.can_update
        self._queues: dict[str, asyncio.Queue] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._channel_ids: dict[str, str] = {}
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
                self._permanent(exc, job)
                return
            except RedisError as exc:
                self.metrics.retries.labels(reason="redis").inc()
                log.warning("Redis error while delivering %s to %s (%s); retrying in %.1fs",
                            _what(job), job.channel, type(exc).__name__, delay)
                await self.sleep(delay)
                delay = min(delay * 2, self.cfg.retry_max_s)

    def _permanent(self, exc: Permanent, job: Job | None, channel: str | None = None) -> None:
        self.metrics.errors.labels(error=exc.error).inc()
        hint = _HINTS.get(exc.error, "not retried")
        log.error("Slack refused %s for %s in channel %s: %s (%s); not retried",
                  exc.method or "the call", _what(job) if job else "a message",
                  channel or (job.channel if job else "?"), exc.error, hint)

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

    # -- retries ---------------------------------------------------------------------------------

    async def _retry(self, what: str, channel: str, fn, *, look=None, heartbeat=None) -> tuple[bool, Any]:
        """Call `fn` until it succeeds or fails for good (Permanent propagates).

        Returns (False, result), or (True, found) when `look()` found the effect of an
        earlier ambiguous attempt (so `fn` must not run again)."""
        delay = self.cfg.retry_initial_s
        uncertain = False
        while True:
            if uncertain and look is not None:
                found = await look()
                if found is not None:
                    return True, found
            try:
                return False, await fn()
            except Transient as exc:
                self.metrics.retries.labels(reason=exc.reason).inc()
                uncertain = uncertain or exc.ambiguous
                if exc.retry_after is not None:
                    wait = exc.retry_after
                else:
                    wait = delay * (0.75 + random.random() / 2)
                    delay = min(delay * 2, self.cfg.retry_max_s)
                log.warning("%s to %s: %s; retrying in %.1fs", what, channel, exc, wait)
                await self._pause(wait, heartbeat)

    async def _pause(self, seconds: float, heartbeat) -> None:
        """Sleep, refreshing our claim every third of the lease so nobody takes it over."""
        step = max(0.05, self.cfg.claim_lease_s / 3)
        while seconds > 0:
            chunk = min(seconds, step)
            await self.sleep(chunk)
            seconds -= chunk
            if heartbeat is not None and seconds > 0:
                await heartbeat()

    # -- exactly once ---------------------------------------------------------------------------

    async def _acquire(self, delivery_id: str, channel: str, look) -> tuple[Claim | None, Any]:
        """(our claim, None) to go ahead; (None, found) when an unrecorded post was found;
        (None, None) when it was delivered already."""
        while True:
            claim = await self.ledger.claim(delivery_id, channel)
            if claim.mine:
                return claim, None
            if claim.state == "posted":
                self.metrics.duplicates.inc()
                log.info("%s in %s: posted already (ledger); skipped", delivery_id, channel)
                return None, None
            at = float(claim.record.get("at") or 0)
            age = self.clock() - at
            if claim.record.get("owner") != self.ledger.owner and age < self.cfg.claim_lease_s:
                await self.sleep(min(self.cfg.claim_lease_s - age + 0.05, self.cfg.claim_lease_s))
                continue
            # An abandoned claim: its holder crashed (or lost Redis) between claiming and recording.
            if look is None and self.webhook:
                log.warning("%s in %s: an earlier attempt was interrupted after claiming it; an incoming "
                            "webhook cannot check whether it was posted, so it is taken as delivered "
                            "(at-most-once for this window)", delivery_id, channel)
                await self.ledger.posted(delivery_id, channel, None, None, assumed=True)
                return None, None
            if look is not None:
                found = await look(at)
                if found is not None:
                    return None, found
            taken = await self.ledger.take_over(delivery_id, channel, claim)
            if taken is not None:
                return taken, None

    async def _find(self, delivery_id: str, channel: str, since: float,
                    thread: tuple[str, str] | None = None) -> tuple[str, str] | None:
        """Look in Slack for a message carrying `delivery_id` in its metadata."""
        channel_id = thread[0] if thread else await self._channel_id(channel)
        if channel_id is None:
            log.warning("cannot look for an unrecorded post of %s: channel %s unknown; posting (at-least-once)",
                        delivery_id, channel)
            return None
        try:
            _, messages = await self._retry("conversations.history", channel, lambda: self.api.history(
                channel_id, since - _LOOKBACK_S, thread_ts=thread[1] if thread else None))
        except Permanent as exc:
            self._permanent(exc, None, channel)
            log.warning("cannot look for an unrecorded post of %s in %s (%s); posting (at-least-once)",
                        delivery_id, channel, exc.error)
            return None
        for message in messages:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("delivery_id") == delivery_id and message.get("ts"):
                log.info("%s in %s: found the message an interrupted attempt posted (ts %s); not posting again",
                         delivery_id, channel, message["ts"])
                return channel_id, message["ts"]
        return None

    async def _channel_id(self, channel: str) -> str | None:
        if channel in self._channel_ids:
            return self._channel_ids[channel]
        cid = await self.ledger.channel_id(channel)
        if cid is None:
            try:
                _, cid = await self._retry("conversations lookup", channel, lambda: self.api.resolve_channel(channel))
            except Permanent as exc:
                self._permanent(exc, None, channel)
                cid = None
            if cid:
                await self.ledger.set_channel_id(channel, cid)
        if cid:
            self._channel_ids[channel] = cid
        return cid

    async def _post_once(self, delivery_id: str, channel: str, body: dict, *, action: str,
                         thread: tuple[str, str] | None = None, on_posted=None) -> tuple[str, str | None] | None:
        """Post `body` once per (delivery_id, channel); None when it was delivered already.

        `thread` (channel ID, ts) posts a reply in that thread. `on_posted(channel_id, ts)`
        runs before the delivery is recorded (so it runs again if we crash before that)."""
        target = thread[0] if thread else channel
        search = self.api.can_search

        async def look(since: float):
            return await self._find(delivery_id, channel, since, thread) if search else None

        claim, found = await self._acquire(delivery_id, channel, look if search else None)
        if claim is None and found is None:
            return None
        if found is not None:
            self.metrics.reconciled.inc()
            result = found
        else:
            held = [claim]
            started = self.clock()

            async def heartbeat() -> None:
                held[0] = await self.ledger.refresh(delivery_id, channel, held[0])

            try:
                was_found, result = await self._retry(
                    "chat.postMessage", channel, lambda: self.api.post(target, body, thread_ts=thread[1] if thread else None),
                    look=(lambda: look(started)) if search else None, heartbeat=heartbeat)
            except Permanent:
                await self.ledger.release(delivery_id, channel, held[0])
                raise
            if was_found:
                self.metrics.reconciled.inc()
            else:
                self.metrics.messages.labels(action=action).inc()
        channel_id, ts = result
        if channel_id and not thread and not self.webhook and channel not in self._channel_ids:
            self._channel_ids[channel] = channel_id
            await self.ledger.set_channel_id(channel, channel_id)
        if on_posted is not None:
            await on_posted(channel_id, ts)
        await self.ledger.posted(delivery_id, channel, channel_id, ts)
        return channel_id, ts

    # -- deliveries -------------------------------------------------------------------------------

    async def _deliver_alert(self, job: Job) -> None:
        alert, channel = job.alert, job.channel
        delivery_id = str(alert["alert_id"])
        body = blocks.stale_message(alert, self.cfg, delivery_id)

        async def on_posted(channel_id: str, ts: str | None) -> None:
            if alert.get("type") == STALE:
                await self.ledger.add_stay_message(alert, channel, channel_id, ts)

        await self._post_once(delivery_id, channel, body, action="posted", on_posted=on_posted)

    async def _deliver_resolved(self, job: Job) -> None:
        alert, channel = job.alert, job.channel
        delivery_id = str(alert["alert_id"])
        messages = await self.ledger.stay_messages(alert, channel)
        if not messages:
            return                                  # nothing of this stay was posted here
        if self.webhook:                            # no update, no thread: a message of its own
            await self._post_once(delivery_id, channel, blocks.resolved_reply(alert, self.cfg, delivery_id),
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
                    await self._retry("chat.update", channel, lambda m=message, b=body: self.api.update(
                        m["channel_id"], m["ts"], b))
                    self.metrics.messages.labels(action="updated").inc()
                except Permanent as exc:
                    self._permanent(exc, job)
        if self.cfg.resolve in ("reply", "both"):
            latest = messages[-1]
            await self._post_once(delivery_id, channel, blocks.resolved_reply(alert, self.cfg, delivery_id),
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
        await self._post_once(delivery_id, job.channel, body, action="digest")

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
