"""What a long-running processor may forget (the live worker's housekeeping, docs/operations.md).

A report at T reads, besides the open leads at T:
- the day buckets of its windows: days date(T) - N + 1 .. date(T) for each window of N days;
- for lead velocity rate (SPEC 4.6), the 30 days before the 30-day window: from day date(T) - 59;
- for the forecast (4.9), the open pipeline at each window's start: a running stock, the sum of
  every earlier day's changes (StageFlow keeps it when it drops days, see drop_days_before).

T only grows (wall clock, or the largest occurred_at seen), so with `now` <= every future T
the days before `keep_from_day(now)` are never read again. A lead is forgotten when it
contributes nothing any future report reads and no event of its own is still in reach:
closed (or never created: only `lead.updated`s, SPEC 3.8), every event before the horizon, and
no stale alert whose resolution is still to be published. Its creation, stays and close all
sit in dropped days, and its open-pipeline stock nets to zero (it opened and closed before the
horizon), so dropping it changes no figure of any report at T >= now.

What SPEC still lets such a lead do, and forgetting it cannot: take a new event. That
event would reopen, supersede or edit the old lead; the processor, no longer holding it,
sees an unknown lead. The worker's rule for that (agents/housekeeping.py, docs/operations.md
"Housekeeping"): an event of a lead it does not hold, dated no later than the latest event
of a lead it forgot (`Plan.latest_us`), is counted as a duplicate and not applied (it is
most likely a re-delivery of a forgotten lead's event); a later one starts a new lead, as
for any unknown lead.

Pure: time is a parameter; `plan` decides, `forget` applies the decision.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from .windows import DAY_US, day_of

if TYPE_CHECKING:
    from .engine import PulseEngine
    from .lead import Lead

LVR_REACH_DAYS = 60         # SPEC 4.6: the 30-day window and the 30 days before it
MARGIN_DAYS = 7             # how late (beyond every window's reach) an event for a forgotten lead may be


def keep_from_day(now_us: int, window_days: Iterable[int], margin_days: int = MARGIN_DAYS) -> int:
    """The first UTC day a report at any T >= now_us can read, less `margin_days`."""
    reach = max(max(window_days, default=1), LVR_REACH_DAYS)
    return day_of(now_us) - reach + 1 - margin_days


def forgettable(lead: Lead, horizon_us: int) -> bool:
    """Closed or never created, every event before the horizon, no stale alert left to resolve."""
    return not lead.is_open and lead.last_ts < horizon_us and lead.alert_level <= 0


@dataclass
class Plan:
    keep_from_day: int
    leads: dict[str, list[str]] = field(default_factory=dict)      # pipeline -> lead ids to forget
    latest_us: int | None = None        # the latest event of those leads (None: no lead to forget)

    @property
    def horizon_us(self) -> int:
        return self.keep_from_day * DAY_US

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.leads.values())


def plan(engine: PulseEngine, now_us: int, margin_days: int = MARGIN_DAYS) -> Plan:
    """What to forget at now_us (walks the closed leads: run it off the per-event path)."""
    first = keep_from_day(now_us, (w.days for w in engine.config.windows), margin_days)
    horizon = first * DAY_US
    out = Plan(first)
    for name, p in engine.pipelines.items():
        if len(p.leads) == len(p.open_leads):
            continue
        ids = [lead_id for lead_id, lead in p.leads.items() if forgettable(lead, horizon)]
        if ids:
            out.leads[name] = ids
            latest = max(p.leads[lead_id].last_ts for lead_id in ids)
            out.latest_us = latest if out.latest_us is None else max(out.latest_us, latest)
    return out


def forget(engine: PulseEngine, decided: Plan) -> dict[str, int]:
    """Drop the planned leads and the day buckets before the horizon; returns, per pipeline,
    how many of the dropped leads were created implicitly (SPEC 5's implicit_creates keeps
    counting them, but can no longer re-derive them from the leads)."""
    implicit: dict[str, int] = {}
    for name, p in engine.pipelines.items():
        p.flow.drop_days_before(decided.keep_from_day)
        p.deals.drop_days_before(decided.keep_from_day)
        n = 0
        for lead_id in decided.leads.get(name, ()):
            lead = p.leads.pop(lead_id)
            n += lead.implicit
        if n:
            implicit[name] = n
    return implicit


def held_sizes(engine: PulseEngine) -> dict[str, int]:
    """What the engine holds, for the housekeeping test and bench: leads, open leads, day buckets."""
    ps = engine.pipelines.values()
    return {"leads": sum(len(p.leads) for p in ps), "open_leads": sum(len(p.open_leads) for p in ps),
            "flow_days": sum(len(p.flow._days) for p in ps), "deal_days": sum(len(p.deals._days) for p in ps)}
