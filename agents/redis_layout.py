"""The Redis serving layer's key layout and its readers: docs/redis.md in code.

One place for what the keys are called and how they are read, shared by the writer
(agents/serving.py, run by `pulse worker --redis`) and by every reader: `pulse stale`
and the worker's GET /stale. Readers never ask a worker: Redis alone answers.
"""
from __future__ import annotations

import re
import time
from typing import Mapping
from urllib.parse import urlsplit, urlunsplit

import orjson
import redis.asyncio as aioredis

from pulse.schemas.parse import format_timestamp
from pulse.streams.staleness import stale_level

DAY_US = 86_400_000_000
DIMENSIONS = ("stage", "owner", "team")      # a stale index per pipeline and per value of each
LEAD_FIELDS = ("pipeline", "lead_id", "stage", "since", "stale_after_days", "level", "owner", "team", "amount")
STALE_PARAMETERS = ("pipeline", *DIMENSIONS, "limit")     # GET /stale


# --------------------------------------------------------------------------------------
# Key layout (docs/redis.md)
# --------------------------------------------------------------------------------------

_UNESCAPE = re.compile(r"%(25|3A)")


def esc(part: str) -> str:
    """A name as one key component: `%` and `:` percent-encoded, so `:` only separates."""
    if "%" not in part and ":" not in part:
        return part
    return part.replace("%", "%25").replace(":", "%3A")


def unesc(part: str) -> str:
    return _UNESCAPE.sub(lambda m: "%" if m.group(1) == "25" else ":", part)


def key_prefix(topic_prefix: str = "") -> str:
    """`pulse:` + the topic prefix: one keyspace per set of topics."""
    return f"pulse:{topic_prefix}"


class Keys:
    """Every key the serving layer uses, under one prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.pipelines = f"{prefix}pipelines"       # set of pipeline names
        self.workers = f"{prefix}workers"           # zset: worker id -> last sync (unix seconds)
        self.clock = f"{prefix}clock"               # hash: clock, as_of_us, as_of, synced_at
        self.epoch = f"{prefix}epoch"               # string: a token set once; a new one means data loss
        self.prefix_lead = f"{prefix}lead:"
        self._indexes: dict = {}
        self.report = f"{prefix}report"             # string: the cluster-wide SPEC 5 document
        self.report_meta = f"{prefix}report:meta"   # hash: as_of, written_at, worker

    @staticmethod
    def ref(pipeline: str, lead_id: str) -> str:
        return f"{esc(pipeline)}:{esc(lead_id)}"

    @staticmethod
    def parse_ref(ref: str) -> tuple[str, str]:
        pipeline, lead_id = ref.split(":", 1)
        return unesc(pipeline), unesc(lead_id)

    def lead(self, pipeline: str, lead_id: str) -> str:
        return f"{self.prefix}lead:{self.ref(pipeline, lead_id)}"

    def stale(self, pipeline: str, dimension: str | None = None, value: str | None = None) -> str:
        if dimension is None:
            return f"{self.prefix}stale:{esc(pipeline)}"
        return f"{self.prefix}stale:{esc(pipeline)}:{dimension}:{esc(value)}"

    def indexes(self, pipeline: str, stage: str, owner: str | None, team: str | None) -> tuple[str, ...]:
        """The sorted sets a stale lead is a member of."""
        found = self._indexes.get((pipeline, stage, owner, team))
        if found is None:
            out = [self.stale(pipeline), self.stale(pipeline, "stage", stage)]
            if owner is not None:
                out.append(self.stale(pipeline, "owner", owner))
            if team is not None:
                out.append(self.stale(pipeline, "team", team))
            found = tuple(out)
            if len(self._indexes) > 100_000:     # owners x teams x stages: bounded in practice
                self._indexes.clear()
            self._indexes[(pipeline, stage, owner, team)] = found
        return found

    def scorecards(self, pipeline: str) -> str:
        """hash: owner -> that owner's scorecard in the pipeline (JSON, agents/scorecards.py)."""
        return f"{self.prefix}scorecards:{esc(pipeline)}"

    def partition(self, partition: int) -> str:
        return f"{self.prefix}part:{partition}"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}worker:{esc(worker_id)}"


