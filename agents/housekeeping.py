"""The worker's housekeeping: per partition, forget what no future report can read.

streams/housekeeping.py decides what (day buckets before the horizon, closed leads whose
every event is before it); this applies it to a partition's live state and makes it
durable and visible:
- a forgotten lead's changelog record becomes a tombstone (written by the next flush, before
  the partition record), so a recovery does not bring it back;
- the forgotten implicit creates and the FORGOTTEN horizon (below) ride in the partition
  record, so a recovered partition counts SPEC 5's implicit_creates as before and keeps
  the horizon;
- the Redis serving layer is told the lead changed (it deletes what it holds of it).

It runs from the worker's timer (LivePulse.tick), once per partition each time the horizon
has moved SWEEP_DAYS days (and once after a start or a recovery): a walk over the
partition's leads, off the per-event path (bench/bench_housekeeping.py: ~15 ms per 35,000
leads held), one partition per tick (the one swept longest ago), so that the loop is never
held for a walk over every partition at once (a tick took ~30 ms with four). Weekly rather
than daily: in a replay in event time, days pass in seconds, and a daily walk cost a fifth
of the worker's CPU; it costs at most SWEEP_DAYS more days held (and a few ticks).

Once it forgot a lead, a partition applies one rule per event (LivePulse.on_message): a
valid event of a lead the partition does not hold, dated no later than the latest event
of any lead it forgot (`horizon_us` is that + 1), is counted as a duplicate (SPEC 5) and
not applied, with the result FORGOTTEN (`pulse_events_consumed` by result): the input a
worker re-reads (a replay, a producer re-sending) would otherwise bring a forgotten lead
back as a new one. docs/operations.md "Housekeeping" says what that costs. A wall-clock
partition catching up (a restart, a rebuild from the input topics) does not sweep: the
old leads of its backlog are applied first.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pulse.streams.housekeeping import forget, keep_from_day, plan

if TYPE_CHECKING:
    from .live import PartitionState

FORGOTTEN = "forgotten"
SWEEP_DAYS = 7
NO_HORIZON = -(1 << 62)     # before any timestamp SPEC 1 allows


def sweep_due(state: PartitionState, now_us: int) -> bool:
    """Whether the horizon moved SWEEP_DAYS since the partition's last sweep (or this process never swept it)."""
    first = keep_from_day(now_us, (w.days for w in state.engine.config.windows))
    return state.swept_from is None or first >= state.swept_from + SWEEP_DAYS


def housekeep_partition(state: PartitionState, now_us: int) -> int:
    """Forget what no report at T >= now_us reads (call it when `sweep_due`: LivePulse.housekeep
    picks the partition); returns how many leads were forgotten."""
    engine = state.engine
    first = keep_from_day(now_us, (w.days for w in engine.config.windows))
    decided = plan(engine, now_us)
    for name, n in forget(engine, decided).items():
        state.implicit_forgotten[name] = state.implicit_forgotten.get(name, 0) + n
    for name, ids in decided.leads.items():
        for lead_id in ids:
            key = (name, lead_id)
            state.dirty.pop(key, None)
            state.forgotten.append(key)
            if state.changed is not None:
                state.changed.add(key)
    state.swept_from = first
    if decided.latest_us is not None and decided.latest_us >= state.horizon_us:
        state.horizon_us = decided.latest_us + 1
        state.counters_dirty = True
    return len(decided)


def restore_housekeeping(state: PartitionState, horizon_us: int, implicit_forgotten: dict[str, int]) -> None:
    """The housekeeping part of a recovered partition record."""
    state.horizon_us = horizon_us
    state.implicit_forgotten = dict(implicit_forgotten)
    for name, n in implicit_forgotten.items():
        p = state.engine.pipelines.get(name)
        if p is not None:
            p.implicit_creates += n
