"""The lead-state changelog's records (agents/live.py writes and restores them).

Key `L<sep>pipeline<sep>lead_id`: a lead's record, msgpack (LEAD_RECORD, partition,
pipeline, lead_id, n_events, history, alert_stage, alert_stay, alert_level); a tombstone
(value None) once housekeeping forgot the lead. Key `P<sep>partition`: the partition's
record, (PARTITION_RECORD, partition, input counters, last consumed offsets, held events,
alert outbox, (FORGOTTEN horizon, forgotten implicit creates per pipeline)); records written
before housekeeping existed end at the outbox, or before it.
"""
from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

import msgspec

from pulse.streams.lead import Lead

from .housekeeping import restore_housekeeping

if TYPE_CHECKING:
    from .live import PartitionState

pack = msgspec.msgpack.Encoder().encode
unpack = msgspec.msgpack.decode
LEAD_RECORD, PARTITION_RECORD = 1, 2
SEP = "\x1f"


def lead_key(pipeline: str, lead_id: str) -> bytes:
    return f"L{SEP}{pipeline}{SEP}{lead_id}".encode()


def partition_key(partition: int) -> bytes:
    return f"P{SEP}{partition}".encode()


def lead_record(partition: int, pipeline: str, lead: Lead) -> bytes:
    return pack((LEAD_RECORD, partition, pipeline, lead.lead_id, lead.n_events, bytes(lead.history),
                 lead.alert_stage, lead.alert_stay, lead.alert_level))


def partition_record(state: PartitionState) -> bytes:
    return pack((PARTITION_RECORD, state.partition, state.engine.counters(), state.offsets, state.held, state.outbox,
                 (state.horizon_us, state.implicit_forgotten)))


def restore_partition(state: PartitionState, record: list) -> list[bytes]:
    """Set a partition's counters, offsets, held events and housekeeping from its record;
    returns the record's alert outbox."""
    _, _, counters, offsets, held = record[:5]
    state.engine.restore_counters(counters)
    state.offsets = dict(offsets)
    state.held = [(h[0], h[1], h[2], tuple(h[3])) for h in held]
    heapq.heapify(state.held)
    if len(record) > 6:
        restore_housekeeping(state, *record[6])
    return list(record[5]) if len(record) > 5 else []
