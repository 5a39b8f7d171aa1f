"""The parsed forms of an input: a valid `Event` or a `Rejected` one (SPEC section 1)."""
from __future__ import annotations

from typing import NamedTuple

MAX_ID_CHARS = 128          # `event_id` and `lead_id`: 1..128 code points
DEFAULT_PIPELINE = "default"  # the pipeline of an event without one

# Event kinds. These numbers are stored in durable lead histories (streams/history.py,
# the worker's changelog), so they are never renumbered: v2's lead.updated got the next
# free code. SPEC section 3's tie-break between events of one lead with the same
# occurred_at is TIE_RANK[kind]: created < updated < stage_changed < closed.
CREATED, STAGE_CHANGED, CLOSED, UPDATED = 0, 1, 2, 3
TIE_RANK = (0, 2, 3, 1)
KIND_BY_TYPE = {"lead.created": CREATED, "lead.updated": UPDATED, "lead.stage_changed": STAGE_CHANGED,
                "deal.closed": CLOSED}

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
    kind: int               # CREATED, UPDATED, STAGE_CHANGED or CLOSED
    stage: int              # CREATED: start stage index (0 when absent); STAGE_CHANGED: to_stage index; else -1
    won: bool               # CLOSED: outcome == "won"; otherwise False
    amount: float | None
    owner: str | None
    team: str | None
    source: str | None      # `source` of lead.created and lead.updated; None on the other types
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
