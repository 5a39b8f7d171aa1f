"""The parsed forms of an input: a valid `Event` or a `Rejected` one (SPEC section 1)."""
from __future__ import annotations

from typing import NamedTuple

# Event kinds. Their numeric order is SPEC section 3's tie-break between events
# of one lead with the same occurred_at: created < stage_changed < closed.
CREATED, STAGE_CHANGED, CLOSED = 0, 1, 2
KIND_BY_TYPE = {"lead.created": CREATED, "lead.stage_changed": STAGE_CHANGED, "deal.closed": CLOSED}
TYPE_BY_KIND = {v: k for k, v in KIND_BY_TYPE.items()}

# Dead-letter reasons, in SPEC order: an input with several faults gets the first.
INVALID_JSON = "invalid_json"
INVALID_EVENT = "invalid_event"
UNKNOWN_PIPELINE = "unknown_pipeline"
UNKNOWN_STAGE = "unknown_stage"
REASONS = (INVALID_JSON, INVALID_EVENT, UNKNOWN_PIPELINE, UNKNOWN_STAGE)


class Event(NamedTuple):
    """A valid input event, reduced to what the analytics core uses.

    The first nine fields are, in this order, the record a lead's history keeps
    (streams/history.py), so that record is a slice; event_id ends it on purpose.
    """

    ts: int                 # occurred_at as microseconds since 1970-01-01T00:00:00Z
    kind: int               # CREATED, STAGE_CHANGED or CLOSED
    stage: int              # CREATED: start stage index (0 when absent); STAGE_CHANGED: to_stage index; CLOSED: -1
    won: bool               # CLOSED: outcome == "won"; otherwise False
    amount: float | None
    owner: str | None
    team: str | None
    source: str | None      # lead.created's `source`; None otherwise
    event_id: str
    pipeline: str           # resolved: "default" when absent
    lead_id: str


# Event's field positions, for hot paths that index instead of naming (see PulseEngine.ingest_event).
TS, KIND, STAGE, WON, AMOUNT, OWNER, TEAM, SOURCE, EVENT_ID, PIPELINE, LEAD_ID = range(11)
assert Event._fields[LEAD_ID] == "lead_id" and Event._fields[TS] == "ts"


class Rejected(NamedTuple):
    """An input that cannot be applied: it goes to the dead-letter topic with `reason`."""

    reason: str             # one of REASONS
    detail: str             # short human explanation, never contains field values (no PII)
