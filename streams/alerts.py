"""Stagnation alerts (SPEC 4.5, 6): when to raise `lead.stale` and `lead.stale_resolved`.

`StaleLeadDetector` keeps the open stays of leads that can go stale in a `DueHeap`
(staleness.py: ordered by the instant their next level falls due), so a periodic
check costs in proportion to the alerts that are due, not to the open leads.

What was already raised lives on the lead (alert_stage, alert_stay, alert_level),
so a restart that restores the leads raises nothing twice. Pure: time is a
parameter; the caller publishes the messages.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

from pulse.schemas.config import PipelineConfig
from pulse.schemas.timestamps import format_timestamp

from pulse.schemas.types import CLOSED, STAGE_CHANGED, UPDATED

from .history import rows
from .lead import Lead
from .staleness import DueHeap, next_level_due_us, stale_level, stale_limits
from .windows import DAY_US

SEVERITY = {1: "warning", 2: "high", 3: "critical"}
STALE, RESOLVED = "lead.stale", "lead.stale_resolved"


def alert_id(kind: str, pipeline: str, lead_id: str, stage: str, since_us: int, level: int | None = None) -> str:
    """Deterministic: the same condition always gives the same id (SPEC 6)."""
    parts = [kind, pipeline, lead_id, stage, str(since_us)] + ([str(level)] if level is not None else [])
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _human_days(days: float) -> str:
    if days < 1:
        hours = days * 24
        return f"{hours:.0f} hour" + ("" if round(hours) == 1 else "s")
    return f"{days:.0f} day" + ("" if round(days) == 1 else "s")


class StaleLeadDetector:
    """`in_event_time` (the worker's event clock): a stay watched before it went stale raises
    each level as the clock passes it, and a level is judged by the lead's events (was the
    lead in that stay at the level's instant?), not by whether the lead is still there when
    the check runs. Then the alerts depend on each lead's events and on the times the
    clock passes, not on how the input topics happened to interleave (issue 12). A stay
    first seen already stale raises only its level at that moment (SPEC 6), in both modes."""

    def __init__(self, pipelines: dict[str, PipelineConfig], *, in_event_time: bool = False):
        self._pipelines = pipelines
        self._limits = stale_limits(pipelines)
        self.in_event_time = in_event_time
        # (due, pipeline, lead_id, stage, stay start, stepwise): stepwise when scheduled before it was due
        self._due = DueHeap()

    def __len__(self) -> int:
        return len(self._due)

    def watch(self, pipeline: str, lead: Lead, now_us: int | None = None) -> None:
        """Schedule the lead's current stay for its next level (call after the stay changed or was
        alerted); `now_us`: the clock at this moment (a level already due then is not stepped to)."""
        if not lead.is_open:
            return
        limit = self._limits[pipeline][lead.stage]
        raised = lead.alert_level if (lead.alert_stage, lead.alert_stay) == (lead.stage, lead.stay_start) else 0
        if raised < 0:
            return                                          # resolved already (see resolution)
        due = next_level_due_us(lead.stay_start, limit, raised)
        if due is not None:
            stepwise = self.in_event_time and (raised > 0 or now_us is None or due > now_us)
            self._due.push((due, pipeline, lead.lead_id, lead.stage, lead.stay_start, stepwise))

    def any_due(self, now_us: int) -> bool:
        """Whether a check is due at `now_us` (O(1): most events move the clock past none)."""
        return self._due.any_due(now_us)

    def due(self, now_us: int, find_lead) -> list[tuple[Lead, dict]]:
        """Raise every `lead.stale` due at `now_us`: (lead, alert message) pairs.

        `find_lead(pipeline, lead_id)` returns the lead's current state. Levels are
        not back-filled: a stay first seen at level k raises only level k. In event time
        a level may be raised for a stay the lead has left since (it was there at the
        level's instant): the caller resolves it.
        """
        raised = []
        for due, pipeline, lead_id, stage, start, stepwise in self._due.pop_due(now_us):
            lead = find_lead(pipeline, lead_id)
            if lead is None:
                continue
            same = (lead.alert_stage, lead.alert_stay) == (stage, start)
            if same and lead.alert_level < 0:
                continue                                    # resolved already
            current = lead.is_open and (lead.stage, lead.stay_start) == (stage, start)
            limit = self._limits[pipeline][stage]
            upto = now_us
            if not current:
                if not stepwise or (not same and lead.alert_stay > start):
                    continue                                # the stay is over: a stale entry
                later = lead.stay_start
                if later is not None and start < later <= due:
                    # A later stay began by `due`, and the event that began it (or one before)
                    # ended this stay: it ended before this level. The usual case, told
                    # without reading the lead's history. (It also drops what an older rule
                    # raised wrongly: a level of a stay that lasted no time -- a lead created
                    # and closed at one instant, then reopened -- or of a stay that a late
                    # event's re-fold took out of the lead's history.)
                    continue
                end = self._stay_end(pipeline, lead, stage, start)
                if end is None or end <= due:
                    continue                                # it ended before this level
                upto = min(now_us, end - 1)
            level = stale_level(upto - start, limit)
            already = lead.alert_level if same else 0
            if stepwise:
                level = min(level, already + 1)
            if level > already:
                lead.alert_stage, lead.alert_stay, lead.alert_level = stage, start, level
                raised.append((lead, self.stale_message(pipeline, lead, now_us, stage, start, upto)))
            if current:
                self.watch(pipeline, lead, now_us if not stepwise else None)
            else:
                nxt = next_level_due_us(start, limit, max(level, already))
                if nxt is not None:
                    self._due.push((nxt, pipeline, lead_id, stage, start, True))
        return raised

    def levels_before_end(self, pipeline: str, lead: Lead, now_us: int) -> list[dict]:
        """Event time, as the lead leaves a stay it has alerts for: the levels that stay reached
        before it ended (by the lead's events) and were not raised yet, so the alerts do not
        depend on whether the move arrived before or after the clock passed them."""
        if not self.in_event_time or lead.alert_level <= 0:
            return []
        stage, start = lead.alert_stage, lead.alert_stay
        if lead.is_open and (lead.stage, lead.stay_start) == (stage, start):
            return []
        end = self._stay_end(pipeline, lead, stage, start)
        limit = self._limits[pipeline][stage]
        out = []
        while end is not None and lead.alert_level < 3:
            nxt = next_level_due_us(start, limit, lead.alert_level)
            if nxt is None or nxt >= end:
                break
            lead.alert_level += 1
            out.append(self.stale_message(pipeline, lead, now_us, stage, start, end - 1))
        return out

    @staticmethod
    def _stay_end(pipeline: str, lead: Lead, stage: int, start: int) -> int | None:
        """When the stay (stage, start) ended, by the lead's events (None: not found, or not over).

        The lead's rows are walked in SPEC 3 order (history.py) with the stay rules of
        lead.apply_event: a stay begins with the lead (its first event other than a
        lead.updated; at stage 0 for a deal.closed, which ends it at once), with a move to
        another stage, or with a reopen; it ends with a move to another stage or a close.
        Several rows can share a timestamp: a stay can end at the instant it began."""
        target = (stage, start)
        created = is_open = False
        current = None                                     # (stage, start) of the open stay
        for row in rows(lead.history, lead.n_events):
            ts, kind, to = row[0], row[1], row[2]
            if not created:
                if kind == UPDATED:
                    continue
                created = is_open = True
                current = (0 if kind == CLOSED else to, ts)
                if kind == CLOSED:
                    if current == target:
                        return ts                           # created and closed at once
                    is_open = False
                continue
            before = current if is_open else None
            if kind == STAGE_CHANGED:
                if not is_open:
                    is_open, current = True, (to, ts)       # a reopen
                elif to != current[0]:
                    current = (to, ts)
            elif kind == CLOSED:
                is_open = False
            if before == target and (current if is_open else None) != target:
                return ts
        return None

    def due_count(self, now_us: int, find_lead) -> int:
        """How many current stays have a check due at `now_us`, without raising anything: a walk
        of the heap that visits only due entries and their children, O(due), not O(heap)."""
        heap, stays = self._due.entries, set()
        todo = [0] if heap else []
        while todo:
            i = todo.pop()
            due, pipeline, lead_id, stage, start, _ = heap[i]
            if due <= now_us:
                lead = find_lead(pipeline, lead_id)
                if lead is not None and lead.is_open and (lead.stage, lead.stay_start) == (stage, start):
                    stays.add((pipeline, lead_id))
                todo.extend(j for j in (2 * i + 1, 2 * i + 2) if j < len(heap))
        return len(stays)

    def resolution(self, pipeline: str, lead: Lead, now_us: int, to_stage: int | None,
                   outcome: str | None) -> dict | None:
        """`lead.stale_resolved` when the lead left (or closed) a stay it had a `lead.stale` for.

        Call after an event changed the lead's current stay. The lead's alert memory then
        says "resolved" (its level negated): that stay is never raised nor resolved again.
        """
        if lead.alert_level <= 0:
            return None
        if lead.is_open and (lead.stage, lead.stay_start) == (lead.alert_stage, lead.alert_stay):
            return None                                     # still in the alerted stay
        pc = self._pipelines[pipeline]
        stage_name = pc.stages[lead.alert_stage].name
        since = lead.alert_stay
        limit = self._limits[pipeline][lead.alert_stage]
        message = {
            "alert_id": alert_id(RESOLVED, pipeline, lead.lead_id, stage_name, since),
            "type": RESOLVED,
            "severity": SEVERITY[lead.alert_level],
            "detected_at": format_timestamp(now_us),
            "pipeline": pipeline,
            "lead_id": lead.lead_id,
            "stage": stage_name,
            "since": format_timestamp(since),
            "age_days": max(0, now_us - since) / DAY_US,
            "stale_after_days": limit / DAY_US if limit is not None else None,
            "level": lead.alert_level,
            "owner": lead.owner,
            "team": lead.team,
            "amount": lead.amount,
            "resolved_by": "closed" if outcome is not None else "stage_changed",
        }
        if outcome is not None:
            message["outcome"] = outcome
            message["summary"] = f"Lead {lead.lead_id} left {stage_name}: {outcome}"
        else:
            to_name = pc.stages[to_stage].name if to_stage is not None else None
            message["to_stage"] = to_name
            message["summary"] = f"Lead {lead.lead_id} moved from {stage_name} to {to_name}"
        lead.alert_level = -lead.alert_level
        return message

    def stale_message(self, pipeline: str, lead: Lead, now_us: int, stage: int | None = None,
                      start: int | None = None, upto: int | None = None) -> dict:
        """The `lead.stale` of the lead's alerted level in a stay (default: its current one),
        aged at `upto` (default: now; earlier for a stay the lead has left since)."""
        stage = lead.stage if stage is None else stage
        start = lead.stay_start if start is None else start
        pc = self._pipelines[pipeline]
        stage_name = pc.stages[stage].name
        limit = self._limits[pipeline][stage]
        age_days = ((now_us if upto is None else upto) - start) / DAY_US
        level = lead.alert_level
        return {
            "alert_id": alert_id(STALE, pipeline, lead.lead_id, stage_name, start, level),
            "type": STALE,
            "severity": SEVERITY[level],
            "detected_at": format_timestamp(now_us),
            "pipeline": pipeline,
            "lead_id": lead.lead_id,
            "stage": stage_name,
            "since": format_timestamp(start),
            "age_days": age_days,
            "stale_after_days": limit / DAY_US,
            "level": level,
            "owner": lead.owner,
            "team": lead.team,
            "amount": lead.amount,
            "summary": f"Lead {lead.lead_id} has been in {stage_name} for {_human_days(age_days)} "
                       f"(limit {_human_days(limit / DAY_US)})",
        }

    def watch_all(self, pipeline: str, leads: Iterable[Lead], now_us: int | None = None) -> None:
        for lead in leads:
            self.watch(pipeline, lead, now_us)
