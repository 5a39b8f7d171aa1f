"""The analytics engine: events in (one at a time, any arrival order), report out.

This is the one core shared by `pulse report` and the live worker. It owns the
SPEC's bookkeeping around the lead fold (lead.py): validation outcome counts,
duplicates, event-time ordering with late events, and the `as_of` cut-off.
Time is always a parameter; nothing here reads the clock or does I/O.
"""
from __future__ import annotations

from collections import Counter
from operator import attrgetter
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from pulse.schemas.config import Config, PipelineConfig
from pulse.schemas.fast_path import DECODE_ERRORS, LONG_LINE, decode, decode_fast, doubtful, event_of
from pulse.schemas.parse import parse_exact
from pulse.schemas.types import EVENT_ID, KIND, LEAD_ID, PIPELINE, REASONS, TIE_RANK, TS, Event, Rejected

from . import history
from .deals import DealFlow
from .flow import StageFlow
from .lead import DERIVED, Lead, apply_event
from .open_index import OpenFigures, OpenIndex, open_figures

if TYPE_CHECKING:
    from pulse.schemas.fast_path import _Common

# What happened to one input (SPEC 5 data_quality); dead-lettered inputs return their reason.
APPLIED, DUPLICATE, AFTER_AS_OF = "applied", "duplicate", "after_as_of"
# A message the lead already holds from the same source offset: applied before a
# crash whose counters were not yet durable. Counted as applied; changes nothing.
REDELIVERED = "redelivered"
# Valid, but after the live clock: counted as after_as_of until `release` applies it.
HELD = "held"
_NEVER = 1 << 80   # an as_of later than any event


_encode_record = history.encode_record


class PipelineState:
    """Everything the engine knows about one configured pipeline."""

    def __init__(self, config: PipelineConfig):
        self.config = config
        self.qualified_index = config.qualified_index
        self.flow = StageFlow(len(config.stages))
        self.deals = DealFlow()                             # creations and closes, also per owner/team/source
        self.implicit_creates = 0
        self.leads: dict[str, Lead] = {}
        self.open_leads: dict[str, Lead] = {}
        self.intern = {}.setdefault         # owner/team/source strings and close segments shared by the leads
        self.state_only = _StateOnly(self)
        # The open leads kept indexed per event (the live worker: reads without a walk), else None.
        self.open_index: OpenIndex | None = None
        self.merged_indexes: list[OpenIndex] = []       # other states' open leads, merged without their leads
        # other states' open leads not indexed (a peer's share, partial.py), as runs of rows (see open_rows)
        self.merged_rows: list[Sequence[tuple]] = []

    def merge(self, other: PipelineState, leads: bool = True) -> None:
        """Add the state of disjoint leads (another shard or worker) to this one.

        `leads=False`: for a report only. The other's open leads are taken as its index
        (shared, not copied), or as rows, and its leads are not copied: this state can
        report, not take events."""
        self.flow.merge(other.flow)
        self.deals.merge(other.deals)
        self.implicit_creates += other.implicit_creates
        self.merged_indexes += other.merged_indexes
        self.merged_rows += other.merged_rows
        if leads:
            self.leads.update(other.leads)
            self.open_leads.update(other.open_leads)
        elif other.open_index is not None:
            self.merged_indexes.append(other.open_index)
        elif other.open_leads:
            self.merged_rows.append(list(map(_ROW_OF_LEAD, other.open_leads.values())))

    def open_rows(self) -> Iterator[tuple]:
        """(lead_id, stage, stay_start, owner, team, source, amount) per open lead (a peer's
        share, partial.py), without building an index that is not kept."""
        if self.open_index is not None:
            yield from self.open_index.rows()
        else:
            yield from map(_ROW_OF_LEAD, self.open_leads.values())
        for index in self.merged_indexes:
            yield from index.rows()
        for rows in self.merged_rows:
            yield from rows

    def open_figures(self, as_of: int) -> OpenFigures:
        """The open leads' figures at T (open_index.py): from the indexes kept per event, and in
        one pass over the open leads no index holds (`pulse report` builds none: cheaper)."""
        indexes = ([self.open_index] if self.open_index is not None else []) + self.merged_indexes
        rows = self.merged_rows
        if self.open_index is None and self.open_leads:
            rows = [*rows, map(_ROW_OF_LEAD, self.open_leads.values())]
        return open_figures(indexes, self.config, as_of, rows)


# An open lead as a row of open_rows (in C: no Python frame per lead)
_ROW_OF_LEAD = attrgetter("lead_id", "stage", "stay_start", "owner", "team", "source", "amount")


