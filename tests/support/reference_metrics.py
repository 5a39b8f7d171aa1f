"""The naive test oracle's section 4, per pipeline: every metric of SPEC (v2) section 4 computed
straight from its definition with plain loops, over the lead records of
tests/support/reference_lead.py.  tests/support/reference.py builds the document (section 5)
from these; its docstring describes the oracle and its readings ("READING:" below).
"""
from __future__ import annotations

from pulse.schemas.config import PipelineConfig
from tests.support.reference_lead import DAY_US, US, LeadRec, day_start, format_time, walk_lead

LVR_DAYS = 30                   # SPEC 4.6: the lead velocity rate is always over 30 days
DIMENSIONS = ("owner", "team", "source")      # SPEC 4.8, in the document's order


# --------------------------------------------------------------------------------------
# Section 4 helpers
# --------------------------------------------------------------------------------------

def nearest_rank(sorted_values: list[int], p: int) -> int:
    """The value at rank ceil(p/100 * n) (1-based) of the sorted values."""
    n = len(sorted_values)
    rank = -(-p * n // 100)          # exact integer ceil(p * n / 100)
    return sorted_values[max(rank, 1) - 1]


def _ratio(num, den):
    return None if den == 0 else num / den


def _segment_sort_key(entry: dict):
    """SPEC 5: by value, byte order of UTF-8, null last."""
    value = entry["value"]
    return (1, b"") if value is None else (0, value.encode("utf-8"))


def _open_totals(pc: PipelineConfig, leads: list[LeadRec]) -> dict:
    """SPEC 4.4's pipeline totals over the open leads among `leads`."""
    totals = {"count": 0, "amount": 0.0, "weighted_amount": 0.0}
    for lead in leads:
        if lead.closed:
            continue
        amount = lead.amount if lead.amount is not None else 0.0
        totals["count"] += 1
        totals["amount"] += amount
        totals["weighted_amount"] += amount * pc.stages[lead.current.stage].probability
    return totals


def pipeline_report(pc: PipelineConfig, leads: list[LeadRec], histories: list, T: int,
                     windows) -> dict:
    names = [s.name for s in pc.stages]
    open_leads = [lead for lead in leads if not lead.closed]

    # ---- 4.4 open pipeline, 4.7 open opportunities --------------------------------------
    open_doc = {
        "count": len(open_leads),
        "amount": 0.0,
        "weighted_amount": 0.0,
        "opportunities": 0,
        "stages": {},
    }
    stale_entries = []
    for stage in pc.stages:
        entry = {"count": 0, "amount": 0.0, "weighted_amount": 0.0, "stale": 0}
        for lead in open_leads:
            if lead.current.stage != stage.index:
                continue
            amount = lead.amount if lead.amount is not None else 0.0
            entry["count"] += 1
            entry["amount"] += amount
            entry["weighted_amount"] += amount * stage.probability
            open_doc["amount"] += amount
            open_doc["weighted_amount"] += amount * stage.probability
            if stage.index >= pc.opportunity_index:
                open_doc["opportunities"] += 1
            # ---- 4.5 stale leads
            if stage.stale_after_s is None:
                continue
            age = T - lead.current.start
            limit = stage.stale_after_s * US
            if age > limit:
                level = max(k for k in (1, 2, 3) if age > k * limit)
                entry["stale"] += 1
                stale_entries.append((age, lead, stage, level))
        open_doc["stages"][stage.name] = entry

    # ---- 4.8 open pipeline per segment value ------------------------------------------
    stale_ids = {id(t[1]) for t in stale_entries}
    open_doc["segments"] = {}
    for dim in DIMENSIONS:
        by_value: dict = {}
        for lead in open_leads:
            value = lead.segment()[dim]                       # the lead's current value
            entry = by_value.setdefault(value, {"value": value, "count": 0, "amount": 0.0,
                                                "weighted_amount": 0.0, "stale": 0})
            amount = lead.amount if lead.amount is not None else 0.0
            entry["count"] += 1
            entry["amount"] += amount
            entry["weighted_amount"] += amount * pc.stages[lead.current.stage].probability
            if id(lead) in stale_ids:
                entry["stale"] += 1
        open_doc["segments"][dim] = sorted(by_value.values(), key=_segment_sort_key)

    stale_entries.sort(key=lambda t: (-t[0], t[1].lead_id.encode("utf-8")))
    stale_doc = [
        {
            "lead_id": lead.lead_id,
            "stage": stage.name,
            "since": format_time(lead.current.start),
            "age_days": age / DAY_US,
            "stale_after_days": stage.stale_after_s / 86_400,
            "level": level,
            "owner": lead.owner,
            "team": lead.team,
            "amount": lead.amount,
        }
        for age, lead, stage, level in stale_entries
    ]

    # ---- 4.1 windows -----------------------------------------------------------------
    def window_bounds(days: int) -> tuple[int, int]:
        return day_start(T) - (days - 1) * DAY_US, T

    def qualified_in(lo: int, hi: int, hi_inclusive: bool) -> int:
        count = 0
        for lead in leads:
            first = None
            for stay in lead.stays:
                if stay.stage >= pc.qualified_index:
                    first = stay
                    break
            if first is None:
                continue
            if lo <= first.start and (first.start <= hi if hi_inclusive else first.start < hi):
                count += 1
        return count

    windows_doc = {}
    for w in windows:
        lo, hi = window_bounds(w.days)

        def inside(t):
            return t is not None and lo <= t <= hi

        leads_created = sum(1 for lead in leads if inside(lead.created))
        won = lost = 0
        won_amount = 0.0
        cycles = []
        for lead in leads:
            for c in lead.closes:
                if not inside(c.ts):
                    continue
                if c.won:
                    won += 1
                    won_amount += c.amount
                    cycles.append(c.ts - lead.created)
                else:
                    lost += 1
        win_rate = _ratio(won, won + lost)
        close_rate = _ratio(won, leads_created)
        avg_deal_size = _ratio(won_amount, won)
        cycle_mean = None if not cycles else sum(cycles) / len(cycles) / DAY_US

        # 4.2 sales velocity.  READING: the null rules come first; "0 open opportunities
        # gives 0" only says that a zero factor is not a null one.
        opportunities = open_doc["opportunities"]
        if win_rate is None or avg_deal_size is None or cycle_mean is None or cycle_mean == 0:
            velocity = None
        else:
            velocity = opportunities * win_rate * avg_deal_size / cycle_mean

        # 4.3 stage flow
        stages_doc = {}
        for stage in pc.stages:
            entered = 0
            exited_dwells = []
            outcomes = {"advanced": 0, "regressed": 0, "won": 0, "lost": 0}
            for lead in leads:
                for stay in lead.stays:
                    if stay.stage != stage.index:
                        continue
                    if inside(stay.start):
                        entered += 1
                    if inside(stay.end):
                        exited_dwells.append(stay.end - stay.start)
                        outcomes[stay.outcome] += 1
            exited = len(exited_dwells)
            if exited:
                dwells = sorted(exited_dwells)
                dwell = {
                    "mean": sum(dwells) / exited / DAY_US,
                    "p50": nearest_rank(dwells, 50) / DAY_US,
                    "p90": nearest_rank(dwells, 90) / DAY_US,
                }
            else:
                dwell = {"mean": None, "p50": None, "p90": None}
            stages_doc[stage.name] = {
                "entered": entered,
                "exited": exited,
                "advanced": outcomes["advanced"],
                "regressed": outcomes["regressed"],
                "won": outcomes["won"],
                "lost": outcomes["lost"],
                "conversion_rate": _ratio(outcomes["advanced"] + outcomes["won"], exited),
                "drop_off_rate": _ratio(outcomes["lost"], exited),
                "dwell_days": dwell,
            }

        transitions: dict = {}
        for lead in leads:
            for stay in lead.stays:
                if stay.outcome in ("advanced", "regressed") and inside(stay.end):
                    key = f"{names[stay.stage]}->{names[stay.to_stage]}"
                    transitions[key] = transitions.get(key, 0) + 1

        # 4.8 segments: 4.2's formulas over the creations and closes counting for v
        segments_doc = {}
        for dim in DIMENSIONS:
            per_value: dict = {}

            def of(value):
                return per_value.setdefault(value, {"created": 0, "won": 0, "lost": 0,
                                                    "won_amount": 0.0, "cycles": []})
            for lead in leads:
                if inside(lead.created):
                    of(lead.created_segment[dim])["created"] += 1
                for c in lead.closes:
                    if not inside(c.ts):
                        continue
                    acc = of(c.segment[dim])
                    if c.won:
                        acc["won"] += 1
                        acc["won_amount"] += c.amount
                        acc["cycles"].append(c.ts - lead.created)
                    else:
                        acc["lost"] += 1
            entries = []
            for value, acc in per_value.items():
                cyc = acc["cycles"]
                entries.append({
                    "value": value,
                    "leads_created": acc["created"],
                    "won": acc["won"],
                    "lost": acc["lost"],
                    "won_amount": acc["won_amount"],
                    "win_rate": _ratio(acc["won"], acc["won"] + acc["lost"]),
                    "close_rate": _ratio(acc["won"], acc["created"]),
                    "avg_deal_size": _ratio(acc["won_amount"], acc["won"]),
                    "sales_cycle_days": {
                        "mean": None if not cyc else sum(cyc) / len(cyc) / DAY_US,
                        "count": len(cyc),
                    },
                })
            segments_doc[dim] = sorted(entries, key=_segment_sort_key)

        # 4.9 forecast: re-fold every lead from scratch with only its events before
        # `from`, then take 4.4's totals.
        # READING: "the events with occurred_at < from" are this report's applied events
        # (deduplicated as of T, first read wins) filtered by occurred_at < from; the
        # duplicates are not re-decided among the earlier events only.  4.9 defines
        # open_at_start by filtering "the events" by time, and the events of this
        # document are the applied ones (section 5 classifies every input once, as of
        # T); the two readings differ only when an event_id is reused for different
        # content, which section 1 calls a producer bug with an arrival-order result.
        before = [walk_lead([e for e in evs if e.ts < lo]) for evs in histories]
        open_at_start = _open_totals(pc, [lead for lead in before if lead is not None])
        weighted = open_at_start["weighted_amount"]
        forecast = {
            "open_at_start": open_at_start,
            "attainment": None if weighted == 0 else won_amount / weighted,
        }

        windows_doc[w.key] = {
            "from": format_time(lo),
            "to": format_time(hi),
            "leads_created": leads_created,
            "won": won,
            "lost": lost,
            "won_amount": won_amount,
            "win_rate": win_rate,
            "close_rate": close_rate,
            "avg_deal_size": avg_deal_size,
            "sales_cycle_days": {"mean": cycle_mean, "count": len(cycles)},
            "qualified_leads": qualified_in(lo, hi, hi_inclusive=True),
            "sales_velocity_per_day": velocity,
            "stages": stages_doc,
            "transitions": transitions,
            "segments": segments_doc,
            "forecast": forecast,
        }

    # ---- 4.6 lead velocity rate --------------------------------------------------------
    lo30, hi30 = window_bounds(LVR_DAYS)
    current = qualified_in(lo30, hi30, hi_inclusive=True)
    previous = qualified_in(lo30 - LVR_DAYS * DAY_US, lo30, hi_inclusive=False)
    lvr = {
        "window": f"{LVR_DAYS}d",
        "current": current,
        "previous": previous,
        "rate": None if previous == 0 else (current - previous) / previous,
    }

    return {
        "open": open_doc,
        "stale": stale_doc,
        "windows": windows_doc,
        "lead_velocity_rate": lvr,
    }
