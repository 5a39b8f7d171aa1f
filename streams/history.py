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

A history is kept in SPEC 3's order (`sort_key`), not in arrival order: an event in
order is appended (it comes after every applied one), a late one is inserted at its
place (PulseEngine._refold). So its last record is the lead's latest event, and a stay's
end is the first record after the stay's start that ends it.
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


# A decoded record: (ts, kind, stage, won, amount, owner, team, source, offset, event_id).
# Its first eight fields are an Event's, so lead.apply_event folds it as it is.
Row = tuple


def rows(history: bytes | bytearray, count: int) -> list[Row]:
    """The history's records as plain tuples (no Event built per record), in SPEC 3 order."""
    if not count:
        return []
    return _decode_rows(_ARRAY32.pack(0xDD, count) + history)


def row_key(row: Row) -> tuple[int, int, str]:
    """`sort_key` of a row."""
    return (row[0], TIE_RANK[row[1]], row[9])


def decode(history: bytes | bytearray, count: int, pipeline: str, lead_id: str) -> list[Event]:
    """Every event of a history, in SPEC 3 order."""
    return [Event(*row[:8], row[9], pipeline, lead_id) for row in rows(history, count)]


def contains_event_id(history: bytes | bytearray, count: int, event_id: str) -> bool:
    # find(), not `in`: `bytes in bytearray` first tries the needle as an integer (a
    # byte value) and raises and clears a TypeError, which costs more than the search.
    if history.find(_encode(event_id)) < 0:    # the common case: one substring search
        return False
    return any(row[9] == event_id for row in rows(history, count))


def offset_of(history: bytes | bytearray, count: int, event_id: str) -> int | None:
    """The source offset recorded with `event_id` (None: none recorded, or no such event)."""
    for row in rows(history, count):
        if row[9] == event_id:
            return row[8]
    return None


def sort_key(ev: Event) -> tuple[int, int, str]:
    """SPEC 3's total order: event time, then type (created < updated < stage_changed < closed),
    then event_id (code point order = UTF-8 byte order)."""
    return (ev.ts, TIE_RANK[ev.kind], ev.event_id)
