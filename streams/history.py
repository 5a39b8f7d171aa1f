"""A lead's applied events in a compact form.

The engine keeps every applied event of a lead, because a late event means
re-deriving the lead from its ordered events (SPEC 3). Kept as Python tuples they
would cost ~250 bytes each; as MessagePack records, about 45. The records are
self-contained (no process-local ids) and MessagePack is a stable format, so the
live worker can make these bytes durable as they are.

A history is the concatenation of records `[ts, kind, stage, won, amount, owner,
team, source, offset, event_id]`; the caller keeps the record count. `offset` is the
Kafka offset the event came from (nil in file replays): the live worker uses it to
tell a re-delivered message from a duplicate event after a crash. event_id comes
last, so a substring search for its encoding finds candidate duplicates without
decoding.
"""
from __future__ import annotations

import struct

import msgspec

from pulse.schemas.types import TIE_RANK, Event

_encode = msgspec.msgpack.Encoder().encode
# The MessagePack encoding of one string: a record ends with its event_id's (see above).
encode_str = _encode
_decode_rows = msgspec.msgpack.Decoder(list[tuple[int, int, int, bool, float | None, str | None, str | None,
                                                  str | None, int | None, str]]).decode
_ARRAY32 = struct.Struct(">BI")   # MessagePack array header with a 32-bit count


def encode(ev: Event, offset: int | None = None) -> bytes:
    # Event's first eight fields are (ts, kind, stage, won, amount, owner, team, source).
    return _encode(ev[:8] + (offset, ev[8]))       # ev[8]: event_id


# `encode` for PulseEngine.ingest_event, which builds the record itself (one call less per event).
encode_record = _encode


def records(history: bytes | bytearray, count: int, pipeline: str, lead_id: str) -> list[tuple[Event, int | None]]:
    """Every (event, source offset) of a history, in the order they were appended."""
    if not count:
        return []
    rows = _decode_rows(_ARRAY32.pack(0xDD, count) + history)
    return [(Event(*row[:8], row[9], pipeline, lead_id), row[8]) for row in rows]


def decode(history: bytes | bytearray, count: int, pipeline: str, lead_id: str) -> list[Event]:
    return [ev for ev, _ in records(history, count, pipeline, lead_id)]


def contains_event_id(history: bytes | bytearray, count: int, event_id: str) -> bool:
    # find(), not `in`: `bytes in bytearray` first tries the needle as an integer (a
    # byte value) and raises and clears a TypeError, which costs more than the search.
    if history.find(_encode(event_id)) < 0:    # the common case: one substring search
        return False
    return any(e.event_id == event_id for e in decode(history, count, "", ""))


def offset_of(history: bytes | bytearray, count: int, event_id: str) -> int | None:
    """The source offset recorded with `event_id` (None: none recorded, or no such event)."""
    for ev, offset in records(history, count, "", ""):
        if ev.event_id == event_id:
            return offset
    return None


def sort_key(ev: Event) -> tuple[int, int, str]:
    """SPEC 3's total order: event time, then type (created < updated < stage_changed < closed),
    then event_id (code point order = UTF-8 byte order)."""
    return (ev.ts, TIE_RANK[ev.kind], ev.event_id)
