"""Realistic synthetic CRM traffic (SPEC section 1 events), pure and seeded.

The model, in three layers, each usable on its own (one module each; `world` holds the static
cast and the time helpers they share):

1. **Arrivals** — lead creation times: an inhomogeneous Poisson process with weekday
   seasonality, a working-hours daily profile (per team time zone) and a mild growth
   trend. `fixed_arrivals` draws exactly N of them over a period (the Poisson process
   conditioned on its count); `poisson_arrivals` is an unbounded stream at a given
   daily rate (for a live `pulse simulate`).
2. **Journeys** — `LeadJourney.build` simulates one lead from creation to close (or
   to silence): log-normal dwell per stage, stage-dependent advance / regress / lost /
   won probabilities scaled by the owner's skill, long stalls, leads that go dark (stay
   open for good: they go stale), amount set at creation or later and revised,
   owner hand-offs, same-stage "opportunity updated" events, a few reopens after a
   close and a few superseding closes (a second `deal.closed` correcting the first).
3. **Streams** — `event_stream` merges the journeys in event-time order through a
   heap of each lead's next event (journeys are built lazily as their lead arrives,
   so an unbounded arrival stream works); `arrival_stream` turns that into what a
   consumer receives, with optional messiness: exact re-sends, late (delayed)
   events, dropped `lead.created` (implicit creates), invalid lines of every
   dead-letter kind, and timestamps written with a non-`Z` offset.

A live feed (e.g. `pulse simulate`) composes the layers with an unbounded arrival
stream and paces on `Emitted.arrival` (epoch seconds, non-decreasing):

    t0 = int(time.time())
    events = event_stream(seed, poisson_arrivals(seed, t0, rate_per_day=2000))
    for e in arrival_stream(events, seed=seed, late=0.02, duplicates=0.01):
        sleep_until(t0 + (e.arrival - t0) / speedup); publish(e.line)

`generate(...)` is the one-call API: JSON lines (bytes, no newline) in arrival order.
Same arguments, same bytes. The journeys depend only on `seed`, `leads`, `start`,
`days` and `pipelines`; the messiness knobs draw from their own random streams, so a
messy file holds the same journeys (same `event_id`s) as the clean one plus noise.

Personal data (contact names, e-mails, phones, company names, call notes) is only ever
put inside `attributes`; `PII_TOKENS` lists every string it is built from, so tests
can check nothing of it appears elsewhere.
"""
from __future__ import annotations

from .arrivals import fixed_arrivals, poisson_arrivals
from .journeys import LeadJourney, SynthEvent
from .streams import MESSY, Emitted, arrival_stream, event_stream, generate, generate_tagged
from .world import DEFAULT_STAGE_PARAMS, DEFAULT_STAGES, PII_TOKENS, REPS, TEAMS, StageParams, format_ts, parse_start

__all__ = [
    "DEFAULT_STAGES", "TEAMS", "REPS", "PII_TOKENS", "MESSY",
    "StageParams", "DEFAULT_STAGE_PARAMS", "LeadJourney", "SynthEvent", "Emitted",
    "fixed_arrivals", "poisson_arrivals", "event_stream", "arrival_stream",
    "generate", "generate_tagged", "format_ts", "parse_start",
]
