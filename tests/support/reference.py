"""A deliberately naive batch implementation of SPEC (v2) sections 3-5 (the test oracle).

This is the project's *second, independent* reading of the contract in SPEC.md. It
is written for obviousness, not speed: it reads every input, groups the applied
events by lead, sorts each lead's events, walks SPEC section 3's rules literally
while keeping explicit lists of stays and closes, and then computes every metric of
section 4 straight from its definition with plain loops (exact nearest-rank
percentiles, exact means).  Validation (section 1) is not re-implemented here: it is
`pulse.schemas.parse.parse_event`'s job.  Section 3 (and the time and config helpers)
live in tests/support/reference_lead.py; this module re-exports them.  Section 4, per
pipeline, is in tests/support/reference_metrics.py.

v2: `lead.updated` (rules 7 and 8, reference_lead.py), segments by owner, team and
source (4.8: each creation and counting close remembers the lead's values just after
its event) and the forecast (4.9: the open pipeline at a window's start is re-folded
from scratch, lead by lead, from its events before that instant).

Times are integer microseconds since 1970-01-01T00:00:00Z throughout (as `Event.ts`).

Readings of points the SPEC leaves open are marked "READING:" below.
"""
from __future__ import annotations

import time

from pulse.schemas.config import Config
from pulse.schemas.parse import parse_event
from pulse.schemas.types import REASONS, Event, Rejected
from tests.support.reference_lead import (  # noqa: F401  (re-exported: the tests' one import point)
    DAY_US,
    TYPE_ORDER,
    US,
    CloseRec,
    LeadRec,
    StayRec,
    day_start,
    format_time,
    make_config,
    make_pipeline,
    parse_time,
    spec_order,
    walk_lead,
)
from tests.support.reference_metrics import pipeline_report


# --------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------

def _is_blank(raw: bytes) -> bool:
    # READING: "only whitespace" = ASCII whitespace as Python's bytes.strip() sees it
    # (space, \t, \n, \r, \v, \f).
    return raw.strip() == b""


def reference_report(lines, config: Config, as_of: str | None = None) -> dict:
    """The full SPEC section 5 document for `lines` (one input each), as of `as_of`."""
    # ---- section 5 inputs and section 1 validation ----------------------------------
    inputs: list[bytes] = []
    for line in lines:
        raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else bytes(line)
        if _is_blank(raw):
            continue
        inputs.append(raw)
    parsed = [parse_event(raw, config) for raw in inputs]

    # ---- T -------------------------------------------------------------------------
    if as_of is not None:
        T = parse_time(as_of)
    else:
        valid_ts = [p.ts for p in parsed if isinstance(p, Event)]
        # READING: "a valid event" = any input that is not dead-lettered (duplicates too).
        T = max(valid_ts) if valid_ts else time.time_ns() // 1000

    # ---- data quality classification (first that applies) ----------------------------
    reasons = {r: 0 for r in REASONS}
    dead_lettered = after_as_of = duplicates = 0
    seen: set = set()
    applied: list[Event] = []
    for p in parsed:
        if isinstance(p, Rejected):
            dead_lettered += 1
            reasons[p.reason] += 1
        elif p.ts > T:
            after_as_of += 1            # does not exist yet: not even a duplicate's original
        elif (p.pipeline, p.lead_id, p.event_id) in seen:
            duplicates += 1
        else:
            seen.add((p.pipeline, p.lead_id, p.event_id))
            applied.append(p)

    # ---- section 3: walk every lead --------------------------------------------------
    by_lead: dict = {}
    for e in applied:
        by_lead.setdefault((e.pipeline, e.lead_id), []).append(e)
    walked = [walk_lead(evs) for _, evs in sorted(by_lead.items())]
    leads = [lead for lead in walked if lead is not None]     # rule 8: update-only leads
    implicit_creates = sum(1 for lead in leads if lead.implicit)

    doc = {
        "as_of": format_time(T),
        "data_quality": {
            "events_read": len(inputs),
            "applied": len(applied),
            "duplicates": duplicates,
            "implicit_creates": implicit_creates,
            "dead_lettered": dead_lettered,
            "after_as_of": after_as_of,
            "dead_letter_reasons": reasons,
        },
        "pipelines": {},
    }
    for name, pc in config.pipelines.items():
        mine = [lead for lead in leads if lead.pipeline == name]
        histories = [evs for (pipeline, _), evs in sorted(by_lead.items()) if pipeline == name]
        doc["pipelines"][name] = pipeline_report(pc, mine, histories, T, config.windows)
    return doc
