"""How events build lead state (SPEC section 3), as one transition function.

`apply_event(lead, event, stats, sign)` walks one event of a lead, in SPEC 3's
event-time order, and reports every contribution it makes (a stay started or
ended, a creation, a close, a qualification) to the pipeline's accumulators,
multiplied by `sign`. Folding a lead's events with sign -1 therefore removes
exactly what folding them with +1 added: that is how a late event is handled
(revert the lead, re-fold it with the event in place), with no second code path.

The lead's *current* state (open or not, stage, amount) is not a contribution of
any one event: the open pipeline and stale leads are read from the open leads at T.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from pulse.schemas.types import CLOSED, CREATED, STAGE_CHANGED, UPDATED, Event

from .flow import ADVANCED, LOST, REGRESSED, WON

if TYPE_CHECKING:
    from .engine import PipelineState


_BEFORE_ANY_TS = -(1 << 63)    # µs; RFC 3339 years start at 0001 (about -6.2e16)


class Lead(msgspec.Struct, gc=False, eq=False):
    """Derived state of one lead (identified by pipeline and lead_id).

    Not tracked by Python's cyclic collector (`gc=False`): a lead holds only atoms (numbers,
    strings, a bytearray, an interned tuple of strings), so it can never be part of a
    reference cycle, and the worker holds one per lead (half of its tracked objects at 81,000
    leads): the collector no longer walks them, and new leads no longer fill its younger
    generations (bench/README.md, "Leads outside the collector"). Compared by identity."""

    lead_id: str
    created: int | None = None      # creation time (explicit or implicit); None: not created yet
    implicit: bool = False          # created by an event other than lead.created
    stage: int = 0                  # stage of the current stay (open) or of the closing stay (closed)
    stay_start: int = 0
    is_open: bool = False
    close_ts: int | None = None     # the close that counts (a later close supersedes it)
    won: bool = False
    close_amount: float | None = None
    # (owner, team, source) the counting close is attributed to (SPEC 4.8): what a
    # superseding close removes.
    close_segment: tuple = ()
    owner: str | None = None
    team: str | None = None
    source: str | None = None
    amount: float | None = None
    qualified_at: int | None = None     # start of the first stay at or after qualified_stage
    # occurred_at and kind of the latest applied event (its SPEC 3 order key is
    # (ts, TIE_RANK[kind], event_id)); before any, earlier than every timestamp.
    last_ts: int = _BEFORE_ANY_TS
    last_kind: int = CREATED
    history: bytearray = msgspec.field(default_factory=bytearray)   # applied events, see history.py
    n_events: int = 0               # how many records `history` holds
    # The stay (stage, start) a lead.stale alert was raised for, and its highest level
    # raised (SPEC 6): the live worker's memory of what it already said.
    alert_stage: int = -1
    alert_stay: int = -1
    alert_level: int = 0

    def copy_state(self) -> Lead:
        """A lead with the same derived state (not the history or the alert memory)."""
        twin = Lead(self.lead_id)
        for name in DERIVED:
            setattr(twin, name, getattr(self, name))
        return twin


# Not derived from the events: kept as they are when a late event re-derives the lead.
NOT_DERIVED = ("history", "n_events", "alert_stage", "alert_stay", "alert_level")
DERIVED = tuple(name for name in Lead.__struct_fields__ if name not in NOT_DERIVED)


def apply_event(lead: Lead, ev: Event, p: PipelineState, sign: int) -> None:
    # One unpack instead of an attribute look-up per field: this runs once per event. The
    # slice is a plain tuple, which unpacks faster than the Event (a tuple subclass).
    ts, kind, stage, _won, amount, owner, team, source = ev[:8]
    # Fields first (3.7): a creation or close counts for the owner/team/source *after* its
    # event (4.8), and a close takes the amount after it. Before the lead exists they are
    # held on it, and it starts with them (3.8). Values are shared between leads
    # (p.intern): one string per rep, not per lead. Most events repeat the lead's owner
    # and team: then there is nothing to intern (no hashing).
    if owner is not None and owner != lead.owner:
        lead.owner = p.intern(owner, owner)
    if team is not None and team != lead.team:
        lead.team = p.intern(team, team)
    if source is not None and source != lead.source:         # only lead.created and lead.updated carry it
        lead.source = p.intern(source, source)
    if amount is not None and amount != lead.amount:             # most events repeat the amount
        if lead.is_open:
            p.flow.open_amount_changed(ts, lead.stage, lead.amount, amount, sign)
        lead.amount = amount

    if lead.created is None:                                    # 3.1 and 3.2: the lead begins
        if kind == UPDATED:                                     # 3.8: never creates; fields held
            return
        lead.created = ts
        p.deals.lead_created(ts, (lead.owner, lead.team, lead.source), sign)
        if kind != CREATED:
            lead.implicit = True
            p.implicit_creates += sign
        lead.is_open = True
        # _start_stay, inlined: once per lead
        if kind == CLOSED:
            stage = 0
        lead.stage = stage
        lead.stay_start = ts
        p.flow.stay_started(stage, ts, lead.amount, sign)
        if stage >= p.qualified_index:
            lead.qualified_at = ts
            p.deals.lead_qualified(ts, sign)
        if kind == CLOSED:                                      # implicit create and close at once
            _close(lead, ev, p, sign)
        return

    if kind == STAGE_CHANGED:
        to_stage = stage
        if lead.is_open:
            from_stage = lead.stage
            if to_stage == from_stage:                          # 3.3: same stage, fields only
                return
            outcome = ADVANCED if to_stage > from_stage else REGRESSED
            p.flow.moved(from_stage, lead.stay_start, ts, outcome, to_stage, lead.amount, sign)
            lead.stage = to_stage
            lead.stay_start = ts
            if lead.qualified_at is None and to_stage >= p.qualified_index:
                lead.qualified_at = ts
                p.deals.lead_qualified(ts, sign)
        else:                                                   # 3.6: reopen; no stay ends
            lead.is_open = True
            _start_stay(lead, to_stage, ts, p, sign)
    elif kind == CLOSED:
        if lead.is_open:                                        # 3.4
            _close(lead, ev, p, sign)
        else:                                                   # 3.5: supersede the earlier close
            # The earlier close's stay end moves to this one; the lead left the open pipeline then, still.
            p.flow.stay_ended(lead.stage, lead.stay_start, lead.close_ts, WON if lead.won else LOST, -1, -sign,
                              leaves_open=False)
            p.deals.closed(lead.close_ts, lead.won, lead.close_amount, lead.created, lead.close_segment, -sign)
            _close(lead, ev, p, sign, superseding=True)
    # kind == CREATED or UPDATED on an existing lead: fields only (3.1, 3.8)


def _start_stay(lead: Lead, stage: int, ts: int, p: PipelineState, sign: int) -> None:
    """The lead is open in `stage` from ts: created, or reopened."""
    lead.stage = stage
    lead.stay_start = ts
    p.flow.stay_started(stage, ts, lead.amount, sign)
    if lead.qualified_at is None and stage >= p.qualified_index:
        lead.qualified_at = ts
        p.deals.lead_qualified(ts, sign)


def _close(lead: Lead, ev: Event, p: PipelineState, sign: int, superseding: bool = False) -> None:
    # By index, not by name: a re-fold passes a history's raw rows (history.rows), whose
    # first eight fields are an Event's.
    ts, won = ev[0], ev[3]
    amount = lead.amount if lead.amount is not None else 0.0
    p.flow.stay_ended(lead.stage, lead.stay_start, ts, WON if won else LOST, -1, sign, lead.amount,
                      leaves_open=not superseding)
    segment = (lead.owner, lead.team, lead.source)
    segment = p.intern(segment, segment)        # one tuple per combination, not one per closed lead
    p.deals.closed(ts, won, amount, lead.created, segment, sign)
    lead.is_open = False
    lead.close_ts = ts
    lead.won = won
    lead.close_amount = amount
    lead.close_segment = segment
