"""The Redis serving layer of `pulse worker` (`--redis URL`): stale leads and lead state for
dashboards, bots and `pulse stale`, without asking the workers. docs/redis.md is the
reader's contract (key layout, TTLs, consistency, outages); this module writes it, and
agents/redis_layout.py names the keys and reads them.

Writes never happen on the per-event path. LivePulse adds each changed lead to its
partition's `changed` set (`track_changes`); `RedisServing.sync_once()`, run every
second by a task of the worker, takes those sets, adds the leads whose stale level
moved with time (a heap of the instants levels fall due, as the alert detector keeps),
and writes what changed with one Lua script call per few hundred leads. A partition seen for
the first time (start, rebalance) or after any Redis error is synced in full: what Redis
holds for it is read back and diffed against memory, so leads closed meanwhile are
removed and moved ones re-indexed.

Redis being down never stops or slows the worker: a failed sync is logged once per
outage, retried with a backoff up to 10 s, and the first sync that works again is a
full one.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable, Mapping

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from pulse.schemas.parse import format_timestamp
from pulse.streams.staleness import DueHeap, next_level_due_us, stale_level, stale_limits

from .redis_layout import DAY_US, Keys, connect, key_prefix, query_stale, redact, stale_request
from .scorecards import scorecards

if TYPE_CHECKING:
    from .live import LivePulse, PartitionState

log = logging.getLogger("pulse.worker")

CHUNK = 250                     # leads per write script: a few ms of Redis time each
MAX_BACKOFF = 10.0              # seconds between attempts while Redis is down


# --------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------

@dataclass
class _Partition:
    state: "PartitionState"                      # identity: a re-assigned partition is a new object
    full: bool = True                            # next sync rewrites and diffs everything
    # Each of its stale leads as indexed in Redis: (pipeline, lead_id) -> (stage, owner, team, since_us);
    # since_us is None when read back from Redis (unknown: rewritten).
    indexed: dict = field(default_factory=dict)
    # (due_us, pipeline, lead_id, stage, stay_start): when an open lead's stale level next changes.
    due: DueHeap = field(default_factory=DueHeap)


@dataclass
class SyncStats:
    full_partitions: int = 0
    written: int = 0            # lead hashes written
    removed: int = 0            # lead hashes deleted (closed, or gone from this worker's memory)
    stale: int = 0              # this worker's stale leads after the sync
    seconds: float = 0.0
    report: bool = False        # the report document was written


# One call per chunk of leads: the chunk's changes go as one JSON argument, grouped per key,
# and Redis applies them (a script runs atomically: a reader never sees a lead half
# written). Packing thousands of small commands in redis-py cost ~0.2 ms per lead; this
# costs a few µs of Python per lead (docs/redis.md, "Cost").
#   del:  lead hashes to delete (all of the chunk: absent fields must not survive)
#   hset: [key, field, value, ...] per open lead      sadd/srem: refs joining/leaving KEYS[1]
#   zrem: [key, member, ...]                          zadd: [key, score, member, ...]
_WRITE = """
local part = KEYS[1]
local b = cjson.decode(ARGV[1])
if #b.del > 0 then redis.call('DEL', unpack(b.del)) end
for i = 1, #b.hset do redis.call('HSET', unpack(b.hset[i])) end
if #b.sadd > 0 then redis.call('SADD', part, unpack(b.sadd)) end
if #b.srem > 0 then redis.call('SREM', part, unpack(b.srem)) end
for i = 1, #b.zrem do redis.call('ZREM', unpack(b.zrem[i])) end
for i = 1, #b.zadd do redis.call('ZADD', unpack(b.zadd[i])) end
return #b.del
"""


class _Batch:
    __slots__ = ("dels", "hsets", "sadd", "srem", "zadd", "zrem")

    def __init__(self):
        self.dels: list[str] = []
        self.hsets: list[list] = []
        self.sadd: list[str] = []
        self.srem: list[str] = []
        self.zadd: dict[str, list] = {}
        self.zrem: dict[str, list] = {}

    def payload(self) -> bytes:
        return orjson.dumps({"del": self.dels, "hset": self.hsets, "sadd": self.sadd, "srem": self.srem,
                             "zrem": [[k, *m] for k, m in self.zrem.items()],
                             "zadd": [[k, *m] for k, m in self.zadd.items()]})


# What Redis holds for a partition, as one JSON reply: [[ref, stage, owner, team, level], ...]
# (cjson turns a missing field into false, and an empty list into {}).
_READ = """
local prefix = ARGV[1]
local out = {}
local refs = redis.call('SMEMBERS', KEYS[1])
for i = 1, #refs do
  local h = redis.call('HMGET', prefix .. refs[i], 'stage', 'owner', 'team', 'level')
  out[i] = {refs[i], h[1], h[2], h[3], h[4]}