class _Discard:
    """The accumulator calls of lead.py (StageFlow's and DealFlow's), keeping nothing."""

    def _ignore(self, *args, **kwargs) -> None:
        return None

    stay_started = stay_ended = moved = open_amount_changed = _ignore               # StageFlow
    lead_created = lead_qualified = closed = _ignore                                # DealFlow


class _StateOnly:
    """A PipelineState for folds that only want the lead's state (lead.py), not its
    contributions: `PulseEngine._refold` walks a late event's predecessors with it."""

    def __init__(self, p: PipelineState):
        self.config = p.config
        self.qualified_index = p.qualified_index
        self.intern = p.intern
        self.implicit_creates = 0           # written, never read
        self.flow = self.deals = _Discard()


class PulseEngine:
    """Incremental SPEC 3-4 state over every configured pipeline.

    `as_of`: when given, events after it are counted as `after_as_of` and never
    applied (SPEC 4: they do not exist yet). Reports must be asked for at a time
    no earlier than the latest applied event.
    """

    def __init__(self, config: Config, as_of: int | None = None, index_open: bool = False):
        """`index_open`: keep the open leads indexed per event (OpenIndex), for reports that cost
        per stale lead instead of per open lead (the live worker; `pulse report` indexes once, at the end)."""
        self.config = config
        self.as_of = as_of
        self.pipelines = {name: PipelineState(pc) for name, pc in config.pipelines.items()}
        if index_open:
            for p in self.pipelines.values():
                p.open_index = OpenIndex(p.config)
        self.events_read = 0
        self.applied = 0
        self.duplicates = 0
        self.after_as_of = 0
        self.dead_letter_reasons = Counter({r: 0 for r in REASONS})
        self.max_ts: int | None = None      # latest occurred_at of a valid event
        self._cutoff = as_of if as_of is not None else _NEVER
        self.last_event: Event | None = None    # the latest event ingest_event applied
        # whether it began or ended a stay of its lead (a stage, an open/closed change): what
        # the live worker's alert schedule follows (the rest changes fields only)
        self.last_stay_changed = False

    # -- input -------------------------------------------------------------------------

    def ingest(self, raw: bytes | str, expected_type: str | None = None, offset: int | None = None,
               hold_after: int | None = None) -> str | Rejected:
        """Parse, classify and apply one input.

        Returns APPLIED, DUPLICATE, AFTER_AS_OF, REDELIVERED, HELD or the Rejected.
        `offset` is the input's Kafka offset, when it has one (see REDELIVERED).
        `hold_after` (the live wall clock): a valid event after it is not applied yet
        but HELD, counted as after_as_of, and left in `last_event` for the caller to
        `release` once the clock has passed it (SPEC 4: later events do not exist yet).
        """
        return self.ingest_decoded(raw, decode_fast(raw), expected_type, offset, hold_after)

    def ingest_decoded(self, raw: bytes | str, decoded: _Common | None, expected_type: str | None = None,
                       offset: int | None = None, hold_after: int | None = None) -> str | Rejected:
        """`ingest` for a caller that already has `decode_fast(raw)` (it routed the line by it)."""
        ev = self.accept(raw, decoded, expected_type)
        if ev.__class__ is Rejected:
            return ev
        if hold_after is not None and ev.ts > hold_after:
            self.after_as_of += 1
            self.last_event = ev
            return HELD
        return self.ingest_event(ev, offset)

    def accept(self, raw: bytes | str, decoded: _Common | None, expected_type: str | None = None) -> Event | Rejected:
        """Count one input and parse it, given `decode_fast(raw)`: its Event (not applied yet:
        see `ingest_event`), or its Rejected, counted as dead-lettered.

        `pulse report --jobs` accepts a line in the process that reads it and applies the
        event in the process that holds its lead.
        """
        self.events_read += 1
        # parse_event, inlined (this is the hot path): the fast path's two steps, else the exact one.
        ev = event_of(decoded, self.config, expected_type) if decoded is not None else None
        return ev if ev is not None else self._accept_exact(raw, expected_type)

    def accept_line(self, raw: bytes) -> Event | Rejected | None:
        """`accept(raw, decode_fast(raw))` of a line of a file in one Python call less, and
        None for a blank line (not an input: not counted): `pulse report`'s per-line path."""
        if len(raw) > LONG_LINE and doubtful(raw):          # decode_fast, inlined (raw is bytes)
            decoded = None
        else:
            try:
                decoded = decode(raw)
            except DECODE_ERRORS:
                decoded = None
        if decoded is not None:
            ev = event_of(decoded, self.config, None)
            if ev is not None:
                self.events_read += 1
                return ev
        elif not raw or raw.isspace():                      # never decodes: tested only then
            return None
        self.events_read += 1
        return self._accept_exact(raw, None)

    def _accept_exact(self, raw: bytes | str, expected_type: str | None) -> Event | Rejected:
        """An input the fast path left to the exact one: its Event, or its Rejected, counted."""
        ev = parse_exact(raw, self.config, expected_type)
        if ev.__class__ is Rejected:
            self.dead_letter_reasons[ev.reason] += 1
        return ev

    def release(self, ev: Event, offset: int | None = None) -> str:
        """Apply an event that was HELD: it is no longer after the clock."""
        self.after_as_of -= 1
        return self.ingest_event(ev, offset)

    def ingest_many(self, lines: Iterable[bytes | str]) -> None:
        for line in lines:
            self.ingest(line)

    def ingest_event(self, ev: Event, offset: int | None = None) -> str:
        """Apply one valid event (already counted in events_read by the caller)."""
        # Fields by position: on CPython 3.11 a NamedTuple attribute is a generic
        # descriptor look-up, several times the cost of an index, and this runs per event.
        ts = ev[TS]
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts
        if ts > self._cutoff:
            self.after_as_of += 1
            return AFTER_AS_OF
        event_id = ev[EVENT_ID]
        lead_id = ev[LEAD_ID]
        p = self.pipelines[ev[PIPELINE]]
        lead = p.leads.get(lead_id)
        if lead is None:
            lead = p.leads[lead_id] = Lead(lead_id)
        # history.contains_event_id's first test, inlined (the common case: not there; why find: see there)
        elif lead.history.find(history.encode_str(event_id)) >= 0 and history.contains_event_id(
                lead.history, lead.n_events, event_id):
            if offset is not None and history.offset_of(lead.history, lead.n_events, event_id) == offset:
                self.applied += 1
                return REDELIVERED
            self.duplicates += 1
            return DUPLICATE
        self.applied += 1
        was_open, stage_before, start_before = lead.is_open, lead.stage, lead.stay_start
        if ts > lead.last_ts or (ts == lead.last_ts and self._after_last(lead, ev, p)):
            apply_event(lead, ev, p, +1)                       # in order: the common case
            lead.last_ts = ts
            lead.last_kind = ev[KIND]
            # history.encode, inlined; a bytearray: extended in place
            lead.history += _encode_record(ev[:8] + (offset, event_id))
            lead.n_events += 1
        else:
            self._refold(lead, ev, offset, p)                   # late: revert and re-derive the lead
        self.last_event = ev
        self.last_stay_changed = (lead.is_open != was_open or lead.stay_start != start_before
                                  or lead.stage != stage_before)
        if lead.is_open != was_open:                            # keep the index of open leads (SPEC 4.4, 4.5)
            if was_open:
                del p.open_leads[lead.lead_id]
            else:
                p.open_leads[lead.lead_id] = lead
        if p.open_index is not None:
            p.open_index.update(lead)
        return APPLIED

    @staticmethod
    def _after_last(lead: Lead, ev: Event, p: PipelineState) -> bool:
        """Whether `ev`, at the same occurred_at as the lead's latest applied event, comes
        after it in SPEC 3's order (type rank, then event_id)."""
        rank, last_rank = TIE_RANK[ev[KIND]], TIE_RANK[lead.last_kind]
        if rank != last_rank:
            return rank > last_rank
        return ev[EVENT_ID] > history.rows(lead.history, lead.n_events)[-1][9]     # the latest: the last row

    def _refold(self, lead: Lead, ev: Event, offset: int | None, p: PipelineState) -> None:
        """A late event: revert the contributions of the lead's events from the late one's
        place on, and fold them again with it in place.

        The events before that place contribute the same either way, so they are only
        walked for the lead's state there (against `state_only`: no contributions). The
        history's raw rows are folded as they are (no Event per record), and the late
        event's record is inserted at its place (the history stays in SPEC 3 order).
        """
        rows = history.rows(lead.history, lead.n_events)     # in SPEC 3 order (history.py)
        key = history.sort_key(ev)
        k = len(rows)
        while k and history.row_key(rows[k - 1]) > key:      # late events are mostly a little late
            k -= 1
        later = rows[k:]
        fresh = Lead(lead.lead_id)
        self._fold(fresh, rows[:k], p.state_only, +1)
        self._fold(fresh.copy_state(), later, p, -1)
        self._fold(fresh, [ev, *later], p, +1)
        for name in DERIVED:
            setattr(lead, name, getattr(fresh, name))
        # The later rows' records are the history's tail (a row re-encodes to its record's bytes).
        at = len(lead.history) - sum(len(_encode_record(row)) for row in later)
        lead.history[at:at] = _encode_record(ev[:8] + (offset, ev[EVENT_ID]))
        lead.n_events += 1

    def restore_lead(self, pipeline: str, lead_id: str, events: bytes, n_events: int) -> Lead:
        """Rebuild a lead (and its contributions) from its durable history (live worker recovery)."""
        p = self.pipelines[pipeline]
        lead = p.leads.get(lead_id)
        if lead is not None:                        # replacing: remove what it contributed
            self._fold(Lead(lead_id), history.rows(lead.history, lead.n_events), p, -1)
            p.open_leads.pop(lead_id, None)
        lead = p.leads[lead_id] = Lead(lead_id)
        rows = history.rows(events, n_events)
        ordered = sorted(rows, key=history.row_key)
        if ordered != rows:                         # kept in SPEC 3 order (history.py); re-ordered if not
            events = b"".join(_encode_record(row) for row in ordered)
        self._fold(lead, ordered, p, +1)
        lead.history, lead.n_events = bytearray(events), n_events
        if lead.is_open:
            p.open_leads[lead_id] = lead
        if p.open_index is not None:
            p.open_index.update(lead)
        return lead

    def lead_by_id(self, pipeline: str, lead_id: str) -> Lead | None:
        return self.pipelines[pipeline].leads.get(lead_id)

    def lead(self, pipeline: str, lead_id: str) -> Lead | None:
        p = self.pipelines.get(pipeline)
        return p.leads.get(lead_id) if p is not None else None

    # -- input counters (durable in the live worker) --------------------------------------

    def counters(self) -> dict:
        """The input counts no lead can re-derive (SPEC 5 data_quality, without implicit_creates)."""
        return {"events_read": self.events_read, "applied": self.applied, "duplicates": self.duplicates,
                "after_as_of": self.after_as_of, "dead_letter_reasons": dict(self.dead_letter_reasons),
                "max_ts": self.max_ts}

    def restore_counters(self, c: dict) -> None:
        self.events_read, self.applied = c["events_read"], c["applied"]
        self.duplicates, self.after_as_of = c["duplicates"], c["after_as_of"]
        self.dead_letter_reasons = Counter({r: 0 for r in REASONS})
        self.dead_letter_reasons.update(c["dead_letter_reasons"])
        self.max_ts = c["max_ts"]

    def _fold(self, lead: Lead, events: list[Event], p: PipelineState, sign: int) -> None:
        for e in events:
            apply_event(lead, e, p, sign)
        if events:
            lead.last_ts, lead.last_kind = events[-1][0], events[-1][1]     # an Event or a history row

    # -- combining shards ------------------------------------------------------------------

    def merge(self, other: PulseEngine, leads: bool = True) -> None:
        """Add another engine's state; both must hold disjoint sets of leads (e.g. shards by lead_id).
        `leads=False`: for a report only (PipelineState.merge).

        `other` is left unchanged and shares no mutable accumulator with this engine
        (its Lead objects are shared, read-only here), so live partitions can be merged
        into a fresh engine for a report and go on taking events.
        """
        self.add_counters(other)
        for name, p in self.pipelines.items():
            p.merge(other.pipelines[name], leads)

    def add_counters(self, other: PulseEngine) -> None:
        """Add another engine's input counters (data_quality but implicit_creates) and latest time."""
        self.events_read += other.events_read
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.after_as_of += other.after_as_of
        self.dead_letter_reasons.update(other.dead_letter_reasons)
        if other.max_ts is not None and (self.max_ts is None or other.max_ts > self.max_ts):
            self.max_ts = other.max_ts

    # -- output ------------------------------------------------------------------------

    def default_as_of(self, now_us: int) -> int:
        """SPEC 7: the given as_of, else the latest occurred_at of a valid event, else now."""
        if self.as_of is not None:
            return self.as_of
        return self.max_ts if self.max_ts is not None else now_us

    def data_quality(self) -> dict:
        dead = sum(self.dead_letter_reasons.values())
        implicit = sum(p.implicit_creates for p in self.pipelines.values())
        return {
            "events_read": self.events_read,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "implicit_creates": implicit,
            "dead_lettered": dead,
            "after_as_of": self.after_as_of,
            "dead_letter_reasons": {r: self.dead_letter_reasons[r] for r in REASONS},
        }