def redact(url: str) -> str:
    """A Redis URL fit for a log line: no password."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "<redis url>"


def connect(url: str) -> aioredis.Redis:
    """A client that fails fast: a sync that cannot reach Redis is retried by the next one."""
    return aioredis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0)


# --------------------------------------------------------------------------------------
# Reader (`pulse stale`, GET /stale)
# --------------------------------------------------------------------------------------

def _s(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


async def query_stale(client: aioredis.Redis, keys: Keys, *, pipeline: str | None = None, stage: str | None = None,
                      owner: str | None = None, team: str | None = None, limit: int | None = 50,
                      now_us: int | None = None) -> dict:
    """The stale leads in Redis matching every filter given, oldest stay first.

    Returns `{"as_of", "synced_at", "count", "stale": [...]}`: `count` matches in all,
    `stale` the first `limit` (None: all), each a SPEC 5 stale entry plus `pipeline`,
    with `age_days` and `level` computed at `as_of` (wall clock: now; event clock: the
    workers' latest T). Raises RedisError/OSError when Redis cannot be reached.
    """
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.clock)
        pipe.smembers(keys.pipelines)
        clock, names = await pipe.execute()
    if now_us is None:
        now_us = time.time_ns() // 1000
    as_of = now_us
    if clock.get(b"clock") == b"event" and clock.get(b"as_of_us"):
        as_of = int(clock[b"as_of_us"])
    pipelines = [pipeline] if pipeline is not None else sorted(n.decode() for n in names)
    filters = [(d, v) for d, v in (("stage", stage), ("owner", owner), ("team", team)) if v is not None]
    stop = -1 if limit is None else limit - 1
    async with client.pipeline(transaction=False) as pipe:
        for name in pipelines:
            if not filters:
                pipe.zcard(keys.stale(name))
                pipe.zrange(keys.stale(name), 0, stop, withscores=True)
            elif len(filters) == 1:
                pipe.zcard(keys.stale(name, *filters[0]))
                pipe.zrange(keys.stale(name, *filters[0]), 0, stop, withscores=True)
            else:
                pipe.zinter([keys.stale(name, d, v) for d, v in filters], aggregate="MIN", withscores=True)
        answers = await pipe.execute()
    count, found = 0, []
    it = iter(answers)
    for name in pipelines:
        if len(filters) <= 1:
            n, rows = next(it), next(it)
        else:
            rows = next(it)
            n = len(rows)
        count += n
        found.extend((score, member.decode(), name) for member, score in rows)
    found.sort(key=lambda f: (f[0], f[1].encode(), f[2].encode()))   # oldest stay first, then lead_id bytes
    if limit is not None:
        found = found[:limit]
    async with client.pipeline(transaction=False) as pipe:
        for _, lead_id, name in found:
            pipe.hgetall(keys.lead(name, lead_id))
        hashes = await pipe.execute() if found else []
    entries = []
    for (since_us, lead_id, name), h in zip(found, hashes):
        if not h:
            continue                             # deleted since the index was read
        since_us = int(since_us)
        limit_days = float(h[b"stale_after_days"]) if b"stale_after_days" in h else None
        age_us = as_of - since_us
        level = int(h.get(b"level", b"0"))
        if limit_days is not None:
            level = stale_level(age_us, round(limit_days * DAY_US)) or level
        amount = h.get(b"amount")
        entries.append({
            "pipeline": name, "lead_id": lead_id, "stage": _s(h.get(b"stage")), "since": _s(h.get(b"since")),
            "age_days": age_us / DAY_US, "stale_after_days": limit_days, "level": level,
            "owner": _s(h.get(b"owner")), "team": _s(h.get(b"team")),
            "amount": float(amount) if amount is not None else None,
        })
    synced = clock.get(b"synced_at")
    return {"as_of": format_timestamp(as_of),
            "synced_at": format_timestamp(int(float(synced) * 1_000_000)) if synced else None,
            "count": count, "stale": entries}


async def read_scorecards(client: aioredis.Redis, keys: Keys, owner: str, pipeline: str | None = None) -> dict:
    """pipeline -> the owner's scorecard there (pipelines where the owner has none are left
    out). Raises RedisError/OSError when Redis cannot be reached."""
    if pipeline is not None:
        pipelines = [pipeline]
    else:
        pipelines = sorted(n.decode() for n in await client.smembers(keys.pipelines))
    async with client.pipeline(transaction=False) as pipe:
        for name in pipelines:
            pipe.hget(keys.scorecards(name), owner)
        found = await pipe.execute() if pipelines else []
    return {name: orjson.loads(raw) for name, raw in zip(pipelines, found) if raw is not None}


def stale_request(query: Mapping[str, str]) -> tuple[dict | None, str | None]:
    """GET /stale's query parameters as query_stale's keyword arguments, or (None, the error)."""
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        return None, "limit must be an integer"
    if not 0 <= limit <= 10_000:
        return None, "limit must be between 0 and 10000 (0: no limit)"
    unknown = set(query) - set(STALE_PARAMETERS)
    if unknown:
        return None, f"unknown parameter(s): {', '.join(sorted(unknown))}"
    return {**{name: query.get(name) for name in ("pipeline", *DIMENSIONS)}, "limit": limit or None}, None