end
return cjson.encode(out)
"""


class RedisServing:
    """Keeps Redis in step with one worker's partitions (see the module docstring)."""

    def __init__(self, live: "LivePulse", client: aioredis.Redis, *, prefix: str, worker_id: str, clock: str,
                 url: str = "", interval: float = 1.0, report_interval: float = 10.0,
                 report_source: Callable[[], Awaitable[dict | None]] | None = None,
                 wall: Callable[[], float] = time.time):
        self.live = live
        self.r = client
        self.keys = Keys(prefix)
        self.worker_id = worker_id
        self.clock = clock
        self.url = redact(url)
        self.interval = interval
        self.report_interval = report_interval
        self.report_source = report_source
        self.wall = wall
        self.parts: dict[int, _Partition] = {}
        self.down = False               # in an outage (logged once)
        self.failures = 0
        self.syncs = 0
        self.last = SyncStats()
        self._next_report = 0.0
        self.epoch: bytes | None = None
        self._write_script = client.register_script(_WRITE)
        self._read_script = client.register_script(_READ)
        config = live.config
        self._stage_names = {name: [st.name for st in pc.stages] for name, pc in config.pipelines.items()}
        self._limits = stale_limits(config.pipelines)
        live.track_changes = True
        for state in live.partitions.values():      # normally none yet: they get a full sync anyway
            if state.changed is None:
                state.changed = set()

    @classmethod
    def from_settings(cls, live: "LivePulse", settings, report_source=None) -> "RedisServing":
        return cls(live, connect(settings.redis_url), prefix=key_prefix(settings.topic_prefix),
                   worker_id=settings.canonical_url, clock=settings.clock, url=settings.redis_url,
                   report_source=report_source)

    # -- the periodic task -----------------------------------------------------------------

    async def run(self) -> None:
        """Sync forever: every `interval` seconds, backing off while Redis is down."""
        while True:
            delay = self.interval if not self.down else min(MAX_BACKOFF, self.interval * 2 ** min(self.failures, 4))
            await asyncio.sleep(delay)
            await self.sync_once()

    async def sync_once(self) -> SyncStats | None:
        """One sync; never raises (a failure is logged once per outage and forces a full sync)."""
        if not self.live.ready:
            return None
        started = time.perf_counter()
        try:
            stats = await self._sync()
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            return None
        except Exception:                       # a bug here must not take the worker down
            if not self.down:
                log.exception("Redis serving layer: sync failed; retrying with a full sync")
            self._failed(None)
            return None
        stats.seconds = time.perf_counter() - started
        if self.down:
            log.warning("Redis serving layer: %s is reachable again; resynced %d leads in %.2f s",
                        self.url, stats.written + stats.removed, stats.seconds)
        elif stats.full_partitions:
            log.info("Redis serving layer: full sync of %d partition(s), %d leads, in %.2f s",
                     stats.full_partitions, stats.written + stats.removed, stats.seconds)
        self.down, self.failures = False, 0
        self.syncs += 1
        self.last = stats
        return stats

    def _failed(self, exc: BaseException | None) -> None:
        if not self.down and exc is not None:
            log.warning("Redis serving layer: %s is unreachable (%s: %s); the worker goes on without it and "
                        "resyncs Redis in full when it is back", self.url, type(exc).__name__, exc)
        self.down = True
        self.failures += 1
        self._next_report = 0.0
        for part in self.parts.values():
            part.full = True
        for state in self.live.partitions.values():     # the full sync covers them: keep nothing queued
            if state.changed:
                state.changed = set()

    # -- one sync ------------------------------------------------------------------------

    async def _sync(self) -> SyncStats:
        live, keys = self.live, self.keys
        stats = SyncStats()
        current = dict(live.partitions)
        for p in [p for p, part in self.parts.items() if current.get(p) is not part.state]:
            del self.parts[p]                   # revoked (its new owner rewrites it) or re-assigned
        for p, state in current.items():
            if p not in self.parts:
                self.parts[p] = _Partition(state)
        # The epoch token is set once (SET NX) and never expires: if it changed, Redis lost
        # its data (a restart without persistence, FLUSHALL, failover to an empty replica).
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.set(keys.epoch, uuid.uuid4().hex, nx=True)
            pipe.get(keys.epoch)
            _, epoch = await pipe.execute()
        if epoch != self.epoch:
            if self.epoch is not None:
                log.warning("Redis serving layer: %s lost its data; resyncing in full", self.url)
            for part in self.parts.values():
                part.full = True
            self.epoch = epoch
        if any(part.full for part in self.parts.values()):
            await self.r.sadd(keys.pipelines, *self._stage_names)
        now = live.clock_us()
        for p, part in list(self.parts.items()):
            if part.full:
                await self._full(p, part, now, stats)
                stats.full_partitions += 1
            else:
                await self._incremental(p, part, now, stats)
            stats.stale += len(part.indexed)
        await self._heartbeat(now, stats)
        if self.report_source is not None and 0 in self.parts and self.wall() >= self._next_report:
            await self._write_report()
            stats.report = True
        return stats

    async def _incremental(self, p: int, part: _Partition, now: int, stats: SyncStats) -> None:
        state = part.state
        changed, state.changed = state.changed or set(), set()
        for _, pipeline, lead_id, stage, start in part.due.pop_due(now):     # stale levels that moved with time
            lead = state.engine.lead(pipeline, lead_id)
            if lead is not None and lead.is_open and lead.stage == stage and lead.stay_start == start:
                changed.add((pipeline, lead_id))
        if changed:
            await self._write(p, part, list(changed), now, stats)
        open_leads = sum(len(pl.open_leads) for pl in state.engine.pipelines.values())
        if len(part.due) > 2 * open_leads + 4096:   # entries of past stays pile up: rebuild
            part.due = DueHeap()
            for name, pl in state.engine.pipelines.items():
                for lead in pl.open_leads.values():
                    self._schedule(part, name, lead, now)

    async def _full(self, p: int, part: _Partition, now: int, stats: SyncStats) -> None:
        """Read back what Redis holds for the partition, then write every lead of either side."""
        state, keys = part.state, self.keys
        state.changed = set()                   # everything is written below
        rows = orjson.loads(await self._read_script(keys=[keys.partition(p)], args=[keys.prefix_lead]))
        indexed, leads = {}, set()
        for ref, stage, owner, team, level in (rows or ()):
            lead = keys.parse_ref(ref)
            leads.add(lead)
            if stage and level not in (False, "0"):
                indexed[lead] = (stage, owner or None, team or None, None)
        part.indexed, part.due = indexed, DueHeap()
        for name, pl in state.engine.pipelines.items():
            leads.update((name, lead_id) for lead_id in pl.open_leads)
        await self._write(p, part, list(leads), now, stats)
        part.full = False

    def _schedule(self, part: _Partition, pipeline: str, lead, now: int) -> None:
        limit = self._limits[pipeline][lead.stage]
        due = next_level_due_us(lead.stay_start, limit, stale_level(now - lead.stay_start, limit))
        if due is not None:
            part.due.push((due, pipeline, lead.lead_id, lead.stage, lead.stay_start))

    async def _write(self, p: int, part: _Partition, leads: list[tuple[str, str]], now: int,
                     stats: SyncStats) -> None:
        part_key = self.keys.partition(p)
        for i in range(0, len(leads), CHUNK):
            if self.live.partitions.get(p) is not part.state:
                return                           # revoked meanwhile: its new owner takes over
            batch = _Batch()
            for pipeline, lead_id in leads[i:i + CHUNK]:
                self._plan(batch, part, pipeline, lead_id, now, stats)
            await self._write_script(keys=[part_key], args=[batch.payload()])
            await asyncio.sleep(0)               # let the worker take events between chunks

    def _plan(self, batch: _Batch, part: _Partition, pipeline: str, lead_id: str, now: int,
              stats: SyncStats) -> None:
        """Add one lead's changes to the batch, and update the in-memory mirror to match."""
        keys = self.keys
        ref = keys.ref(pipeline, lead_id)
        key = keys.prefix_lead + ref
        batch.dels.append(key)
        engine_pipeline = part.state.engine.pipelines.get(pipeline)
        lead = engine_pipeline.leads.get(lead_id) if engine_pipeline is not None else None
        old = part.indexed.get((pipeline, lead_id))
        if lead is None or not lead.is_open:
            batch.srem.append(ref)
            if old is not None:
                for k in keys.indexes(pipeline, *old[:3]):
                    batch.zrem.setdefault(k, []).append(lead_id)
                del part.indexed[(pipeline, lead_id)]
            stats.removed += 1
            return
        stage = self._stage_names[pipeline][lead.stage]
        limit = self._limits[pipeline][lead.stage]
        level = stale_level(now - lead.stay_start, limit)
        fields = [key, "pipeline", pipeline, "lead_id", lead_id, "stage", stage,
                  "since", format_timestamp(lead.stay_start), "level", str(level)]
        if limit is not None:
            fields += ("stale_after_days", repr(limit / DAY_US))
        if lead.owner is not None:
            fields += ("owner", lead.owner)
        if lead.team is not None:
            fields += ("team", lead.team)
        if lead.amount is not None:
            fields += ("amount", repr(float(lead.amount)))
        batch.hsets.append(fields)
        batch.sadd.append(ref)
        stats.written += 1
        new = (stage, lead.owner, lead.team, lead.stay_start) if level else None
        if new != old:
            join = keys.indexes(pipeline, stage, lead.owner, lead.team) if new is not None else ()
            if old is not None:
                for k in keys.indexes(pipeline, *old[:3]):
                    if k not in join:
                        batch.zrem.setdefault(k, []).append(lead_id)
            for k in join:
                batch.zadd.setdefault(k, []).extend((str(lead.stay_start), lead_id))   # a string: exact
            if new is not None:
                part.indexed[(pipeline, lead_id)] = new
            else:
                del part.indexed[(pipeline, lead_id)]
        if level < 3:
            self._schedule(part, pipeline, lead, now)

    async def _heartbeat(self, now: int, stats: SyncStats) -> None:
        keys, wall = self.keys, self.wall()
        ttl = max(15, int(self.interval * 5))
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.hset(keys.worker(self.worker_id), mapping={
                "id": self.worker_id, "clock": self.clock, "as_of": format_timestamp(now), "as_of_us": now,
                "synced_at": repr(wall), "partitions": orjson.dumps(sorted(self.parts)),
                "stale": stats.stale, "last_sync_ms": round(self.last.seconds * 1000, 1)})
            pipe.expire(keys.worker(self.worker_id), ttl)
            pipe.zadd(keys.workers, {self.worker_id: wall})
            pipe.zremrangebyscore(keys.workers, "-inf", wall - 3600)
            pipe.hset(keys.clock, mapping={"clock": self.clock, "as_of_us": now, "as_of": format_timestamp(now),
                                           "synced_at": repr(wall)})
            await pipe.execute()

    async def _write_report(self) -> None:
        started = time.perf_counter()
        doc = await self.report_source()
        took = time.perf_counter() - started
        # The document is assembled in the event loop (~1 s at 100k open leads): never spend
        # more than ~5 % of the worker's time on it.
        self._next_report = self.wall() + max(self.report_interval, 20 * took)
        if doc is None:                          # a peer is unreachable: keep the previous one
            return
        ttl = max(30, int(3 * (self._next_report - self.wall())))
        cards = scorecards(doc)
        async with self.r.pipeline(transaction=True) as pipe:     # MULTI: readers see all of it or none
            pipe.set(self.keys.report, orjson.dumps(doc), ex=ttl)
            pipe.hset(self.keys.report_meta, mapping={"as_of": doc["as_of"], "written_at": repr(self.wall()),
                                                      "worker": self.worker_id})
            pipe.expire(self.keys.report_meta, ttl)
            for pipeline in self._stage_names:
                key = self.keys.scorecards(pipeline)
                pipe.delete(key)                  # owners gone from the document go from Redis
                by_owner = cards.get(pipeline)
                if by_owner:
                    pipe.hset(key, mapping={owner: orjson.dumps(card) for owner, card in by_owner.items()})
                    pipe.expire(key, ttl)
            await pipe.execute()

    # -- GET /stale on the worker --------------------------------------------------------

    async def http_stale(self, query: Mapping[str, str]) -> tuple[int, dict]:
        """(status, document) of GET /stale: the same reader as `pulse stale`, over Redis."""
        arguments, error = stale_request(query)
        if error is not None:
            return 400, {"error": error}
        try:
            doc = await query_stale(self.r, self.keys, **arguments)
        except (RedisError, OSError, asyncio.TimeoutError):
            return 503, {"error": "the Redis serving layer is unreachable; retry"}
        return 200, doc
