"""Steady synthetic traffic over a long period, for the worker's memory checks.

`pulse.synth` models a sales team (leads that go dark stay open for good, as in a real
CRM that never closes them); here every lead closes within ~2 months, so a processor that
forgets what it no longer needs (agents/housekeeping.py) must hold a flat state once the
oldest window has passed. Compact and fast: a year of 30 leads a day is ~60,000 events
built in well under a second. Seeded: the same arguments give the same lines.
"""
from __future__ import annotations

import random
from datetime import datetime, timezone
from typing import Iterator, NamedTuple

import orjson

DAY_S = 86_400
STAGES = ("new", "prospecting", "qualified", "contacted", "proposal", "negotiation")   # the shipped default
START_S = 1_767_225_600     # 2026-01-01T00:00:00Z


class Line(NamedTuple):
    arrival_s: int          # when it is delivered (late and re-sent lines after their occurred_at)
    type: str               # the event type (routes it to its topic)
    line: bytes


def _ts(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def steady_traffic(*, days: int = 365, leads_per_day: int = 30, seed: int = 0, start_s: int = START_S,
                   late: float = 0.02, duplicates: float = 0.01) -> list[Line]:
    """Every lead: created, 0-4 moves a few days apart, an amount change, closed (won or lost)
    within ~60 days; `late` of the events arrive up to 3 days late, `duplicates` are re-sent
    up to a day later. In arrival order."""
    rng = random.Random(seed)
    out: list[Line] = []
    dumps = orjson.dumps
    for day in range(days):
        for i in range(leads_per_day):
            lead = f"S{day}-{i}"
            t = start_s + day * DAY_S + rng.randrange(DAY_S)
            owner = f"rep{rng.randrange(8)}"
            stage = 0
            events = [(t, "lead.created", {"stage": STAGES[0], "owner": owner, "team": f"team{i % 3}",
                                           "source": ("marketing", "sales")[i % 2],
                                           "amount": float(rng.randrange(1, 100) * 500)})]
            for _ in range(rng.randrange(5)):
                t += rng.randrange(DAY_S // 2, 10 * DAY_S)
                stage = max(0, min(len(STAGES) - 1, stage + rng.choice((1, 1, 2, -1))))
                events.append((t, "lead.stage_changed", {"to_stage": STAGES[stage]}))
            if rng.random() < 0.3:
                t += rng.randrange(DAY_S)
                events.append((t, "lead.updated", {"amount": float(rng.randrange(1, 100) * 500)}))
            t += rng.randrange(DAY_S, 15 * DAY_S)
            events.append((t, "deal.closed", {"outcome": "won" if rng.random() < 0.4 else "lost"}))
            for n, (at, kind, extra) in enumerate(events):
                # copied: orjson's result keeps its 4 KiB buffer, 20 times the line
                line = bytes(memoryview(dumps({"type": kind, "event_id": f"{lead}:{n}", "lead_id": lead,
                                               "occurred_at": _ts(at), **extra})))
                arrival = at + (rng.randrange(3 * DAY_S) if rng.random() < late else 0)
                out.append(Line(arrival, kind, line))
                if rng.random() < duplicates:
                    out.append(Line(arrival + rng.randrange(DAY_S), kind, line))
    out.sort(key=lambda e: e.arrival_s)
    return out


def by_day(lines: list[Line], start_s: int = START_S) -> Iterator[tuple[int, list[Line]]]:
    """The lines grouped by the day (from start_s) they arrive on: (day number, lines)."""
    day, batch = 0, []
    for line in lines:
        d = (line.arrival_s - start_s) // DAY_S
        if d != day and batch:
            yield day, batch
            batch = []
        day = d
        batch.append(line)
    if batch:
        yield day, batch
