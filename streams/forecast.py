"""Forecast against actual (SPEC 4.9, v2): what the weighted pipeline at a window's start
promised against what was won in the window.

`open_at_start` is the open pipeline from the events before the window's `from` only.
`StageFlow` keeps what each day's events changed in it (flow.py: a stock is the sum of
its flows), so it is a prefix sum over days; this module turns it into SPEC 4.4's totals.
"""
from __future__ import annotations

from typing import NamedTuple

from pulse.schemas.config import PipelineConfig

from .exact import from_fixed, weighted_sum
from .flow import StageFlow


class OpenTotals(NamedTuple):
    count: int
    amount: float
    weighted_amount: float

    def as_dict(self) -> dict:
        return {"count": self.count, "amount": self.amount, "weighted_amount": self.weighted_amount}


def open_at_day_starts(flow: StageFlow, days: list[int], pipeline: PipelineConfig) -> dict[int, OpenTotals]:
    """SPEC 4.4's pipeline totals at 00:00 UTC of each given day number, from the events before it."""
    out = {}
    for day, (count, amount) in flow.open_at_day_starts(days).items():
        out[day] = OpenTotals(sum(count), from_fixed(sum(amount)),
                              weighted_sum((st.probability, amount[st.index]) for st in pipeline.stages))
    return out


def forecast(open_at_start: OpenTotals, won_amount: float) -> dict:
    """SPEC 4.9's window entry: attainment = won_amount / open_at_start.weighted_amount (null when 0)."""
    weighted = open_at_start.weighted_amount
    return {"open_at_start": open_at_start.as_dict(), "attainment": won_amount / weighted if weighted else None}
