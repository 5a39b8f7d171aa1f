"""The delivery ledger in Redis: what was posted where, so an alert is posted once.

Keys (all under `prefix`, which the notifier derives from the topic prefix, so one
notifications topic has one ledger whatever the consumer group):

- `d:{delivery_id}:{channel}` — one delivery (a string, JSON):
  `{"state": "pending", "owner", "at"}` while a notifier works on it (claimed with
  SET NX before anything is posted), then `{"state": "posted", "channel_id", "ts", "at"}`.
  Expires after `ttl` seconds.
- `s:{stay}` — hash: the messages posted for one stay of a lead (the `lead.stale`
  levels), field `{channel}|{alert_id}` -> `{"channel_id", "ts", "at", "alert_id", "level"}`.
  What `lead.stale_resolved` updates (its own fields describe the stay).
- `r:{stay}` — set: the channels any `lead.stale` level of the stay was routed to, noted
  when it is queued (a resolution planned before those levels are posted still finds them).
- `open` — hash: stay -> the latest `lead.stale` of every stay not resolved yet, as the
  SPEC 6 fields the daily digest shows (`DIGEST_FIELDS`), nothing else.
- `cid:{channel}` — channel name or user ID -> Slack channel ID, learned from answers.

No whole alert document is stored: whatever a message on the topic carries besides,
it never reaches Redis.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Mapping

import orjson
import redis.asyncio as aioredis

# Compare-and-set: replace a pending claim only if it is still the one we looked at.
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


# What the digest shows of an open stale lead (SPEC 6 fields; `summary` is rebuilt, not kept).
DIGEST_FIELDS = ("alert_id", "type", "severity", "detected_at", "pipeline", "lead_id", "stage", "since",
                 "age_days", "stale_after_days", "level", "owner", "team", "amount")


@dataclass(frozen=True)
class Claim:
    """What `claim()` found: `mine` True when this caller now holds a pending claim."""
    mine: bool
    state: str                      # "pending" | "posted"
    record: Mapping[str, Any]
    raw: bytes


def stay_key(alert: Mapping[str, Any]) -> str:
    parts = [str(alert.get(k, "")) for k in ("pipeline", "lead_id", "stage", "since")]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class Ledger:
    def __init__(self, client: aioredis.Redis, prefix: str, owner: str, ttl: int, clock=time.time):
        self.r = client
        self.prefix = prefix
        self.owner = owner
        self.ttl = int(ttl)
        self.clock = clock
        self._cas = client.register_script(_TAKE_OVER)

    @classmethod
    def from_url(cls, url: str, prefix: str, owner: str, ttl: int, clock=time.time) -> "Ledger":
        return cls(aioredis.Redis.from_url(url), prefix, owner, ttl, clock)

    async def close(self) -> None:
        await self.r.aclose()

    def _d(self, delivery_id: str, channel: str) -> str:
        return f"{self.prefix}d:{delivery_id}:{channel}"

    # -- deliveries ---------------------------------------------------------------------

    async def claim(self, delivery_id: str, channel: str) -> Claim:
        """SET NX a pending claim; if the key exists, return what is there instead."""
        key = self._d(delivery_id, channel)
        raw = orjson.dumps({"state": "pending", "owner": self.owner, "at": self.clock()})
        if await self.r.set(key, raw, nx=True, ex=self.ttl):
            return Claim(True, "pending", orjson.loads(raw), raw)
        existing = await self.r.get(key)
        if existing is None:                        # expired in between: try once more
            return await self.claim(delivery_id, channel)
        record = orjson.loads(existing)
        return Claim(False, record.get("state", "pending"), record, existing)

    async def take_over(self, delivery_id: str, channel: str, seen: Claim) -> Claim | None:
        """Replace a stale pending claim by ours, atomically; None if it changed meanwhile."""
        raw = orjson.dumps({"state": "pending", "owner": self.owner, "at": self.clock()})
        if await self._cas(keys=[self._d(delivery_id, channel)], args=[seen.raw, raw, self.ttl]):
            return Claim(True, "pending", orjson.loads(raw), raw)
        return None

    async def refresh(self, delivery_id: str, channel: str, mine: Claim) -> Claim:
        """Move our claim's `at` forward (a heartbeat while we retry); returns the new claim."""
        raw = orjson.dumps({"state": "pending", "owner": self.owner, "at": self.clock()})
        if await self._cas(keys=[self._d(delivery_id, channel)], args=[mine.raw, raw, self.ttl]):
            return Claim(True, "pending", orjson.loads(raw), raw)
        return mine

    async def posted(self, delivery_id: str, channel: str, channel_id: str | None, ts: str | None,
                     **extra: Any) -> None:
        record = {"state": "posted", "channel_id": channel_id, "ts": ts, "at": self.clock(), **extra}
        await self.r.set(self._d(delivery_id, channel), orjson.dumps(record), ex=self.ttl)

    async def release(self, delivery_id: str, channel: str, mine: Claim) -> None:
        """Drop our pending claim (a permanent failure: nothing was posted, a replay may retry)."""
        key = self._d(delivery_id, channel)
        await self.r.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
                          "return 0", 1, key, mine.raw)

    async def get(self, delivery_id: str, channel: str) -> dict | None:
        raw = await self.r.get(self._d(delivery_id, channel))
        return None if raw is None else orjson.loads(raw)

    # -- stays: the messages a resolution updates -----------------------------------------

    async def add_stay_message(self, alert: Mapping[str, Any], channel: str, channel_id: str, ts: str) -> None:
        key = f"{self.prefix}s:{stay_key(alert)}"
        level = alert.get("level")
        await self.r.hset(key, f"{channel}|{alert.get('alert_id')}", orjson.dumps({
            "channel_id": channel_id, "ts": ts, "at": self.clock(), "alert_id": str(alert.get("alert_id")),
            "level": level if isinstance(level, int) and not isinstance(level, bool) else None}))
        await self.r.expire(key, self.ttl)

    async def add_stay_routes(self, alert: Mapping[str, Any], channels: list[str]) -> None:
        """Note the channels a `lead.stale` of the stay is routed to (before it is queued)."""
        if channels:
            key = f"{self.prefix}r:{stay_key(alert)}"
            await self.r.sadd(key, *channels)
            await self.r.expire(key, self.ttl)

    async def stay_messages(self, alert: Mapping[str, Any], channel: str) -> list[dict]:
        """The messages of the alert's stay posted to `channel`, oldest first (by Slack ts; the
        time recorded for a webhook post, which has no ts)."""
        rows = await self.r.hgetall(f"{self.prefix}s:{stay_key(alert)}")
        out = [orjson.loads(v) for k, v in rows.items() if k.decode().rsplit("|", 1)[0] == channel]
        return sorted(out, key=lambda m: float(m["ts"]) if m.get("ts") else m.get("at", 0.0))

    async def stay_channels(self, alert: Mapping[str, Any]) -> list[str]:
        """Every channel a level of the alert's stay was routed to or posted in."""
        stay = stay_key(alert)
        rows = await self.r.hkeys(f"{self.prefix}s:{stay}")
        routed = await self.r.smembers(f"{self.prefix}r:{stay}")
        return sorted({k.decode().rsplit("|", 1)[0] for k in rows} | {c.decode() for c in routed})

    # -- open stale leads, for the digest ----------------------------------------------------

    async def note_alert(self, alert: Mapping[str, Any]) -> None:
        """Keep the latest `lead.stale` of every open stay; forget it on `lead.stale_resolved`."""
        key, field = f"{self.prefix}open", stay_key(alert)
        if alert.get("type") == "lead.stale_resolved":
            await self.r.hdel(key, field)
        elif alert.get("type") == "lead.stale":
            old = await self.r.hget(key, field)
            if old is None or (orjson.loads(old).get("level") or 0) <= (alert.get("level") or 0):
                await self.r.hset(key, field, orjson.dumps({k: alert[k] for k in DIGEST_FIELDS if k in alert}))

    async def open_alerts(self) -> list[dict]:
        return [orjson.loads(v) for v in (await self.r.hgetall(f"{self.prefix}open")).values()]

    async def forget_open(self, stays: list[str]) -> None:
        if stays:
            await self.r.hdel(f"{self.prefix}open", *stays)

    # -- channel IDs ------------------------------------------------------------------------

    async def channel_id(self, channel: str) -> str | None:
        raw = await self.r.get(f"{self.prefix}cid:{channel}")
        return raw.decode() if raw else None

    async def set_channel_id(self, channel: str, channel_id: str) -> None:
        await self.r.set(f"{self.prefix}cid:{channel}", channel_id)
