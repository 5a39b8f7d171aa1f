"""A lead's applied events in a compact form.

The engine keeps every applied event of a lead, because a late event means
re-deriving the lead from its ordered events (SPEC 3). Kept as Python tuples they
would cost ~250 bytes each; as one bytes object of JSON arrays, about 70. The
same bytes are self-contained (no process-local ids), so the live worker can make
them durable as they are.

Each record is `[ts, kind, stage, won, amount, owner, team, source, event_id],`
(JSON, trailing comma); event_id comes last so that a substring search for
`"<event_id>"],` finds candidate duplicates without decoding anything.
"""
from __future__ import annotations

import orjson

from pulse.schemas.types import Event

_dumps = orjson.dumps
_loads = orjson.loads


def encode(ev: Event) -> bytes:
    return _dumps((ev.ts, ev.kind, ev.stage, ev.won, ev.amount, ev.owner, ev.team, ev.source, ev.event_id)) + b","


def event_id_key(event_id: str) -> bytes:
    """How an event id ends its record in a history."""
    return _dumps(event_id) + b"],"


def decode(history: bytes, pipeline: str, lead_id: str) -> list[Event]:
    if not history:
        return []
    rows = _loads(b"[" + history[:-1] + b"]")
    return [Event(ts, kind, eid, pipeline, lead_id, stage, won, owner, team, amount, source)
            for ts, kind, stage, won, amount, owner, team, source, eid in rows]


def contains_event_id(history: bytes, event_id: str) -> bool:
    if event_id_key(event_id) not in history:   # the common case: one substring search
        return False
    return any(row[-1] == event_id for row in _loads(b"[" + history[:-1] + b"]"))


def sort_key(ev: Event) -> tuple[int, int, str]:
    """SPEC 3's total order: event time, then type, then event_id (code point order = UTF-8 byte order)."""
    return (ev.ts, ev.kind, ev.event_id)
