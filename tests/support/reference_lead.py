"""The test oracle's SPEC section 3 (how events build lead state), and its time and
config helpers: part of the naive reference implementation (tests/support/reference.py, which
re-exports everything here).  Written for obviousness, not speed.

Times are integer microseconds since 1970-01-01T00:00:00Z throughout (as `Event.ts`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from pulse.config import Config, PipelineConfig, Stage, Window
from pulse.schemas.types import CLOSED, CREATED, STAGE_CHANGED, UPDATED, Event

US = 1_000_000                  # microseconds per second
DAY_US = 86_400 * US            # one day (86,400 s) in microseconds

# SPEC 3: ties at the same occurred_at are broken by type, lead.created <
# lead.updated < lead.stage_changed < deal.closed (written out here from the SPEC on
# purpose, rather than taken from the engine's own table).
TYPE_ORDER = {CREATED: 0, UPDATED: 1, STAGE_CHANGED: 2, CLOSED: 3}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------
# Times
# --------------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})"
)


def parse_time(text: str) -> int:
    """An RFC 3339 timestamp with offset (SPEC section 1's grammar) -> microseconds."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp with offset: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    if int(second) > 59:
        raise ValueError(f"no leap seconds: {text!r}")
    naive = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    us = (naive.replace(tzinfo=timezone.utc) - _EPOCH) // timedelta(microseconds=1)
    us += int((fraction or "")[:6].ljust(6, "0"))           # further digits truncated
    if offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 23 or off_m > 59:
            raise ValueError(f"bad offset: {text!r}")
        us -= sign * (off_h * 3600 + off_m * 60) * US
    return us


def format_time(us: int) -> str:
    """Microseconds -> RFC 3339 in UTC with `Z`; the fraction only when not zero."""
    dt = _EPOCH + timedelta(microseconds=us)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}"
    return text + "Z"


def day_start(us: int) -> int:
    """00:00:00 UTC of the day that contains `us`."""
    return us - us % DAY_US


# --------------------------------------------------------------------------------------
# Config helpers for tests (the types are pulse.config's)
# --------------------------------------------------------------------------------------

def make_pipeline(name: str, stages, qualified: str | None = None,
                  opportunity: str | None = None) -> PipelineConfig:
    """stages: [(name, stale_after_s or None, probability), ...] in pipeline order.

    qualified/opportunity default to the second stage (the first when only one), as
    SPEC section 2 says."""
    built = tuple(Stage(n, i, sa, float(p)) for i, (n, sa, p) in enumerate(stages))
    index = {s.name: s.index for s in built}
    default = built[1].name if len(built) > 1 else built[0].name
    return PipelineConfig(
        name=name,
        stages=built,
        stage_index=index,
        qualified_index=index[qualified or default],
        opportunity_index=index[opportunity or default],
    )


def make_config(pipelines, windows=(("7d", 7), ("30d", 30), ("90d", 90))) -> Config:
    """pipelines: iterable of PipelineConfig; windows: [(key, days), ...]."""
    return Config(
        pipelines={p.name: p for p in pipelines},
        windows=tuple(Window(k, d) for k, d in windows),
    )


# --------------------------------------------------------------------------------------
# Section 3: lead state
# --------------------------------------------------------------------------------------

@dataclass
class StayRec:
    stage: int                      # stage index
    start: int
    end: int | None = None          # None while open
    outcome: str | None = None      # advanced / regressed / won / lost
    to_stage: int | None = None     # for advanced / regressed: the stage moved to


@dataclass
class CloseRec:
    ts: int
    won: bool
    amount: float                   # the lead's amount after applying the closing event
    segment: dict                   # SPEC 4.8: owner/team/source just after the closing event


@dataclass
class LeadRec:
    pipeline: str
    lead_id: str
    created: int                    # creation time (explicit or implicit)
    implicit: bool
    created_segment: dict = field(default_factory=dict)  # 4.8: values just after creating
    stays: list = field(default_factory=list)     # every stay, in walk order
    closes: list = field(default_factory=list)    # closes that still count (not superseded)
    closed: bool = False
    owner: str | None = None
    team: str | None = None
    amount: float | None = None
    source: str | None = None

    @property
    def current(self) -> StayRec | None:
        """The current (open) stay of an open lead; None when the lead is closed."""
        return None if self.closed else self.stays[-1]

    def segment(self) -> dict:
        """The lead's value of each SPEC 4.8 dimension right now (None: never given)."""
        return {"owner": self.owner, "team": self.team, "source": self.source}


