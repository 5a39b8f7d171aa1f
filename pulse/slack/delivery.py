"""Each notifier job posted exactly once per (alert, channel), with the Redis ledger (ledger.py):

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
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Awaitable, Callable

from .api import Permanent, Transient
from .config import SlackConfig
from .ledger import Claim, Ledger
from .metrics import Metrics

log = logging.getLogger("pulse.slack")

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


class Delivery:
    """Posts one message per (delivery id, channel), retrying what Slack lets us retry."""

    def __init__(self, cfg: SlackConfig, api, ledger: Ledger, metrics: Metrics, *,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], Awaitable] = asyncio.sleep):
        self.cfg, self.api, self.ledger, self.metrics = cfg, api, ledger, metrics
        self.clock, self.sleep = clock, sleep
        self.webhook = not api.can_update
        self._channel_ids: dict[str, str] = {}

    def permanent(self, exc: Permanent, what: str, channel: str) -> None:
        """Log and count an error Slack will give again (nothing is retried)."""
        self.metrics.errors.labels(error=exc.error).inc()
        hint = _HINTS.get(exc.error, "not retried")
        log.error("Slack refused %s for %s in channel %s: %s (%s); not retried",
                  exc.method or "the call", what, channel, exc.error, hint)

    # -- retries ---------------------------------------------------------------------------------

    async def retry(self, what: str, channel: str, fn, *, look=None, heartbeat=None) -> tuple[bool, Any]:
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
            _, messages = await self.retry("conversations.history", channel, lambda: self.api.history(
                channel_id, since - _LOOKBACK_S, thread_ts=thread[1] if thread else None))
        except Permanent as exc:
            self.permanent(exc, "a message", channel)
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
                _, cid = await self.retry("conversations lookup", channel, lambda: self.api.resolve_channel(channel))
            except Permanent as exc:
                self.permanent(exc, "a message", channel)
                cid = None
            if cid:
                await self.ledger.set_channel_id(channel, cid)
        if cid:
            self._channel_ids[channel] = cid
        return cid

    async def post_once(self, delivery_id: str, channel: str, body: dict, *, action: str,
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
                was_found, result = await self.retry(
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