def spec_order(events: list[Event]) -> list[Event]:
    """SPEC 3's total order: occurred_at, then type, then event_id's UTF-8 bytes."""
    return sorted(events, key=lambda e: (e.ts, TYPE_ORDER[e.kind], e.event_id.encode("utf-8")))


def walk_lead(events: list[Event]) -> LeadRec | None:
    """Apply one lead's (already deduplicated) events in SPEC section 3's total order.

    Returns None for a lead that never exists (only `lead.updated` events, rule 8)."""
    lead: LeadRec | None = None
    closing_stay: StayRec | None = None   # the stay that the lead's latest close ended
    # rule 8: the fields of lead.updated events placed before the lead exists are held
    # here (latest in the order wins, as rule 7 says), and the lead starts with them.
    held = {"owner": None, "team": None, "amount": None, "source": None}

    for e in spec_order(events):
        if lead is None and e.kind == UPDATED:
            # rule 8: nothing exists yet; only hold the fields
            for name, value in (("owner", e.owner), ("team", e.team),
                                ("amount", e.amount), ("source", e.source)):
                if value is not None:
                    held[name] = value
            continue

        # ---- rules 1 and 2: creation (explicit or implicit) -------------------------
        if lead is None:
            lead = LeadRec(e.pipeline, e.lead_id, created=e.ts, implicit=(e.kind != CREATED),
                           owner=held["owner"], team=held["team"], amount=held["amount"],
                           source=held["source"])
            if e.kind == CREATED:
                lead.stays.append(StayRec(e.stage, e.ts))
            elif e.kind == STAGE_CHANGED:
                lead.stays.append(StayRec(e.stage, e.ts))        # starts in to_stage
            else:
                lead.stays.append(StayRec(0, e.ts))              # first stage; closed below
            created_now = True
        else:
            created_now = False

        # ---- rule 7: fields (before the close's amount is fixed) --------------------
        if e.owner is not None:
            lead.owner = e.owner
        if e.team is not None:
            lead.team = e.team
        if e.amount is not None:
            lead.amount = e.amount
        if e.kind in (CREATED, UPDATED) and e.source is not None:
            lead.source = e.source

        if created_now:
            # 4.8: the creation counts for the lead's values just after the creating
            # event (held update fields, then the creating event's own fields)
            lead.created_segment = lead.segment()

        # ---- structural effect -------------------------------------------------------
        if e.kind == CREATED:
            pass        # rule 1: a second lead.created only updates fields
        elif e.kind == UPDATED:
            pass        # rule 8: rule 7 and nothing else (also on a closed lead)
        elif e.kind == STAGE_CHANGED:
            if created_now:
                pass                                              # rule 2: already placed
            elif lead.closed:                                     # rule 6: reopen
                lead.closed = False
                lead.stays.append(StayRec(e.stage, e.ts))
            else:
                cur = lead.stays[-1]
                if e.stage == cur.stage:
                    pass                                          # rule 3: fields only
                else:                                             # rule 3: a transition
                    cur.end = e.ts
                    cur.outcome = "advanced" if e.stage > cur.stage else "regressed"
                    cur.to_stage = e.stage
                    lead.stays.append(StayRec(e.stage, e.ts))
        else:  # CLOSED
            outcome = "won" if e.won else "lost"
            amount = lead.amount if lead.amount is not None else 0.0
            # rule 7 and 4.8: amount and segment values fixed now, after this event
            if not lead.closed:                                   # rules 2 and 4
                cur = lead.stays[-1]
                cur.end = e.ts
                cur.outcome = outcome
                closing_stay = cur
                lead.closed = True
                lead.closes.append(CloseRec(e.ts, e.won, amount, lead.segment()))
            else:                                                 # rule 5: supersede
                lead.closes.pop()                                 # no longer counts anywhere
                closing_stay.end = e.ts
                closing_stay.outcome = outcome
                lead.closes.append(CloseRec(e.ts, e.won, amount, lead.segment()))
    return lead
